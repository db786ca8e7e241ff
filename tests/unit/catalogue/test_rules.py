"""Rules of the shared catalogue in isolation."""
import pytest

from voucher_service.catalogue import rules
from voucher_service.programme.errors import RuleViolation
from voucher_service.programme.rules import check_transition


def test_catalog_code_unique():
    rules.check_catalog_code_unique(False, "TS-01")
    with pytest.raises(RuleViolation) as caught:
        rules.check_catalog_code_unique(True, "TS-01")
    assert caught.value.rule == "catalog_code_unique"
    assert caught.value.detail == "catalogue code unique: item TS-01 already exists"


def refused(rule, check, *args):
    with pytest.raises(RuleViolation) as caught:
        check(*args)
    assert caught.value.rule == rule
    return caught.value.detail


@pytest.mark.parametrize("quorum, members, required", [
    ("all", 3, 3), ("all", 4, 4), ("all", 1, 1), (2, 3, 2), (5, 3, 3), (1, 3, 1), (3, 3, 3)])
def test_required_approvals_are_counted_against_the_members(quorum, members, required):
    assert rules.required_approvals(quorum, members) == required


def test_one_open_proposal_per_item():
    rules.check_no_open_proposal(None, "TS-01")
    detail = refused("catalog_proposal_open", rules.check_no_open_proposal, "cpr_1", "TS-01")
    assert "cpr_1" in detail and "TS-01" in detail


def test_a_change_must_change_something():
    rules.check_change_not_empty(True, "TS-01")
    assert "TS-01" in refused("catalog_change_empty", rules.check_change_not_empty, False, "TS-01")


def test_one_approval_per_region():
    rules.check_not_already_approved("KS", {"SH"})
    assert "KS" in refused("catalog_already_approved", rules.check_not_already_approved, "KS", {"SH", "KS"})


def test_a_change_is_applied_only_if_it_still_applies():
    rules.check_change_applicable(None, "cpr_1")
    detail = refused("catalog_change_inapplicable", rules.check_change_applicable, "item X already exists", "cpr_1")
    assert "cpr_1" in detail and "item X already exists" in detail


def test_only_an_open_proposal_is_decided():
    for target in ("adopted", "withdrawn"):
        check_transition("catalogue proposal", "open", target, rules.PROPOSAL_TRANSITIONS)
        for decided in ("adopted", "withdrawn"):
            with pytest.raises(RuleViolation):
                check_transition("catalogue proposal", decided, target, rules.PROPOSAL_TRANSITIONS)
