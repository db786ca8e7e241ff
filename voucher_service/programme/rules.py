"""Rules of the programme as a whole, and the one check every state machine goes through.

Every package's state machine is a transitions table (state -> the states it
may become) kept in its own rules module; this module imports nothing of the
project but the errors, so every package can use it without a cycle.
"""
from __future__ import annotations

from datetime import date

from voucher_service.programme.errors import RuleViolation


def check_transition(kind: str, current: str, target: str, table: dict[str, set[str]], *,
                     refusal: str | None = None) -> None:
    """`refusal` replaces the generic detail where officers already know a
    clearer wording (a provider that is already suspended, say)."""
    if target not in table.get(current, set()):
        raise RuleViolation(
            "state_machine", refusal or f"state machine: {kind} is '{current}' and cannot become '{target}'")


def check_policy_in_effect(found: bool, region_code: str, on: date) -> None:
    if not found:
        raise RuleViolation("policy_in_effect", f"policy in effect: region {region_code} has no policy on {on}")
