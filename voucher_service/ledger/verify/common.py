"""What every part of the verifier shares: its error, the limits of its input,
and the checks of a string, a timestamp and base64 that quote a bad value
alike everywhere (ledger/statement.py uses them too, so both tools accept the
same input)."""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from ..entry import TIMESTAMP

MAX_LINE_BYTES = 1 << 20          # one entry; real ones are a few hundred bytes
MAX_KEYS = 100_000

DECIMAL = re.compile(r"(0|[1-9][0-9]{0,19})\Z")


class VerificationError(Exception):
    """The evidence does not verify. `seq` is the first bad entry (or None),
    `where` names the place ("seq 17", "checkpoint", "keys", ...)."""

    def __init__(self, why: str, *, seq: int | None = None, where: str | None = None):
        self.seq = seq
        self.where = where if where is not None else (f"seq {seq}" if seq is not None else "export")
        self.why = why
        super().__init__(f"{self.where}: {why}")

    def report(self) -> str:
        return f"FAILED at {self.where}: {self.why}"


def check_string(value, what: str, fail, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        fail(f"{what} must be a {'' if allow_empty else 'non-empty '}string, not {show(value)}")
    return value


def show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_timestamp(value, what: str, fail) -> str:
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        fail(f"{what} {show(value)} is not an RFC 3339 UTC time with microseconds (2026-01-31T08:00:00.000000Z)")
    try:
        # After the regex, the same dates and times as strptime(TIMESTAMP_FORMAT)
        # accepts (tests/unit/ledger/test_verify_jobs.py checks it), faster.
        datetime.fromisoformat(value[:-1])
    except ValueError:
        fail(f"{what} {value} is not a valid date and time")
    return value


def strict_b64(value: str) -> bytes | None:
    """Decoded bytes if `value` is canonical base64 (padded, no stray bits), else None."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == value else None


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
