"""The programme's public figures: per month (Asia/Shanghai) × issuing region ×
provider's home region, summed from the ledger's posting rows, never from the
domain tables, so that anyone holding the export can recompute every figure.

Three flows of DESIGN §3 are counted:

- issued: `voucher.issued`, budget:R → voucher:V (no provider yet, so these
  figures sit on rows whose provider region is None);
- redeemed: `redemption.redeemed`, voucher:V:held → payable:R:P;
- settled: `settlement.executed`, payable:R:P → paid:P.

R is the entry's region (the issuing region records both the redemption and the
settlement that pays it); a provider's home region is read from the registry,
which never changes a provider's region.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, case, func, literal, or_, select

from voucher_service.clock import PROGRAMME_TIMEZONE, local_date, local_midnight_utc
from voucher_service.ledger.accounts import BUDGET_PREFIX, PAID_PREFIX, PAYABLE_PREFIX, VOUCHER_PREFIX
from voucher_service.models import LedgerHead, LedgerPosting, Provider, Region
from voucher_service.payout.periods import MAX_YEAR, MIN_YEAR
from voucher_service.payout.reconciliation.flows import as_int, has_prefix, is_held
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput
from voucher_service.programme.regions import get_region

# ASCII digits, matched whole; the "$" stays for the published (JavaScript) pattern.
MONTH_PATTERN = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
# Ten years: each month is one arm of a CASE, and a public endpoint must stay cheap.
MAX_MONTHS = 120
FIGURES = ("vouchers_issued", "issued_fen", "redemptions", "redeemed_fen", "settled_fen",
           "cross_region_redeemed_fen")


@dataclass(frozen=True)
class Month:
    label: str
    start_utc: str  # RFC 3339, local midnight of the first day
    end_utc: str  # exclusive: local midnight of the next month's first day


def parse_month(text: str, field: str) -> tuple[int, int]:
    match = MONTH_PATTERN.fullmatch(text or "")
    if not match:
        raise InvalidInput(field, f"{field} must be a month, YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidInput(field, f"{field} {text} is out of range ({MIN_YEAR}-{MAX_YEAR})")
    return year, month


def months_between(first: str, last: str, tz_name: str = PROGRAMME_TIMEZONE) -> list[Month]:
    """Every month from `first` to `last`, both included, with its UTC bounds."""
    year, month = parse_month(first, "from")
    last_year, last_month = parse_month(last, "to")
    count = (last_year - year) * 12 + (last_month - month) + 1
    if count < 1:
        raise InvalidInput("to", f"to ({last}) is before from ({first})")
    if count > MAX_MONTHS:
        raise InvalidInput("to", f"at most {MAX_MONTHS} months per report ({count} asked)")
    months = []
    for _ in range(count):
        following = (year + month // 12, month % 12 + 1)
        months.append(Month(f"{year:04d}-{month:02d}",
                            local_midnight_utc(date(year, month, 1), tz_name),
                            local_midnight_utc(date(*following, 1), tz_name)))
        year, month = following
    return months


def current_month(ctx: Context) -> str:
    return local_date(ctx.now).strftime("%Y-%m")


def _month_index(months: list[Month]):
    # RFC 3339 UTC strings of one fixed width order as the instants they name.
    return case(*[(LedgerPosting.ts < m.end_utc, index) for index, m in enumerate(months)], else_=-1)


def _in_window(months: list[Month], size: int, kind: str, regions: list[str]):
    p = LedgerPosting
    # seq < size: every figure describes the same ledger prefix, however the
    # three reads below interleave with writers. Naming every region lets the
    # planner read the window from the (region, ts) index instead of the table.
    return and_(p.seq < size, p.kind == kind, p.region.in_(regions), p.ts >= months[0].start_utc,
                p.ts < months[-1].end_utc)


def _issued(session, months, size, region, regions):
    p = LedgerPosting
    month = _month_index(months).label("month")
    query = (select(month, p.region, func.count(), func.sum(p.amount_fen))
             .where(_in_window(months, size, "voucher.issued", regions), has_prefix(p.source, BUDGET_PREFIX),
                    has_prefix(p.destination, VOUCHER_PREFIX), ~is_held(p.destination))
             .group_by(month, p.region))
    if region:
        query = query.where(p.region == region)
    return session.exec(query).all()


def _to_providers(session, months, size, region, regions, *, kind, source_ok, prefix_sql):
    """Postings of `kind` into an account named prefix + provider id, per provider home region."""
    p = LedgerPosting
    provider_id = func.substr(p.destination, func.length(prefix_sql) + 1)
    month = _month_index(months).label("month")
    query = (select(month, p.region, Provider.region, func.count(), func.sum(p.amount_fen))
             .select_from(LedgerPosting).join(Provider, Provider.id == provider_id)
             .where(_in_window(months, size, kind, regions), source_ok,
                    func.substr(p.destination, 1, func.length(prefix_sql)) == prefix_sql)
             .group_by(month, p.region, Provider.region))
    if region:
        query = query.where(or_(p.region == region, Provider.region == region))
    return session.exec(query).all()


def empty_figures() -> dict:
    return {name: 0 for name in FIGURES}


def programme_report(ctx: Context, *, first: str | None = None, last: str | None = None,
                     region: str | None = None) -> dict:
    """The report of DESIGN §8. `last` defaults to this month, `first` to the
    January of `last`'s year; `region` keeps the rows it issued or whose
    provider it is home to."""
    last = last or current_month(ctx)
    parse_month(last, "to")  # before `first` is derived from it
    first = first or f"{last[:4]}-01"
    months = months_between(first, last)
    if region is not None:
        get_region(ctx, region)
    session = ctx.session
    size = int(session.exec(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one_or_none() or 0)
    regions = list(session.exec(select(Region.code)).scalars())
    p = LedgerPosting
    rows: dict[tuple, dict] = {}

    def row(month_index: int, issuing: str, provider_region: str | None) -> dict:
        key = (months[month_index].label, issuing, provider_region)
        if key not in rows:
            rows[key] = {"month": key[0], "issuing_region": issuing, "provider_region": provider_region,
                         **empty_figures()}
        return rows[key]

    for month_index, issuing, count, fen in _issued(session, months, size, region, regions):
        figures = row(int(month_index), issuing, None)
        figures["vouchers_issued"] += int(count)
        figures["issued_fen"] += as_int(fen)
    redeemed = _to_providers(session, months, size, region, regions, kind="redemption.redeemed",
                             source_ok=is_held(p.source), prefix_sql=literal(PAYABLE_PREFIX) + p.region + literal(":"))
    for month_index, issuing, provider_region, count, fen in redeemed:
        figures = row(int(month_index), issuing, provider_region)
        figures["redemptions"] += int(count)
        figures["redeemed_fen"] += as_int(fen)
        if provider_region != issuing:
            figures["cross_region_redeemed_fen"] += as_int(fen)
    settled = _to_providers(session, months, size, region, regions, kind="settlement.executed",
                            source_ok=has_prefix(p.source, PAYABLE_PREFIX), prefix_sql=literal(PAID_PREFIX))
    for month_index, issuing, provider_region, _count, fen in settled:
        row(int(month_index), issuing, provider_region)["settled_fen"] += as_int(fen)

    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0], k[1], k[2] or ""))]
    totals = empty_figures()
    for figures in ordered:
        for name in FIGURES:
            totals[name] += figures[name]
    return {"from": first, "to": last, "region": region, "timezone": PROGRAMME_TIMEZONE, "ledger_size": size,
            "rows": ordered, "totals": totals}
