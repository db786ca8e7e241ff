"""Every figure of a statement, as a SQL aggregate: nothing here loads postings
into Python. The caller reads them all in one snapshot (a deferred read
transaction on SQLite WAL, REPEATABLE READ on PostgreSQL), so the totals,
checks and the Merkle root a statement names all describe one ledger."""
from __future__ import annotations

from sqlalchemy import BigInteger, case, func, literal, or_, select, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session

from voucher_service.ledger.accounts import PAID_PREFIX, PAYABLE_PREFIX, budget_account, treasury_account
from voucher_service.models import (
    Account,
    LedgerEntry,
    LedgerPosting,
    Provider,
    Redemption,
    Settlement,
    SettlementLine,
    Voucher,
)
from voucher_service.payout.reconciliation.flows import (
    ALWAYS_POSTING_KINDS,
    DETAIL_NAMES,
    as_int,
    flow_code,
    has_prefix,
    held_account_sql,
    is_held,
    paid_account_sql,
    pair_of,
    payable_account_sql,
    receivable_account_sql,
    voucher_account_sql,
)


def flows_all_time(session: Session, region: str, end: str) -> list[tuple[tuple[str, str], bool, int, int]]:
    """R's postings of all time, summed per flow and per side of the period's end:
    one pass over R's range of the (region, ts) index, grouped by two integers.
    Rows: ((source class, destination class), before end?, fen, postings)."""
    p = LedgerPosting
    rows = select(flow_code(region).label("flow"), case((p.ts < end, 1), else_=0).label("before_end"),
                  p.amount_fen.label("amount_fen")).where(p.region == region).subquery()
    query = (select(rows.c.flow, rows.c.before_end, func.sum(rows.c.amount_fen), func.count())
             .group_by(rows.c.flow, rows.c.before_end))
    return [(pair_of(int(flow)), bool(before_end), as_int(fen), int(count))
            for flow, before_end, fen, count in session.exec(query)]


def flows_in_period(session: Session, region: str, start: str, end: str) -> list[tuple]:
    """R's postings of the period only (its range of the (region, ts) index), per
    flow and entry kind. Rows: ((source class, destination class), kind, fen,
    lowest seq, highest seq)."""
    p = LedgerPosting
    rows = select(flow_code(region).label("flow"), p.kind.label("kind"), p.amount_fen.label("amount_fen"),
                  p.seq.label("seq")).where(p.region == region, p.ts >= start, p.ts < end).subquery()
    query = (select(rows.c.flow, rows.c.kind, func.sum(rows.c.amount_fen), func.min(rows.c.seq),
                    func.max(rows.c.seq))
             .group_by(rows.c.flow, rows.c.kind))
    return [(pair_of(int(flow)), kind, as_int(fen), int(low), int(high))
            for flow, kind, fen, low, high in session.exec(query)]


def account_mismatches(session: Session, region: str) -> tuple[int, list[tuple[str, int, int]]]:
    """Accounts of R whose stored balance differs from the replay of the ledger's
    posting rows: (how many, the first few as (name, replay, stored)).

    R's accounts: treasury:R, budget:R, voucher:V and voucher:V:held of R's
    vouchers, payable:R:P and receivable:R:P of every provider, and paid:P of R's own providers
    (paid into by every region, so replayed from the destination index).
    """
    p = LedgerPosting.__table__.c
    zero = literal(0, BigInteger)
    paid_of_provider = paid_account_sql(Provider.id)
    not_paid = lambda column: ~has_prefix(column, PAID_PREFIX)  # noqa: E731
    moves = [
        select(p.source.label("name"), (-p.amount_fen).label("replay"), zero.label("stored"))
        .where(p.region == region, not_paid(p.source)),
        select(p.destination, p.amount_fen, zero).where(p.region == region, not_paid(p.destination)),
        select(p.destination, p.amount_fen, zero).select_from(Provider)
        .join(LedgerPosting, p.destination == paid_of_provider).where(Provider.region == region),
        select(p.source, -p.amount_fen, zero).select_from(Provider)
        .join(LedgerPosting, p.source == paid_of_provider).where(Provider.region == region),
        select(Account.name, zero, Account.balance_fen)
        .where(Account.name.in_([treasury_account(region), budget_account(region)])),
        select(Account.name, zero, Account.balance_fen).select_from(Voucher)
        .join(Account, Account.name == voucher_account_sql(Voucher.id)).where(Voucher.region == region),
        select(Account.name, zero, Account.balance_fen).select_from(Voucher)
        .join(Account, Account.name == held_account_sql(Voucher.id))
        .where(Voucher.region == region),
        select(Account.name, zero, Account.balance_fen).select_from(Provider)
        .join(Account, Account.name == payable_account_sql(region, Provider.id)),
        select(Account.name, zero, Account.balance_fen).select_from(Provider)
        .join(Account, Account.name == receivable_account_sql(region, Provider.id)),
        select(Account.name, zero, Account.balance_fen).select_from(Provider)
        .join(Account, Account.name == paid_of_provider).where(Provider.region == region),
    ]
    both = union_all(*moves).subquery()
    per_account = (select(both.c.name, func.sum(both.c.replay).label("replay"), func.sum(both.c.stored).label("stored"))
                   .group_by(both.c.name).subquery())
    query = (select(per_account.c.name, per_account.c.replay, per_account.c.stored, func.count().over())
             .where(per_account.c.replay != per_account.c.stored)
             .order_by(per_account.c.name).limit(DETAIL_NAMES))
    rows = session.exec(query).all()
    if not rows:
        return 0, []
    return int(rows[0][3]), [(name, as_int(replay), as_int(stored)) for name, replay, stored, _count in rows]


def voucher_figures(session: Session, region: str) -> dict:
    """R's vouchers in one pass: sums of their balance columns, how many break the
    face-value identity, and how many disagree with their stored accounts."""
    available, held = aliased(Account), aliased(Account)
    v = Voucher
    off_accounts = or_(func.coalesce(available.balance_fen, 0) != v.available_fen,
                       func.coalesce(held.balance_fen, 0) != v.held_fen)
    broken_identity = v.available_fen + v.held_fen + v.redeemed_fen + v.returned_fen != v.face_fen
    query = (select(func.count(), func.sum(v.face_fen), func.sum(v.available_fen), func.sum(v.held_fen),
                    func.sum(v.redeemed_fen), func.sum(v.returned_fen),
                    func.sum(case((broken_identity, 1), else_=0)), func.sum(case((off_accounts, 1), else_=0)))
             .select_from(v)
             .outerjoin(available, available.name == voucher_account_sql(v.id))
             .outerjoin(held, held.name == held_account_sql(v.id))
             .where(v.region == region))
    count, face, avail, held_sum, redeemed, returned, broken, off = session.exec(query).one()
    figures = {"count": int(count), "face": as_int(face), "available": as_int(avail), "held": as_int(held_sum),
               "redeemed": as_int(redeemed), "returned": as_int(returned), "identity_broken": as_int(broken),
               "off_accounts": as_int(off), "identity_examples": [], "off_examples": []}
    if figures["identity_broken"]:
        figures["identity_examples"] = list(session.exec(
            select(v.id).where(v.region == region, broken_identity).order_by(v.id).limit(DETAIL_NAMES)).scalars())
    if figures["off_accounts"]:
        figures["off_examples"] = list(session.exec(
            select(v.id).select_from(v)
            .outerjoin(available, available.name == voucher_account_sql(v.id))
            .outerjoin(held, held.name == held_account_sql(v.id))
            .where(v.region == region, off_accounts).order_by(v.id).limit(DETAIL_NAMES)).scalars())
    return figures


def redemption_figures(session: Session, region: str) -> dict:
    r = Redemption
    # Paid: settled, or recovered after it was settled (the recovery is its own flow).
    paid = (r.status == "settled") | ((r.status == "recovered") & r.settled_at.is_not(None))
    query = select(func.sum(case((r.status == "redeemed", r.amount_fen), else_=0)),
                   func.sum(case((r.status == "redeemed", 1), else_=0)),
                   func.sum(case((paid, r.amount_fen), else_=0)),
                   func.coalesce(func.sum(r.recovered_fen), 0)).where(r.region == region)
    unsettled, unsettled_count, settled, recovered = session.exec(query).one()
    return {"unsettled": as_int(unsettled), "unsettled_count": as_int(unsettled_count), "settled": as_int(settled),
            "recovered": as_int(recovered)}


def executed_settlement_fen(session: Session, region: str) -> int:
    query = (select(func.coalesce(func.sum(SettlementLine.amount_fen), 0))
             .join(Settlement, Settlement.id == SettlementLine.settlement_id)
             .where(Settlement.region == region, Settlement.status.in_(("executed", "completed")),
                    SettlementLine.result.is_(None) | (SettlementLine.result != "failed")))
    return as_int(session.exec(query).scalar_one())


def entries_vs_posting_rows(session: Session, region: str, low: int, high: int) -> tuple[int, int]:
    """Within the seq window [low, high]: R's entries of kinds that always post,
    and how many of them have posting rows (their first posting, position 0).
    Both read primary-key ranges: `column || ''` keeps the planner off the
    region and kind indexes, which would read R's whole history instead."""
    unindexed = lambda column: column + literal("")  # noqa: E731
    entries = session.exec(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.seq >= low, LedgerEntry.seq <= high, unindexed(LedgerEntry.region) == region,
        unindexed(LedgerEntry.kind).in_(ALWAYS_POSTING_KINDS))).scalar_one()
    with_rows = session.exec(select(func.count()).select_from(LedgerPosting).where(
        LedgerPosting.seq >= low, LedgerPosting.seq <= high, LedgerPosting.position == 0,
        unindexed(LedgerPosting.region) == region,
        unindexed(LedgerPosting.kind).in_(ALWAYS_POSTING_KINDS))).scalar_one()
    return int(entries), int(with_rows)


def stored_total(session: Session) -> int:
    return as_int(session.exec(select(func.coalesce(func.sum(Account.balance_fen), 0))).scalar_one())


def outstanding_by_region(session: Session, region: str, end: str) -> dict[str, int]:
    """payable:R:P at period end, per provider home region: for each provider two
    seeks of the (destination, ts) and (source, ts) indexes, bounded by ts < end."""
    p = LedgerPosting.__table__.c
    account = payable_account_sql(region, Provider.id)
    owed = (select(func.coalesce(func.sum(p.amount_fen), 0)).where(p.destination == account, p.ts < end)
            .scalar_subquery())
    paid = (select(func.coalesce(func.sum(p.amount_fen), 0)).where(p.source == account, p.ts < end)
            .scalar_subquery())
    query = select(Provider.region, func.sum(owed - paid)).group_by(Provider.region)
    return {provider_region: as_int(fen) for provider_region, fen in session.exec(query)}


def obligations(session: Session, region: str, regions: list[str], start: str, end: str) -> dict:
    """Redemptions redeemed in the period that involve R, summed per (issuing
    region, provider's home region): the (region, ts) index for every region of
    the scheme over the period only, each posting's provider found by primary key."""
    p = LedgerPosting.__table__.c
    prefix = literal(PAYABLE_PREFIX) + p.region + literal(":")
    provider_id = func.substr(p.destination, func.length(prefix) + 1)  # after "payable:{region}:"
    query = (select(p.region, Provider.region, func.sum(p.amount_fen))
             .select_from(LedgerPosting).join(Provider, Provider.id == provider_id)
             .where(p.region.in_(regions), p.ts >= start, p.ts < end, is_held(p.source),
                    func.substr(p.destination, 1, func.length(prefix)) == prefix,
                    or_(p.region == region, Provider.region == region))
             .group_by(p.region, Provider.region))
    return {(debtor, creditor): as_int(fen) for debtor, creditor, fen in session.exec(query)}
