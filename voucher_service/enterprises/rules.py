"""Rules of the enterprise register, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.programme.errors import RuleViolation


def check_uscc_unique(already_registered: bool, uscc: str) -> None:
    if already_registered:
        raise RuleViolation("uscc_unique", f"USCC unique: an enterprise with USCC {uscc} is already registered")
