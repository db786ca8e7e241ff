"""What every state change needs: a session, who acts, when, and how to sign."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from sqlmodel import Session

from ..ledger import SigningKey

PROGRAMME_TIMEZONE = "Asia/Shanghai"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local_date(moment: datetime, tz_name: str = PROGRAMME_TIMEZONE) -> date:
    return moment.astimezone(ZoneInfo(tz_name)).date()


def new_id(prefix: str) -> str:
    # Millisecond prefix keeps ids roughly creation-ordered, so id-cursor pages
    # read in the order things happened; the random tail keeps them unguessable.
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(8)}"


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
