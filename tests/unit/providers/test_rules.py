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
