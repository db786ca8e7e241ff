"""Reconciliation statements (DESIGN §2): for one region and one period, what
the ledger says was funded, issued, held, released, redeemed, returned and
settled; the balances at the period's end; what the region owes and is owed
by every other region; and cross-checks between the ledger (a replay of its
posting rows), the stored balances (`account`) and the business tables
(`voucher`, `redemption`, `settlement`).

Every figure is a SQL aggregate: nothing here loads postings into Python.
The whole statement is read from one snapshot (the caller opens the session:
a deferred read transaction on SQLite WAL, REPEATABLE READ on PostgreSQL), so
its totals, checks and the Merkle root it names all describe one ledger.

How the region's postings are found: every flow of DESIGN §3 that touches a
region R's accounts is recorded by an entry *of region R* (issue, reserve,
release, redeem, void, expire, and settlement by the paying region), and
`ledger_posting.region` copies the entry's region. So "R's postings" are one
range of the index (region, ts), and each posting's flow is recognised from
its account names:

    treasury:R -> budget:R          funded
    budget:R   -> voucher:V         issued
    voucher:V  -> voucher:V:held    reserved
    voucher:V:held -> voucher:V     released (claim lowered, cancelled, rejected)
    voucher:V:held -> payable:R:P   redeemed
    voucher:V  -> budget:R          returned: voided, expired, or released after the voucher closed
    payable:R:P -> paid:P           settled (paid out)

A posting of R that is none of these is counted by the `postings_classified`
check rather than silently left out of the totals.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Callable

from sqlalchemy import BigInteger, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session

from voucher_service.clock import rfc3339, utc_now
from voucher_service.journal import tree
from voucher_service.models import (
    Account,
    LedgerEntry,
    LedgerPosting,
    Provider,
    Redemption,
    Region,
    Settlement,
    SettlementLine,
    Voucher,
)
from voucher_service.payout.netting import net_positions
from voucher_service.payout.periods import PERIOD_PATTERN, Period, parse_period
from voucher_service.programme.errors import InvalidInput

# Account classes, as small integers so that SQL groups by one integer per posting.
CLASSES = ("other", "treasury", "budget", "voucher", "held", "payable", "paid")
CLASS_CODE = {name: code for code, name in enumerate(CLASSES)}
# (source class, destination class) of each flow of DESIGN §3.
FLOWS = {
    "funded": ("treasury", "budget"),
    "issued": ("budget", "voucher"),
    "reserved": ("voucher", "held"),
    "released": ("held", "voucher"),
    "redeemed": ("held", "payable"),
    "returned": ("voucher", "budget"),
    "settled": ("payable", "paid"),
}
FLOW_OF_PAIR = {pair: name for name, pair in FLOWS.items()}
# Entry kinds whose every entry carries at least one posting (a claim posts only
# when it lowers the amount; a void or expiry only when value is left).
ALWAYS_POSTING_KINDS = ("budget.funded", "voucher.issued", "redemption.reserved", "redemption.redeemed",
                        "redemption.cancelled", "redemption.rejected", "settlement.executed")
DETAIL_NAMES = 5  # mismatching accounts or vouchers named in a check's detail


def parse_statement_period(label: str) -> tuple[Period, str, str]:
    """The period and its [start, end) in UTC, or InvalidInput (a 422) for a label
    that matches the pattern but names no representable period (year 0, 9999-12)."""
    # ASCII only: the pattern's \d also matches other scripts' digits (２０２６-01).
    if not isinstance(label, str) or not label.isascii() or not PERIOD_PATTERN.fullmatch(label):
        raise InvalidInput("period", "period must be YYYY-MM (a month) or YYYY-Qn (a quarter)")
    try:
        period = parse_period(label)
        start, end = period.bounds_utc()
    except (ValueError, OverflowError):
        raise InvalidInput("period", f"period {label} is out of the supported range of dates") from None
    return period, start, end


# --- account names as SQL -------------------------------------------------------

def _has_prefix(column, prefix: str):
    # substr rather than LIKE: exact (SQLite's LIKE ignores case), no escaping,
    # the same on SQLite and PostgreSQL.
    return func.substr(column, 1, len(prefix)) == prefix


def _is_held(column):
    return and_(_has_prefix(column, "voucher:"), func.substr(column, func.length(column) - 4) == ":held")


def _account_class(column, region: str):
    """The CLASSES code of an account name, in SQL."""
    held_or_available = case((func.substr(column, func.length(column) - 4) == ":held", CLASS_CODE["held"]),
                             else_=CLASS_CODE["voucher"])
    return case(
        (_has_prefix(column, "voucher:"), held_or_available),
        (column == f"budget:{region}", CLASS_CODE["budget"]),
        (_has_prefix(column, f"payable:{region}:"), CLASS_CODE["payable"]),
        (_has_prefix(column, "paid:"), CLASS_CODE["paid"]),
        (column == f"treasury:{region}", CLASS_CODE["treasury"]),
        else_=CLASS_CODE["other"])


def _flow_code(region: str):
    """One integer per posting for its (source class, destination class)."""
    return _account_class(LedgerPosting.source, region) * 8 + _account_class(LedgerPosting.destination, region)


def _pair(code: int) -> tuple[str, str]:
    return CLASSES[code // 8], CLASSES[code % 8]


def _int(value) -> int:
    # PostgreSQL's SUM(bigint) is numeric (a Decimal in Python); amounts are whole fen.
    return int(value or 0)


# --- the queries ------------------------------------------------------------------

def _flows_all_time(session: Session, region: str, end: str) -> list[tuple[tuple[str, str], bool, int, int]]:
    """R's postings of all time, summed per flow and per side of the period's end:
    one pass over R's range of the (region, ts) index, grouped by two integers.
    Rows: ((source class, destination class), before end?, fen, postings)."""
    p = LedgerPosting
    rows = select(_flow_code(region).label("flow"), case((p.ts < end, 1), else_=0).label("before_end"),
                  p.amount_fen.label("amount_fen")).where(p.region == region).subquery()
    query = (select(rows.c.flow, rows.c.before_end, func.sum(rows.c.amount_fen), func.count())
             .group_by(rows.c.flow, rows.c.before_end))
    return [(_pair(int(flow)), bool(before_end), _int(fen), int(count))
            for flow, before_end, fen, count in session.exec(query)]


def _flows_in_period(session: Session, region: str, start: str, end: str) -> list[tuple]:
    """R's postings of the period only (its range of the (region, ts) index), per
    flow and entry kind. Rows: ((source class, destination class), kind, fen,
    lowest seq, highest seq)."""
    p = LedgerPosting
    rows = select(_flow_code(region).label("flow"), p.kind.label("kind"), p.amount_fen.label("amount_fen"),
                  p.seq.label("seq")).where(p.region == region, p.ts >= start, p.ts < end).subquery()
    query = (select(rows.c.flow, rows.c.kind, func.sum(rows.c.amount_fen), func.min(rows.c.seq),
                    func.max(rows.c.seq))
             .group_by(rows.c.flow, rows.c.kind))
    return [(_pair(int(flow)), kind, _int(fen), int(low), int(high))
            for flow, kind, fen, low, high in session.exec(query)]


def _account_mismatches(session: Session, region: str) -> tuple[int, list[tuple[str, int, int]]]:
    """Accounts of R whose stored balance differs from the replay of the ledger's
    posting rows: (how many, the first few as (name, replay, stored)).

    R's accounts: treasury:R, budget:R, voucher:V and voucher:V:held of R's
    vouchers, payable:R:P of every provider, and paid:P of R's own providers
    (paid into by every region, so replayed from the destination index).
    """
    p = LedgerPosting.__table__.c
    zero = literal(0, BigInteger)
    paid_of_provider = literal("paid:") + Provider.id
    not_paid = lambda column: ~_has_prefix(column, "paid:")  # noqa: E731
    moves = [
        select(p.source.label("name"), (-p.amount_fen).label("replay"), zero.label("stored"))
        .where(p.region == region, not_paid(p.source)),
        select(p.destination, p.amount_fen, zero).where(p.region == region, not_paid(p.destination)),
        select(p.destination, p.amount_fen, zero).select_from(Provider)
        .join(LedgerPosting, p.destination == paid_of_provider).where(Provider.region == region),
        select(p.source, -p.amount_fen, zero).select_from(Provider)
        .join(LedgerPosting, p.source == paid_of_provider).where(Provider.region == region),
        select(Account.name, zero, Account.balance_fen)
        .where(Account.name.in_([f"treasury:{region}", f"budget:{region}"])),
        select(Account.name, zero, Account.balance_fen).select_from(Voucher)
        .join(Account, Account.name == literal("voucher:") + Voucher.id).where(Voucher.region == region),
        select(Account.name, zero, Account.balance_fen).select_from(Voucher)
        .join(Account, Account.name == literal("voucher:") + Voucher.id + literal(":held"))
        .where(Voucher.region == region),
        select(Account.name, zero, Account.balance_fen).select_from(Provider)
        .join(Account, Account.name == literal(f"payable:{region}:") + Provider.id),
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
    return int(rows[0][3]), [(name, _int(replay), _int(stored)) for name, replay, stored, _count in rows]


def _voucher_figures(session: Session, region: str) -> dict:
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
             .outerjoin(available, available.name == literal("voucher:") + v.id)
             .outerjoin(held, held.name == literal("voucher:") + v.id + literal(":held"))
             .where(v.region == region))
    count, face, avail, held_sum, redeemed, returned, broken, off = session.exec(query).one()
    figures = {"count": int(count), "face": _int(face), "available": _int(avail), "held": _int(held_sum),
               "redeemed": _int(redeemed), "returned": _int(returned), "identity_broken": _int(broken),
               "off_accounts": _int(off), "identity_examples": [], "off_examples": []}
    if figures["identity_broken"]:
        figures["identity_examples"] = list(session.exec(
            select(v.id).where(v.region == region, broken_identity).order_by(v.id).limit(DETAIL_NAMES)).scalars())
    if figures["off_accounts"]:
        figures["off_examples"] = list(session.exec(
            select(v.id).select_from(v)
            .outerjoin(available, available.name == literal("voucher:") + v.id)
            .outerjoin(held, held.name == literal("voucher:") + v.id + literal(":held"))
            .where(v.region == region, off_accounts).order_by(v.id).limit(DETAIL_NAMES)).scalars())
    return figures


def _redemption_figures(session: Session, region: str) -> dict:
    r = Redemption
    query = select(func.sum(case((r.status == "redeemed", r.amount_fen), else_=0)),
                   func.sum(case((r.status == "redeemed", 1), else_=0)),
                   func.sum(case((r.status == "settled", r.amount_fen), else_=0))).where(r.region == region)
    unsettled, unsettled_count, settled = session.exec(query).one()
    return {"unsettled": _int(unsettled), "unsettled_count": _int(unsettled_count), "settled": _int(settled)}


def _executed_settlement_fen(session: Session, region: str) -> int:
    query = (select(func.coalesce(func.sum(SettlementLine.amount_fen), 0))
             .join(Settlement, Settlement.id == SettlementLine.settlement_id)
             .where(Settlement.region == region, Settlement.status == "executed"))
    return _int(session.exec(query).scalar_one())


def _entries_vs_posting_rows(session: Session, region: str, low: int, high: int) -> tuple[int, int]:
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


def _stored_total(session: Session) -> int:
    return _int(session.exec(select(func.coalesce(func.sum(Account.balance_fen), 0))).scalar_one())


def _outstanding_by_region(session: Session, region: str, end: str) -> dict[str, int]:
    """payable:R:P at period end, per provider home region: for each provider two
    seeks of the (destination, ts) and (source, ts) indexes, bounded by ts < end."""
    p = LedgerPosting.__table__.c
    account = literal(f"payable:{region}:") + Provider.id
    owed = (select(func.coalesce(func.sum(p.amount_fen), 0)).where(p.destination == account, p.ts < end)
            .scalar_subquery())
    paid = (select(func.coalesce(func.sum(p.amount_fen), 0)).where(p.source == account, p.ts < end)
            .scalar_subquery())
    query = select(Provider.region, func.sum(owed - paid)).group_by(Provider.region)
    return {provider_region: _int(fen) for provider_region, fen in session.exec(query)}


def _obligations(session: Session, region: str, regions: list[str], start: str, end: str) -> dict:
    """Redemptions redeemed in the period that involve R, summed per (issuing
    region, provider's home region): the (region, ts) index for every region of
    the scheme over the period only, each posting's provider found by primary key."""
    p = LedgerPosting.__table__.c
    payable_prefix = literal("payable:") + p.region + literal(":")
    provider_id = func.substr(p.destination, func.length(p.region) + 10)  # after "payable:{region}:"
    query = (select(p.region, Provider.region, func.sum(p.amount_fen))
             .select_from(LedgerPosting).join(Provider, Provider.id == provider_id)
             .where(p.region.in_(regions), p.ts >= start, p.ts < end, _is_held(p.source),
                    func.substr(p.destination, 1, func.length(p.region) + 9) == payable_prefix,
                    or_(p.region == region, Provider.region == region))
             .group_by(p.region, Provider.region))
    return {(debtor, creditor): _int(fen) for debtor, creditor, fen in session.exec(query)}


# --- the statement ------------------------------------------------------------------

def _check(name: str, expected: int, actual: int, detail: str) -> dict:
    return {"name": name, "ok": expected == actual, "expected": expected, "actual": actual, "detail": detail}


def _fold(all_time: list[tuple], in_period: list[tuple]) -> dict:
    """The few aggregated rows of the two flow queries into flows and class balances."""
    flows = {window: defaultdict(int) for window in ("period", "to_end", "all")}
    balances = {window: defaultdict(int) for window in ("to_end", "all")}
    unclassified = {"postings": 0, "pairs": set()}
    for (src, dst), before_end, fen, postings in all_time:
        flow = FLOW_OF_PAIR.get((src, dst))
        if flow is None:
            unclassified["postings"] += postings
            unclassified["pairs"].add(f"{src} -> {dst}")
        for window in ("all", "to_end") if before_end else ("all",):
            if flow is not None:
                flows[window][flow] += fen
            balances[window][src] -= fen
            balances[window][dst] += fen
    returned_by_kind: dict[str, int] = defaultdict(int)
    seqs = []
    for (src, dst), kind, fen, low, high in in_period:
        flow = FLOW_OF_PAIR.get((src, dst))
        if flow is not None:
            flows["period"][flow] += fen
        if flow == "returned":
            returned_by_kind[kind] += fen
        seqs += [low, high]
    window = (min(seqs), max(seqs)) if seqs else None
    return {"flows": flows, "balances": balances, "returned_by_kind": returned_by_kind,
            "unclassified": unclassified, "period_seq_window": window}


def build_statement(session: Session, region: str, period_label: str, *,
                    clock: Callable[[], datetime] = utc_now) -> dict:
    """The unsigned statement of `region` for `period_label`, read in `session`
    (which the caller opened as a snapshot). Raises InvalidInput for a bad period."""
    period, start, end = parse_statement_period(period_label)
    # The first read fixes the snapshot; the statement is generated after it,
    # so every entry it covers is older than `generated_at`.
    size = tree.tree_size(session)
    generated_at = rfc3339(clock())
    root = tree.root_at(session, size)
    regions = list(session.exec(select(Region.code).order_by(Region.code)).scalars())

    folded = _fold(_flows_all_time(session, region, end), _flows_in_period(session, region, start, end))
    flows, balances = folded["flows"], folded["balances"]
    returned = folded["returned_by_kind"]
    to_end, all_time = balances["to_end"], balances["all"]

    outstanding = _outstanding_by_region(session, region, end)
    obligations = _obligations(session, region, regions, start, end)
    mismatches, mismatch_rows = _account_mismatches(session, region)
    vouchers = _voucher_figures(session, region)
    redemptions = _redemption_figures(session, region)
    executed_fen = _executed_settlement_fen(session, region)
    window = folded["period_seq_window"]
    entries_expected, entries_with_postings = (_entries_vs_posting_rows(session, region, *window)
                                               if window else (0, 0))
    stored_total = _stored_total(session)
    budget_stored = session.get(Account, f"budget:{region}")

    payable_end = to_end["payable"]
    totals = {
        "funded_fen": flows["period"]["funded"],
        "issued_fen": flows["period"]["issued"],
        "reserved_fen": flows["period"]["reserved"],
        "released_fen": flows["period"]["released"],
        "redeemed_fen": flows["period"]["redeemed"],
        "voided_fen": returned.get("voucher.voided", 0),
        "expired_fen": returned.get("voucher.expired", 0),
        # Held value given back to the budget because the voucher had closed
        # (voided or expired) when its redemption was released.
        "released_to_budget_fen": sum(fen for kind, fen in returned.items()
                                      if kind not in ("voucher.voided", "voucher.expired")),
        "settled_paid_fen": flows["period"]["settled"],
        "as_of_end": {
            "budget_fen": to_end["budget"],
            "vouchers_available_fen": to_end["voucher"],
            "vouchers_held_fen": to_end["held"],
            "payable_fen": payable_end,
            "paid_fen": flows["to_end"]["settled"],
        },
    }

    others = [code for code in regions if code != region]
    gross = []
    for other in others:
        gross.append({"from": region, "to": other, "amount_fen": obligations.get((region, other), 0)})
        gross.append({"from": other, "to": region, "amount_fen": obligations.get((other, region), 0)})
    netted = {frozenset((p["from"], p["to"])): p for p in net_positions(
        (g["from"], g["to"], g["amount_fen"]) for g in gross)}
    net = [netted.get(frozenset((region, other)), {"from": region, "to": other, "amount_fen": 0}) for other in others]
    net_fen = sum(p["amount_fen"] if p["to"] == region else -p["amount_fen"] for p in net)
    positions = {
        "gross": gross,
        "net": net,
        # Positive: the other regions owe this region on balance; negative: it owes them.
        "net_fen": net_fen,
        "within_region_fen": obligations.get((region, region), 0),
    }

    first = ", ".join(f"{name} (ledger {replay}, stored {stored})" for name, replay, stored in mismatch_rows)
    unclassified = folded["unclassified"]
    checks = [
        _check("accounts_replay_vs_stored", 0, mismatches,
               f"accounts of {region} whose stored balance differs from the replay of their ledger postings"
               + (f"; first: {first}" if first else "")),
        _check("budget_replay_vs_stored", all_time["budget"], budget_stored.balance_fen if budget_stored else 0,
               f"budget:{region}: ledger replay (expected) vs stored balance (actual)"),
        _check("vouchers_available_vs_ledger", all_time["voucher"], vouchers["available"],
               f"available value of {region}'s {vouchers['count']} vouchers: ledger replay of voucher:V accounts "
               f"(expected) vs voucher table (actual)"),
        _check("vouchers_held_vs_ledger", all_time["held"], vouchers["held"],
               f"held value of {region}'s vouchers: ledger replay of voucher:V:held accounts (expected) "
               f"vs voucher table (actual)"),
        _check("voucher_rows_vs_accounts", 0, vouchers["off_accounts"],
               f"{region}'s vouchers whose available or held value differs from their stored accounts"
               + (f"; first: {', '.join(vouchers['off_examples'])}" if vouchers["off_examples"] else "")),
        _check("voucher_identity", 0, vouchers["identity_broken"],
               f"{region}'s vouchers where available + held + redeemed + returned != face value"
               + (f"; first: {', '.join(vouchers['identity_examples'])}" if vouchers["identity_examples"] else "")),
        _check("vouchers_face_vs_issued", flows["all"]["issued"], vouchers["face"],
               f"issued budget:{region} -> voucher:V, all time (expected) vs face value of the vouchers (actual)"),
        _check("vouchers_redeemed_vs_ledger", flows["all"]["redeemed"], vouchers["redeemed"],
               f"redeemed voucher:V:held -> payable:{region}:P, all time (expected) vs redeemed value of the "
               f"vouchers (actual)"),
        _check("vouchers_returned_vs_ledger", flows["all"]["returned"], vouchers["returned"],
               f"returned voucher:V -> budget:{region}, all time (expected) vs returned value of the vouchers "
               f"(actual)"),
        _check("payable_vs_unsettled_redemptions", all_time["payable"], redemptions["unsettled"],
               f"payable:{region}:* ledger balance (expected) vs the {redemptions['unsettled_count']} redeemed, "
               f"unsettled redemptions of {region} (actual)"),
        _check("paid_vs_executed_settlements", flows["all"]["settled"], executed_fen,
               f"paid payable:{region}:P -> paid:P, all time (expected) vs lines of {region}'s executed "
               f"settlements (actual)"),
        _check("settled_redemptions_vs_ledger", flows["all"]["settled"], redemptions["settled"],
               f"paid by {region} in the ledger (expected) vs settled redemptions of {region} (actual)"),
        _check("posting_rows_vs_entries", entries_expected, entries_with_postings,
               f"entries of {region} of kinds that always post ({', '.join(ALWAYS_POSTING_KINDS)}) between its "
               f"first and last posting of the period"
               + (f" (seq {window[0]} to {window[1]})" if window else " (none)")
               + ": in ledger_entry (expected) vs with posting rows in ledger_posting (actual)"),
        _check("postings_classified", 0, unclassified["postings"],
               f"postings of {region} that are none of the flows of DESIGN §3"
               + (f": {', '.join(sorted(unclassified['pairs']))}" if unclassified["pairs"] else "")),
        _check("outstanding_by_provider_vs_region", payable_end, sum(outstanding.values()),
               f"payable:{region}:* at period end from {region}'s postings (expected) vs summed per provider "
               f"account (actual)"),
        _check("balances_sum_to_zero", 0, stored_total, "sum of every stored balance of the whole ledger"),
    ]

    return {
        "region": region,
        "period": period.label,
        "period_start": start,
        "period_end": end,
        "generated_at": generated_at,
        "totals": totals,
        "outstanding_liability_fen": payable_end,
        "outstanding_liability": [{"provider_region": code, "amount_fen": outstanding.get(code, 0)}
                                  for code in regions],
        "positions": positions,
        "checks": checks,
        "ledger": {"tree_size": size, "root": tree.b64(root)},
    }
