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


# Payout accounts (DESIGN §9): a change of bank details is the classic payment
# fraud, so it takes two officers of the provider's home region.

def check_four_eyes(proposed_by: str, actor: str, provider_id: str) -> None:
    if proposed_by == actor:
        raise RuleViolation(
            "four_eyes",
            f"four eyes: the payout account change for provider {provider_id} was proposed by {actor}; "
            f"another officer of the home region must confirm it")


def check_change_pending(pending: bool, provider_id: str) -> None:
    if not pending:
        raise RuleViolation(
            "payout_change_pending",
            f"payout change pending: provider {provider_id} has no pending payout account change to confirm "
            f"(PUT /providers/{provider_id}/payout-account proposes one)")


def check_change_current(asked: str | None, pending: str, provider_id: str) -> None:
    # The confirmer names what it reviewed: a change proposed since then is not confirmed unseen.
    if asked is not None and asked != pending:
        raise RuleViolation(
            "payout_change_current",
            f"payout change current: {asked} is not the pending payout account change of provider "
            f"{provider_id} (it is {pending}); review that one before confirming it")


def check_account_changes(same: bool, provider_id: str) -> None:
    if same:
        raise RuleViolation(
            "payout_account_changes",
            f"payout account changes: the proposed account of provider {provider_id} is the account "
            f"already in effect")
