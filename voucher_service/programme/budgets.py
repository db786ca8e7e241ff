"""Each region's programme budget: funded from its treasury, granted as vouchers.

A region has one budget account, `budget:R` (DESIGN §3). Its fiscal year is
the calendar year in Asia/Shanghai. Finance funds the current year only
(`rules.check_fiscal_year_current`); what is left unspent at the end of a year
stays in the account and is carried over: the next year starts with it. The
yearly figures are read from the ledger's postings, so they agree with the
ledger by construction:

    remaining(Y) = carried_over(Y) + funded(Y) + returned(Y) - granted(Y)
    carried_over(Y) = remaining(Y - 1)

where funded is what came from `treasury:R`, returned what came back from
vouchers (void, expiry) and granted what went to vouchers, each counted in the
fiscal year of its entry's `ts`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import func, select

from voucher_service.clock import local_date, local_midnight_utc
from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, treasury_account
from voucher_service.ledger.entry import parse_entry
from voucher_service.models import LedgerEntry, LedgerPosting
from voucher_service.programme.context import Context
from voucher_service.programme.rules import check_fiscal_year_current
from voucher_service.programme.writes import append, lock


def fund_budget(ctx: Context, region_code: str, amount_fen: int, *, fiscal_year: int | None = None,
                reference: str) -> object:
    """Move `amount_fen` from the region's treasury into its budget; the entry appended."""
    lock(ctx)
    current_year = local_date(ctx.now).year
    fiscal_year = current_year if fiscal_year is None else fiscal_year
    check_fiscal_year_current(fiscal_year, current_year)
    return append(ctx, kind="budget.funded", region=region_code, refs={"region": region_code},
                  postings=[Posting(treasury_account(region_code), budget_account(region_code), amount_fen)],
                  data={"amount_fen": amount_fen, "fiscal_year": fiscal_year, "reference": reference})


def budget_remaining_fen(ctx: Context, region_code: str) -> int:
    return journal.account_balance(ctx.session, budget_account(region_code))


@dataclass(frozen=True)
class BudgetYear:
    fiscal_year: int
    carried_over_fen: int
    funded_fen: int
    granted_fen: int
    returned_fen: int

    @property
    def remaining_fen(self) -> int:
        return self.carried_over_fen + self.funded_fen + self.returned_fen - self.granted_fen


def _sum_fen(ctx: Context, *conditions) -> int:
    return int(ctx.session.exec(select(func.coalesce(func.sum(LedgerPosting.amount_fen), 0))
                                .where(*conditions)).one())


def budget_years(ctx: Context, region_code: str) -> list[BudgetYear]:
    """One row per fiscal year, from the first with a posting on the budget to
    the current one (a year without postings is there too: it carries over)."""
    budget, treasury = budget_account(region_code), treasury_account(region_code)
    first_ts, last_ts = ctx.session.exec(select(func.min(LedgerPosting.ts), func.max(LedgerPosting.ts)).where(
        (LedgerPosting.source == budget) | (LedgerPosting.destination == budget))).one()
    if first_ts is None:
        return []
    first_year = _year_of(first_ts)
    last_year = max(_year_of(last_ts), local_date(ctx.now).year)
    years, carried_fen = [], 0
    for year in range(first_year, last_year + 1):
        # Two indexed range scans a year: (destination, ts) and (source, ts).
        start, end = local_midnight_utc(date(year, 1, 1)), local_midnight_utc(date(year + 1, 1, 1))
        into = (LedgerPosting.destination == budget, LedgerPosting.ts >= start, LedgerPosting.ts < end)
        funded_fen = _sum_fen(ctx, *into, LedgerPosting.source == treasury)
        returned_fen = _sum_fen(ctx, *into, LedgerPosting.source != treasury)
        granted_fen = _sum_fen(ctx, LedgerPosting.source == budget, LedgerPosting.ts >= start,
                               LedgerPosting.ts < end)
        row = BudgetYear(year, carried_fen, funded_fen, granted_fen, returned_fen)
        years.append(row)
        carried_fen = row.remaining_fen
    return years


def fundings(ctx: Context, region_code: str) -> list[dict]:
    """Every funding of the region's budget, oldest first, as its entry recorded it."""
    rows = ctx.session.exec(select(LedgerEntry.canonical).where(
        LedgerEntry.kind == "budget.funded", LedgerEntry.region == region_code).order_by(LedgerEntry.seq)).all()
    out = []
    for canonical in rows:
        entry = parse_entry(bytes(canonical))
        data = entry["data"]
        out.append({"seq": entry["seq"], "funded_at": entry["ts"], "funded_by": entry["actor"],
                    "amount_fen": data["amount_fen"],
                    # Entries from before fiscal years were recorded name neither.
                    "fiscal_year": data.get("fiscal_year", _year_of(entry["ts"])),
                    "reference": data.get("reference")})
    return out


def _year_of(ts: str) -> int:
    return local_date(datetime.fromisoformat(ts.replace("Z", "+00:00"))).year
