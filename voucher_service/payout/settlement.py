"""Unified payout (资金兑现统一): settlement batches and netting between regions.

A batch belongs to one paying region (the region that issued the vouchers)
and one period of its payout cycle, in Asia/Shanghai time. It takes every
redeemed, unsettled redemption of that region and period, pays each provider
one line, and needs an approval from a finance officer of every region it
touches (the payer's and each provider's home region), none from its creator."""
from __future__ import annotations

from collections import defaultdict

from sqlmodel import select

from voucher_service.clock import new_id
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, paid_account, payable_account, receivable_account
from voucher_service.models import (
    Provider,
    Redemption,
    Settlement,
    SettlementApproval,
    SettlementLine,
    SettlementRedemption,
)
from voucher_service.payout import recoveries
from voucher_service.payout.netting import net_positions
from voucher_service.payout.periods import parse_period
from voucher_service.payout.rules import (
    SETTLEMENT_TRANSITIONS,
    check_approval_region,
    check_approvals_complete,
    check_four_eyes,
    check_offsets_still_open,
    check_not_already_approved,
    check_one_approval_per_officer,
    check_payout_cycle,
    check_period_started,
    check_something_to_settle,
)
from voucher_service.process.rules import REDEMPTION_TRANSITIONS
from voucher_service.programme.context import Context
from voucher_service.programme.regions import policy_in_effect
from voucher_service.programme.writes import append as _append
from voucher_service.programme.rules import check_transition
from voucher_service.programme.writes import lock


def get_settlement(ctx: Context, settlement_id: str, *, for_update: bool = False) -> Settlement:
    return ctx.get(Settlement, settlement_id, "settlement", for_update=for_update)


def lines_of(ctx: Context, settlement_id: str) -> list[SettlementLine]:
    return list(ctx.session.exec(select(SettlementLine).where(SettlementLine.settlement_id == settlement_id)
                                 .order_by(SettlementLine.provider_region, SettlementLine.provider_id)))


def redemption_ids_by_provider(ctx: Context, settlement_id: str) -> dict[str, list[str]]:
    rows = ctx.session.exec(select(Redemption.provider_id, Redemption.id)
                            .join(SettlementRedemption, SettlementRedemption.redemption_id == Redemption.id)
                            .where(SettlementRedemption.settlement_id == settlement_id).order_by(Redemption.id))
    grouped: dict[str, list[str]] = defaultdict(list)
    for provider_id, redemption_id in rows:
        grouped[provider_id].append(redemption_id)
    return dict(grouped)


def approvals_of(ctx: Context, settlement_id: str) -> list[SettlementApproval]:
    return list(ctx.session.exec(select(SettlementApproval).where(SettlementApproval.settlement_id == settlement_id)
                                 .order_by(SettlementApproval.region)))


def regions_touched(settlement: Settlement, lines: list[SettlementLine]) -> list[str]:
    return sorted({settlement.region} | {line.provider_region for line in lines})


def positions_of(settlement: Settlement, lines: list[SettlementLine]) -> list[dict]:
    return net_positions((settlement.region, line.provider_region, line.amount_fen) for line in lines)


def line_postings(region: str, lines: list[SettlementLine]) -> list[Posting]:
    """Executing a batch: each line's gross is paid, and its offset clears that
    much of what the provider owes the region back (DESIGN §9)."""
    postings = []
    for line in lines:
        postings.append(Posting(payable_account(region, line.provider_id), paid_account(line.provider_id),
                                line.amount_fen))
        if line.offset_fen:
            postings.append(Posting(receivable_account(region, line.provider_id), budget_account(region),
                                    line.offset_fen))
    return postings


def create_settlement(ctx: Context, *, region: str, period_label: str) -> Settlement:
    lock(ctx)
    period = parse_period(period_label)
    check_payout_cycle(policy_in_effect(ctx, region).payout_cycle, period, region)
    start, end = period.bounds_utc()
    check_period_started(start, ctx.now_str, period.label)
    batched = select(SettlementRedemption.live_redemption_id).where(
        SettlementRedemption.live_redemption_id.is_not(None))
    due = ctx.session.exec(
        select(Redemption, Provider.region)
        .join(Provider, Provider.id == Redemption.provider_id)
        # Everything redeemed by the period's end and not yet paid: the period's
        # own redemptions and any left over (a failed transfer's, say).
        .where(Redemption.region == region, Redemption.status == "redeemed", Redemption.redeemed_at < end,
               Redemption.id.not_in(batched))
        .order_by(Redemption.id)).all()
    check_something_to_settle(len(due), region, period.label)
    by_provider: dict[str, list] = defaultdict(list)
    for redemption, provider_region in due:
        by_provider[(redemption.provider_id, provider_region)].append(redemption)
    # What each provider owes the region back after recoveries is taken from its line.
    offsets = recoveries.offsets_for(ctx, region, {provider_id: sum(r.amount_fen for r in redemptions)
                                                   for (provider_id, _), redemptions in by_provider.items()})
    settlement = Settlement(id=new_id("stl"), region=region, period=period.label, period_start=start,
                            period_end=end, status="draft", total_fen=sum(r.amount_fen for r, _ in due),
                            created_by=ctx.actor, created_at=ctx.now_str)
    ctx.session.add(settlement)
    ctx.session.flush()
    lines = []
    for (provider_id, provider_region), redemptions in sorted(by_provider.items()):
        line = SettlementLine(settlement_id=settlement.id, provider_id=provider_id, provider_region=provider_region,
                              amount_fen=sum(r.amount_fen for r in redemptions), redemption_count=len(redemptions),
                              offset_fen=offsets[provider_id])
        lines.append(line)
        ctx.session.add(line)
        for redemption in redemptions:
            # The UNIQUE live_redemption_id is what keeps a redemption in one live batch.
            ctx.session.add(SettlementRedemption(settlement_id=settlement.id, redemption_id=redemption.id,
                                                 live_redemption_id=redemption.id))
    ctx.session.flush()
    _append(ctx, kind="settlement.created", region=region, refs={"settlement": settlement.id, "region": region},
            data={"period": period.label, "total_fen": settlement.total_fen,
                  "lines": [{"provider_id": l.provider_id, "provider_region": l.provider_region,
                             "amount_fen": l.amount_fen, "redemption_count": l.redemption_count,
                             **({"offset_fen": l.offset_fen} if l.offset_fen else {})} for l in lines],
                  "positions": positions_of(settlement, lines),
                  "approvals_required": regions_touched(settlement, lines)})
    return settlement


def approve_settlement(ctx: Context, settlement_id: str, *, approver_region: str) -> Settlement:
    lock(ctx)
    settlement = get_settlement(ctx, settlement_id, for_update=True)
    check_transition("settlement", settlement.status, "approved", SETTLEMENT_TRANSITIONS)
    check_four_eyes(ctx.actor, settlement.created_by)
    required = regions_touched(settlement, lines_of(ctx, settlement_id))
    check_approval_region(approver_region, required)
    approvals = approvals_of(ctx, settlement_id)
    check_not_already_approved(approver_region, {a.region for a in approvals})
    check_one_approval_per_officer(ctx.actor, {a.principal_id for a in approvals})
    ctx.session.add(SettlementApproval(settlement_id=settlement_id, region=approver_region,
                                       principal_id=ctx.actor, approved_at=ctx.now_str))
    approved_regions = sorted({a.region for a in approvals} | {approver_region})
    if approved_regions == required:
        settlement.status = "approved"
        settlement.approved_at = ctx.now_str
        ctx.session.add(settlement)
    ctx.session.flush()
    _append(ctx, kind="settlement.approved", region=approver_region,
            refs={"settlement": settlement.id, "region": settlement.region},
            data={"approved_regions": approved_regions, "approvals_required": required, "status": settlement.status})
    return settlement


def execute_settlement(ctx: Context, settlement_id: str) -> Settlement:
    lock(ctx)
    settlement = get_settlement(ctx, settlement_id, for_update=True)
    if settlement.status == "draft":  # name the regions still to approve, not just the state
        check_approvals_complete(regions_touched(settlement, lines_of(ctx, settlement_id)),
                                 {a.region for a in approvals_of(ctx, settlement_id)})
    check_transition("settlement", settlement.status, "executed", SETTLEMENT_TRANSITIONS)
    redemptions = ctx.session.exec(
        select(Redemption).join(SettlementRedemption, SettlementRedemption.redemption_id == Redemption.id)
        .where(SettlementRedemption.settlement_id == settlement_id).with_for_update()).all()
    for redemption in redemptions:
        check_transition("redemption", redemption.status, "settled", REDEMPTION_TRANSITIONS)
        redemption.status = "settled"
        redemption.settled_at = ctx.now_str
        ctx.session.add(redemption)
    lines = lines_of(ctx, settlement_id)
    for line in lines:
        if line.offset_fen:
            check_offsets_still_open(line.offset_fen,
                                     recoveries.open_receivable_fen(ctx, settlement.region, line.provider_id),
                                     line.provider_id)
    settlement.status = "executed"
    settlement.executed_at = ctx.now_str
    settlement.executed_by = ctx.actor
    ctx.session.add(settlement)
    ctx.session.flush()
    _append(ctx, kind="settlement.executed", region=settlement.region,
            refs={"settlement": settlement.id, "region": settlement.region},
            postings=line_postings(settlement.region, lines),
            data={"period": settlement.period, "total_fen": settlement.total_fen,
                  "redemption_count": len(redemptions)})
    return settlement


def cancel_settlement(ctx: Context, settlement_id: str, *, reason: str) -> Settlement:
    lock(ctx)
    settlement = get_settlement(ctx, settlement_id, for_update=True)
    check_transition("settlement", settlement.status, "cancelled", SETTLEMENT_TRANSITIONS)
    for row in ctx.session.exec(select(SettlementRedemption)
                                .where(SettlementRedemption.settlement_id == settlement_id)).all():
        row.live_redemption_id = None  # released for a later batch
        ctx.session.add(row)
    settlement.status = "cancelled"
    settlement.cancelled_at = ctx.now_str
    settlement.cancelled_by = ctx.actor
    settlement.reason = reason
    ctx.session.add(settlement)
    ctx.session.flush()
    _append(ctx, kind="settlement.cancelled", region=settlement.region,
            refs={"settlement": settlement.id, "region": settlement.region}, data={"reason": reason})
    return settlement
