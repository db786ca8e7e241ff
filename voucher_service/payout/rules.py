"""Rules of settlement, one function each, named as a finance officer would."""
from __future__ import annotations

from voucher_service.payout.periods import CYCLE_OF_PERIOD, Period
from voucher_service.programme.errors import RuleViolation

SETTLEMENT_TRANSITIONS = {"draft": {"approved", "cancelled"}, "approved": {"executed", "cancelled"},
                          # Completed: the bank's result recorded for every line (DESIGN §9).
                          "executed": {"completed"}}
# A redemption of a line the bank reports failed is owed again, for the next batch.
PAYMENT_FAILED_TRANSITIONS = {"settled": {"redeemed"}}


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


def check_recovery_within_amount(amount_fen: int, redeemed_fen: int) -> None:
    if amount_fen > redeemed_fen:
        raise RuleViolation("recovery_within_amount", f"recovery within amount: {amount_fen} fen is more than the "
                                                      f"{redeemed_fen} fen the redemption paid")


def check_recovery_whole_before_settlement(settled: bool, amount_fen: int, redeemed_fen: int) -> None:
    """Unpaid, a redemption recovered is not paid at all: a batch pays only redeemed ones.
    To pay part of it, settle it, then recover the rest (the provider owes that back)."""
    if not settled and amount_fen != redeemed_fen:
        raise RuleViolation("recovery_whole_before_settlement",
                            f"recovery whole before settlement: an unsettled redemption is recovered in full "
                            f"({redeemed_fen} fen), not {amount_fen}; settle it first to recover part")


def check_not_in_live_batch(batch_id: str | None, redemption_id: str) -> None:
    if batch_id is not None:
        raise RuleViolation("in_live_batch", f"in live batch: redemption {redemption_id} is in settlement batch "
                                             f"{batch_id}; cancel the batch first, then recover")


def check_repayment_within_receivable(amount_fen: int, free_fen: int, region: str, provider_id: str) -> None:
    """`free_fen`: the open receivable less what live batches plan to offset."""
    if amount_fen > free_fen:
        raise RuleViolation("repayment_within_receivable",
                            f"repayment within receivable: provider {provider_id} owes {region} {free_fen} fen "
                            f"not already planned as a batch's offset, not {amount_fen}")


def check_offsets_still_open(planned_fen: int, open_fen: int, provider_id: str) -> None:
    if planned_fen > open_fen:
        raise RuleViolation("offset_within_receivable",
                            f"offset within receivable: the batch offsets {planned_fen} fen but provider "
                            f"{provider_id} now owes {open_fen}; cancel the batch and create it again")


def check_result_once(current: str | None, provider_id: str) -> None:
    if current is not None:
        raise RuleViolation("result_recorded", f"result recorded: the line of provider {provider_id} is already "
                                               f"'{current}'")


def check_line_in_batch(found: bool, provider_id: str, settlement_id: str) -> None:
    if not found:
        raise RuleViolation("line_in_batch", f"line in batch: batch {settlement_id} has no line for provider "
                                             f"{provider_id}")


def check_no_recovery_in_failed_line(recovered: list[str], provider_id: str) -> None:
    """Reversing a line returns its redemptions to `redeemed`; one recovered since cannot be."""
    if recovered:
        raise RuleViolation("recovered_in_line",
                            f"recovered in line: the line of provider {provider_id} includes redemption(s) "
                            f"{', '.join(recovered)} recovered since the batch was executed; its result cannot "
                            "be recorded failed by the service: reverse the recovery with the bank first")


def check_budget_covers_offset(budget_fen: int, offset_fen: int, region: str) -> None:
    if budget_fen < offset_fen:
        raise RuleViolation("budget_covers_offset",
                            f"budget covers offset: reversing the line's {offset_fen} fen offset needs them in "
                            f"budget:{region}, which holds {budget_fen}")
