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


# A region's exclusion of a provider (DESIGN §8) concerns the vouchers that region
# issues; the provider stays registered and recognised everywhere else.

def check_not_home_region(provider_region: str, region: str, provider_id: str) -> None:
    # One concept, one place: a home region that distrusts its own provider
    # suspends it, scheme-wide, with POST /providers/{id}/suspend.
    if provider_region == region:
        raise RuleViolation(
            "provider_home_region",
            f"provider home region: {provider_id} is registered in {region}; its home region suspends it "
            f"(POST /providers/{provider_id}/suspend) rather than excluding it")


def check_not_already_excluded(already_excluded: bool, region: str, provider_id: str) -> None:
    if already_excluded:
        raise RuleViolation(
            "provider_already_excluded",
            f"provider already excluded: {region} already excludes provider {provider_id}")
