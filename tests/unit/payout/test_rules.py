"""Settlement rules in isolation (DESIGN §2 Settlement): the payout cycle, a started period,
something to settle, four eyes and the approvals a batch needs, and its state machine."""
from __future__ import annotations

import pytest

from voucher_service.payout.periods import parse_period
from voucher_service.payout.rules import (
    SETTLEMENT_TRANSITIONS,
    check_approval_region,
    check_approvals_complete,
    check_four_eyes,
    check_not_already_approved,
    check_one_approval_per_officer,
    check_payout_cycle,
    check_period_started,
    check_something_to_settle,
)
from voucher_service.programme.errors import RuleViolation
from voucher_service.programme.rules import check_transition


def rule_of(fn, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        fn(*args)
    return caught.value


def test_payout_cycle():
    check_payout_cycle("monthly", parse_period("2026-03"), "KS")
    check_payout_cycle("quarterly", parse_period("2026-Q1"), "SH")
    error = rule_of(check_payout_cycle, "quarterly", parse_period("2026-03"), "SH")
    assert error.rule == "payout_cycle" and "SH" in error.detail and "YYYY-Qn" in error.detail
    error = rule_of(check_payout_cycle, "monthly", parse_period("2026-Q1"), "KS")
    assert error.rule == "payout_cycle" and "KS" in error.detail and "YYYY-MM" in error.detail


def test_period_started_at_its_first_instant():
    start, _end = parse_period("2026-11").bounds_utc()
    check_period_started(start, start, "2026-11")
    check_period_started(start, "2026-10-31T16:00:00.000001Z", "2026-11")
    error = rule_of(check_period_started, start, "2026-10-31T15:59:59.999999Z", "2026-11")
    assert error.rule == "period_started" and "2026-11" in error.detail


def test_something_to_settle():
    check_something_to_settle(1, "KS", "2026-03")
    error = rule_of(check_something_to_settle, 0, "KS", "2026-03")
    assert error.rule == "nothing_to_settle"
    assert error.detail == "nothing to settle: KS has no redeemed, unsettled redemption in 2026-03"


def test_four_eyes():
    check_four_eyes("usr_b", "usr_a")
    error = rule_of(check_four_eyes, "usr_a", "usr_a")
    assert error.rule == "four_eyes" and "four eyes" in error.detail


def test_approval_region_is_one_the_batch_touches():
    check_approval_region("SH", ["KS", "SH"])
    error = rule_of(check_approval_region, "WJ", ["KS", "SH"])
    assert error.rule == "approval_region"
    assert error.detail == "approval region: the batch touches KS, SH, not WJ"


def test_each_region_approves_once():
    check_not_already_approved("SH", {"KS"})
    error = rule_of(check_not_already_approved, "KS", {"KS"})
    assert error.rule == "already_approved" and error.detail == "already approved: KS has approved this batch"


def test_one_approval_per_officer():
    """Not four eyes (the creator may not approve): one person may not approve for two regions."""
    check_one_approval_per_officer("usr_b", {"usr_a"})
    check_one_approval_per_officer("usr_a", set())
    error = rule_of(check_one_approval_per_officer, "usr_a", {"usr_a"})
    assert error.rule == "one_approval_per_officer"
    assert error.detail == "one approval per officer: one person approves a batch once"


def test_approvals_complete_names_the_regions_still_to_approve():
    check_approvals_complete(["KS", "SH"], {"KS", "SH"})
    error = rule_of(check_approvals_complete, ["KS", "SH", "WJ"], {"SH"})
    assert error.rule == "approvals_missing"
    assert error.detail == "approvals missing: the batch still needs a finance officer of KS, WJ"


@pytest.mark.parametrize("current, target", [("draft", "approved"), ("draft", "cancelled"),
                                             ("approved", "executed"), ("approved", "cancelled")])
def test_settlement_transitions_allowed(current, target):
    check_transition("settlement", current, target, SETTLEMENT_TRANSITIONS)


@pytest.mark.parametrize("current, target", [("draft", "executed"), ("approved", "approved"),
                                             ("executed", "cancelled"), ("executed", "approved"),
                                             ("cancelled", "approved"), ("cancelled", "executed")])
def test_settlement_transitions_refused(current, target):
    error = rule_of(check_transition, "settlement", current, target, SETTLEMENT_TRANSITIONS)
    assert error.rule == "state_machine"
    assert error.detail == f"state machine: settlement is '{current}' and cannot become '{target}'"
