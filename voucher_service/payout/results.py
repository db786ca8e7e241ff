"""What the bank did with an executed batch (DESIGN §9): per line, paid (with the
bank's reference) or failed (with its reason).

A failed transfer is undone in the ledger: the line's gross goes back from
`paid:P` to `payable:R:P` and its offset back to the provider's receivable, and
its redemptions return to `redeemed`, free for the next batch. A line with a
redemption recovered since execution is not reversed by the service (the
recovery assumed a payment): people settle that with the bank. A batch whose
every line has a result is `completed`.
"""
from __future__ import annotations

from sqlmodel import select

from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account
from voucher_service.models import Redemption, Settlement, SettlementLine, SettlementRedemption
from voucher_service.payout.rules import (
    PAYMENT_FAILED_TRANSITIONS,
    SETTLEMENT_TRANSITIONS,
    check_budget_covers_offset,
    check_line_in_batch,
    check_no_recovery_in_failed_line,
    check_result_once,
)
from voucher_service.payout.settlement import line_postings
from voucher_service.programme.context import Context
from voucher_service.programme.rules import check_transition
from voucher_service.programme.writes import append, lock


def _failed_line(ctx: Context, settlement: Settlement, line: SettlementLine) -> list[Posting]:
    """Return the line's redemptions to `redeemed`; the postings that undo its payment."""
    region, provider_id = settlement.region, line.provider_id
    redemptions = ctx.session.exec(
        select(Redemption).join(SettlementRedemption, SettlementRedemption.redemption_id == Redemption.id)
        .where(SettlementRedemption.settlement_id == settlement.id, Redemption.provider_id == provider_id)
        .with_for_update()).all()
    check_no_recovery_in_failed_line([r.id for r in redemptions if r.status == "recovered"], provider_id)
    if line.offset_fen:
        check_budget_covers_offset(journal.account_balance(ctx.session, budget_account(region)), line.offset_fen,
                                   region)
    for redemption in redemptions:
        check_transition("redemption", redemption.status, "redeemed", PAYMENT_FAILED_TRANSITIONS)
        redemption.status = "redeemed"
        redemption.settled_at = None
        ctx.session.add(redemption)
    for row in ctx.session.exec(select(SettlementRedemption).where(
            SettlementRedemption.settlement_id == settlement.id,
            SettlementRedemption.redemption_id.in_([r.id for r in redemptions]))).all():
        row.live_redemption_id = None  # free for the next batch
        ctx.session.add(row)
    # Exactly what executing the line posted, each posting the other way round.
    return [Posting(p.destination, p.source, p.amount) for p in line_postings(region, [line])]


def record_results(ctx: Context, settlement_id: str, results: list[dict]) -> Settlement:
    """`results`: [{"provider_id", "result": "paid"|"failed", "bank_reference" | "reason"}], one a line."""
    lock(ctx)
    settlement = ctx.get(Settlement, settlement_id, "settlement", for_update=True)
    check_transition("settlement", settlement.status, "completed", SETTLEMENT_TRANSITIONS,
                     refusal=f"state machine: settlement {settlement_id} is '{settlement.status}'; payment "
                             "results are recorded for an executed batch")
    lines = {line.provider_id: line for line in ctx.session.exec(
        select(SettlementLine).where(SettlementLine.settlement_id == settlement_id).with_for_update()).all()}
    postings, recorded = [], []
    for result in results:
        provider_id = result["provider_id"]
        line = lines.get(provider_id)
        check_line_in_batch(line is not None, provider_id, settlement_id)
        check_result_once(line.result, provider_id)
        line.result, line.result_at = result["result"], ctx.now_str
        if result["result"] == "paid":
            line.bank_reference = result["bank_reference"]
        else:
            line.failure_reason = result["reason"]
            postings += _failed_line(ctx, settlement, line)
        ctx.session.add(line)
        recorded.append({k: v for k, v in result.items() if v is not None})
    if all(line.result is not None for line in lines.values()):
        settlement.status = "completed"
        settlement.completed_at = ctx.now_str
        ctx.session.add(settlement)
    ctx.session.flush()
    append(ctx, kind="settlement.results_recorded", region=settlement.region,
           refs={"settlement": settlement.id, "region": settlement.region}, postings=postings,
           data={"results": recorded, "status": settlement.status})
    return settlement
