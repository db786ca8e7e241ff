"""What every state change needs: a session, who acts, when, and how to sign."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlmodel import Session

from voucher_service.clock import rfc3339, utc_now
from voucher_service.ledger import SigningKey
from voucher_service.programme.errors import NotFound


@dataclass
class Context:
    session: Session
    signer: Callable[[str], SigningKey]
    actor: str
    now: datetime = field(default_factory=utc_now)
    appended: list = field(default_factory=list)

    @property
    def now_str(self) -> str:
        return rfc3339(self.now)

    def get(self, model, key, kind: str, *, noun: str | None = None, for_update: bool = False):
        """The row of `model` with this key, or NotFound(kind, "no <noun> <key>").

        `for_update` locks the row for the rest of the transaction and reads it
        again, so a rule is never checked against a copy read before the lock.
        """
        row = self.session.get(model, key, with_for_update=for_update, populate_existing=for_update)
        if row is None:
            raise NotFound(kind, f"no {noun or kind} {key}")
        return row
