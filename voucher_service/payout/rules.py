"""Rules of settlement, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.payout.periods import CYCLE_OF_PERIOD, Period
from voucher_service.programme.errors import RuleViolation

SETTLEMENT_TRANSITIONS = {"draft": {"approved", "cancelled"}, "approved": {"executed", "cancelled"}}


def check_payout_cycle(cycle: str, period: Period, region: str) -> None:
    if CYCLE_OF_PERIOD[period.kind] != cycle:
        wanted = "YYYY-MM" if cycle == "monthly" else "YYYY-Qn"
        raise RuleViolation("payout_cycle", f"payout cycle: {region} pays providers {cycle}; "
                                            f"settle a {wanted} period, not {period.label}")


def check_period_started(start_utc: str, now_str: str, label: str) -> None:
    if start_utc > now_str:
        raise RuleViolation("period_started", f"period started: {label} has not begun")


def check_something_to_settle(due_count: int, region: str, label: str) -> None:
    if not due_count:
        raise RuleViolation("nothing_to_settle", f"nothing to settle: {region} has no redeemed, unsettled "
                                                 f"redemption in {label}")


def check_four_eyes(approver: str, creator: str) -> None:
    if approver == creator:
        raise RuleViolation("four_eyes", "four eyes: the finance officer who created a batch may not approve it")


def check_approval_region(approver_region: str, required: list[str]) -> None:
    if approver_region not in required:
        raise RuleViolation("approval_region", f"approval region: the batch touches {', '.join(required)}, "
                                               f"not {approver_region}")


def check_not_already_approved(approver_region: str, approved_regions: set[str]) -> None:
    if approver_region in approved_regions:
        raise RuleViolation("already_approved", f"already approved: {approver_region} has approved this batch")


def check_one_approval_per_officer(approver: str, approvers: set[str]) -> None:
    # Was a second "four_eyes" (docs/decisions.md): one person may not stand in for two regions.
    if approver in approvers:
        raise RuleViolation("one_approval_per_officer",
                            "one approval per officer: one person approves a batch once")


def check_approvals_complete(required: list[str], approved_regions: set[str]) -> None:
    missing = [region for region in required if region not in approved_regions]
    if missing:
        raise RuleViolation("approvals_missing", "approvals missing: the batch still needs a finance officer of "
                                                 f"{', '.join(missing)}")
