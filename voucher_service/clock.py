"""Time and identifiers: UTC now, RFC 3339 strings, the programme's local date, ids."""
from __future__ import annotations

import secrets
import time
from datetime import date, datetime, timezone
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from voucher_service.ledger.entry import TIMESTAMP_FORMAT

PROGRAMME_TIMEZONE = "Asia/Shanghai"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """The form every timestamp of the service takes: the ledger's (entry `ts`), microseconds, UTC."""
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_rfc3339(text: str) -> datetime:
    """A timestamp in the form rfc3339() writes, back to an aware datetime."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def local_midnight_utc(day: date, tz_name: str = PROGRAMME_TIMEZONE) -> str:
    """The first instant of `day` in the programme's time zone, as an RFC 3339 UTC
    string: the bound that periods, reports and date filters compare stored ts with."""
    return rfc3339(datetime.combine(day, time_of_day(0), ZoneInfo(tz_name)))


def local_date(moment: datetime, tz_name: str = PROGRAMME_TIMEZONE) -> date:
    return moment.astimezone(ZoneInfo(tz_name)).date()


def new_id(prefix: str) -> str:
    # Millisecond prefix keeps ids roughly creation-ordered, so id-cursor pages
    # read in the order things happened; the random tail keeps them unguessable.
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(8)}"
