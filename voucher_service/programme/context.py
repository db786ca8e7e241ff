"""What every state change needs: a session, who acts, when, and how to sign."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlmodel import Session

from voucher_service.clock import rfc3339, utc_now
from voucher_service.ledger import SigningKey


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
