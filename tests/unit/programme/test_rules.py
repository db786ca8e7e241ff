"""The programme-wide rules in isolation: a policy in effect, and the one state-machine check."""
from datetime import date

import pytest

from voucher_service.programme import rules
from voucher_service.programme.errors import RuleViolation

TABLE = {"draft": {"open"}, "open": {"closed"}}


def refused(rule_name, fn, *args, **kwargs):
    with pytest.raises(RuleViolation) as caught:
        fn(*args, **kwargs)
    assert caught.value.rule == rule_name
    return caught.value.detail


def test_policy_in_effect():
    rules.check_policy_in_effect(True, "KS", date(2026, 1, 1))
    detail = refused("policy_in_effect", rules.check_policy_in_effect, False, "KS", date(2026, 1, 1))
    assert detail == "policy in effect: region KS has no policy on 2026-01-01"


def test_transition_allowed_by_the_table():
    rules.check_transition("thing", "draft", "open", TABLE)
    rules.check_transition("thing", "open", "closed", TABLE)


@pytest.mark.parametrize("current, target", [("draft", "closed"), ("closed", "open"), ("open", "open"),
                                             ("unknown", "open")])
def test_transition_refused_names_both_states(current, target):
    detail = refused("state_machine", rules.check_transition, "thing", current, target, TABLE)
    assert detail == f"state machine: thing is '{current}' and cannot become '{target}'"


def test_a_refusal_may_be_worded_by_the_caller():
    detail = refused("state_machine", rules.check_transition, "thing", "closed", "open", TABLE,
                     refusal="state machine: the thing is closed for good")
    assert detail == "state machine: the thing is closed for good"
    rules.check_transition("thing", "draft", "open", TABLE, refusal="never used")
