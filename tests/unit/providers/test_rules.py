"""Rules of the provider registry in isolation: one USCC per provider, and suspension as a state machine."""
import pytest

from voucher_service.programme.errors import RuleViolation
from voucher_service.providers import rules


def refused(rule_name, fn, *args):
    with pytest.raises(RuleViolation) as caught:
        fn(*args)
    assert caught.value.rule == rule_name
    return caught.value.detail


def test_uscc_unique():
    rules.check_uscc_unique(False, "91330100799655058B")
    detail = refused("uscc_unique", rules.check_uscc_unique, True, "91330100799655058B")
    assert detail == "USCC unique: a provider with USCC 91330100799655058B is already registered"


@pytest.mark.parametrize("current, target", [("active", "suspended"), ("suspended", "active")])
def test_suspend_and_reinstate(current, target):
    rules.check_provider_status_change("prv-1", current, target)


@pytest.mark.parametrize("status, verb", [("suspended", "suspended"), ("active", "active")])
def test_the_same_status_twice_is_refused_in_the_words_officers_know(status, verb):
    detail = refused("state_machine", rules.check_provider_status_change, "prv-1", status, status)
    assert detail == f"state machine: provider prv-1 is already {verb}"


def test_a_status_outside_the_table_is_refused():
    detail = refused("state_machine", rules.check_provider_status_change, "prv-1", "active", "struck_off")
    assert detail == "state machine: provider is 'active' and cannot become 'struck_off'"
    assert rules.PROVIDER_TRANSITIONS == {"active": {"suspended"}, "suspended": {"active"}}


def test_a_region_excludes_only_providers_of_other_regions():
    rules.check_not_home_region("SH", "KS", "prv-sh-001")
    detail = refused("provider_home_region", rules.check_not_home_region, "KS", "KS", "prv-ks-002")
    assert "registered in KS" in detail and "/providers/prv-ks-002/suspend" in detail


def test_an_exclusion_is_made_once():
    rules.check_not_already_excluded(False, "KS", "prv-sh-001")
    detail = refused("provider_already_excluded", rules.check_not_already_excluded, True, "KS", "prv-sh-001")
    assert detail == "provider already excluded: KS already excludes provider prv-sh-001"


# --- payout accounts: four eyes ----------------------------------------------------------

def test_the_proposer_may_not_confirm():
    rules.check_four_eyes("usr_a", "usr_b", "prv-1")
    detail = refused("four_eyes", rules.check_four_eyes, "usr_a", "usr_a", "prv-1")
    assert detail.startswith("four eyes: ") and "prv-1" in detail and "usr_a" in detail


def test_a_confirmation_needs_a_pending_change():
    rules.check_change_pending(True, "prv-1")
    assert refused("payout_change_pending", rules.check_change_pending, False, "prv-1").startswith(
        "payout change pending: provider prv-1 has no pending")


@pytest.mark.parametrize("asked", [None, "pac_2"])
def test_a_confirmation_names_the_pending_change_or_none(asked):
    rules.check_change_current(asked, "pac_2", "prv-1")


def test_a_replaced_change_is_not_confirmed():
    detail = refused("payout_change_current", rules.check_change_current, "pac_1", "pac_2", "prv-1")
    assert detail.startswith("payout change current: pac_1 is not the pending") and "pac_2" in detail


def test_the_account_in_effect_is_no_change():
    rules.check_account_changes(False, "prv-1")
    assert refused("payout_account_changes", rules.check_account_changes, True, "prv-1").startswith(
        "payout account changes: ")
