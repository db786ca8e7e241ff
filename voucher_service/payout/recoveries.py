"""Money that comes back (DESIGN §9): recoveries, repayments, and the offset of
what a provider owes against what it is owed.

A recovery (clawback) is decided by an officer of the issuing region R on a
redemption found not due. Before settlement the money is still R's debt to the
provider, `payable:R:P`, and simply goes back to R's budget. After settlement
it has been paid: the provider now owes it, `paid:P → receivable:R:P`, until
it repays (`receivable:R:P → budget:R`, recorded by R's finance) or R's next
batch offsets it against what R owes the provider (settlement.py).
"""
from __future__ import annotations

from sqlmodel import func, select

from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, paid_account, payable_account, receivable_account
from voucher_service.models import Provider, Redemption, Settlement, SettlementLine, SettlementRedemption
from voucher_service.payout.rules import (
    check_not_in_live_batch,
    check_recovery_whole_before_settlement,
    check_recovery_within_amount,
    check_repayment_within_receivable,
)
from voucher_service.process.rules import REDEMPTION_TRANSITIONS
from voucher_service.programme.context import Context
from voucher_service.programme.rules import check_transition
from voucher_service.programme.writes import append, lock


def open_receivable_fen(ctx: Context, region: str, provider_id: str) -> int:
    return journal.account_balance(ctx.session, receivable_account(region, provider_id))


def planned_offsets_fen(ctx: Context, region: str, provider_id: str) -> int:
    """What live (draft or approved) batches of `region` plan to offset from the
    provider's receivable: not free to repay, nor to offset again."""
    return int(ctx.session.exec(
        select(func.coalesce(func.sum(SettlementLine.offset_fen), 0))
        .join(Settlement, Settlement.id == SettlementLine.settlement_id)
        .where(Settlement.region == region, Settlement.status.in_(("draft", "approved")),
               SettlementLine.provider_id == provider_id)).one())


def free_receivable_fen(ctx: Context, region: str, provider_id: str) -> int:
    return open_receivable_fen(ctx, region, provider_id) - planned_offsets_fen(ctx, region, provider_id)


def _live_batch_of(ctx: Context, redemption_id: str) -> Settlement | None:
    """The draft or approved batch that has taken the redemption, if any."""
    return ctx.session.exec(select(Settlement).join(
        SettlementRedemption, SettlementRedemption.settlement_id == Settlement.id).where(
        SettlementRedemption.live_redemption_id == redemption_id,
        Settlement.status.in_(("draft", "approved")))).first()


def recover(ctx: Context, redemption_id: str, *, amount_fen: int, reason: str) -> Redemption:
    lock(ctx)
    redemption = ctx.get(Redemption, redemption_id, "redemption", for_update=True)
    check_transition("redemption", redemption.status, "recovered", REDEMPTION_TRANSITIONS,
                     refusal=f"state machine: redemption {redemption_id} is '{redemption.status}'; only a "
                             "redeemed or settled redemption is recovered (reject one not yet redeemed)")
    check_recovery_within_amount(amount_fen, redemption.amount_fen)
    batch = _live_batch_of(ctx, redemption_id)
    check_not_in_live_batch(batch.id if batch else None, redemption_id)
    region, provider_id = redemption.region, redemption.provider_id
    settled = redemption.status == "settled"
    check_recovery_whole_before_settlement(settled, amount_fen, redemption.amount_fen)
    if settled:
        posting = Posting(paid_account(provider_id), receivable_account(region, provider_id), amount_fen)
    else:
        posting = Posting(payable_account(region, provider_id), budget_account(region), amount_fen)
    redemption.status = "recovered"
    redemption.recovered_fen = amount_fen
    redemption.recovered_at = ctx.now_str
    redemption.recovery_reason = reason
    ctx.session.add(redemption)
    ctx.session.flush()
    append(ctx, kind="redemption.recovered", region=region,
           refs={"redemption": redemption.id, "voucher": redemption.voucher_id, "provider": provider_id,
                 "enterprise": redemption.enterprise_id},
           postings=[posting],
           data={"amount_fen": amount_fen, "reason": reason, "after_settlement": settled})
    return redemption


def repay(ctx: Context, provider_id: str, *, region: str, amount_fen: int, reference: str):
    """The provider paid back (part of) what it owes `region`; the entry appended."""
    lock(ctx)
    ctx.get(Provider, provider_id, "provider")
    check_repayment_within_receivable(amount_fen, free_receivable_fen(ctx, region, provider_id), region,
                                      provider_id)
    return append(ctx, kind="receivable.repaid", region=region, refs={"provider": provider_id, "region": region},
                  postings=[Posting(receivable_account(region, provider_id), budget_account(region), amount_fen)],
                  data={"amount_fen": amount_fen, "reference": reference})


def offsets_for(ctx: Context, region: str, gross_by_provider: dict[str, int]) -> dict[str, int]:
    """What a new batch of `region` takes from each provider's receivable: as much
    as is free (open, and not planned by another live batch), at most the gross."""
    return {provider_id: max(0, min(free_receivable_fen(ctx, region, provider_id), gross_fen))
            for provider_id, gross_fen in gross_by_provider.items()}
