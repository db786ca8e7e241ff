"""Rules of the provider registry, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.programme.errors import RuleViolation
from voucher_service.programme.rules import check_transition

# Suspension is scheme-wide and set by the provider's home region; it can be lifted.
PROVIDER_TRANSITIONS = {"active": {"suspended"}, "suspended": {"active"}}


def check_uscc_unique(already_registered: bool, uscc: str) -> None:
    if already_registered:
        raise RuleViolation("uscc_unique", f"USCC unique: a provider with USCC {uscc} is already registered")


def check_provider_status_change(provider_id: str, current: str, target: str) -> None:
    verb = "suspended" if target == "suspended" else "active"
    check_transition("provider", current, target, PROVIDER_TRANSITIONS,
                     refusal=f"state machine: provider {provider_id} is already {verb}" if current == target else None)
