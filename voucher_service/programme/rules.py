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


def check_region_code_free(taken: bool, code: str) -> None:
    if taken:
        raise RuleViolation("region_code_unique", f"region code unique: region {code} is already a member")


def check_policy_not_retroactive(effective_from: date, today: date) -> None:
    """A policy changes what officers may do from a day on; one dated today or
    earlier would change decisions already taken under the policy then in force."""
    if effective_from <= today:
        raise RuleViolation("policy_retroactive",
                            f"policy retroactive: effective_from {effective_from} is not after today "
                            f"({today}, Asia/Shanghai); a policy applies from tomorrow at the earliest")


def check_policy_date_free(taken: bool, region_code: str, effective_from: date) -> None:
    if taken:
        raise RuleViolation("policy_date_taken",
                            f"policy date taken: region {region_code} already adopted a policy effective "
                            f"{effective_from}")


def check_fiscal_year_current(fiscal_year: int, current_year: int) -> None:
    """A region has one budget account: money funded "for next year" would be
    grantable today, and money funded for a closed year would change a year
    already reported. So finance funds the current fiscal year only."""
    if fiscal_year != current_year:
        raise RuleViolation("fiscal_year_not_current",
                            f"fiscal year not current: {fiscal_year} is not the current fiscal year "
                            f"({current_year}, Asia/Shanghai); a budget is funded for the current year only")
