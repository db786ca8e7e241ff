"""Rules of the shared catalogue, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.programme.errors import RuleViolation


def check_catalog_code_unique(already_exists: bool, code: str) -> None:
    if already_exists:
        raise RuleViolation("catalog_code_unique", f"catalogue code unique: item {code} already exists")
