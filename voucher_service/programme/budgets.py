"""Each region's programme budget: funded from its treasury, granted as vouchers."""
from __future__ import annotations

from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, treasury_account
from voucher_service.programme.context import Context
from voucher_service.programme.writes import append, lock


def fund_budget(ctx: Context, region_code: str, amount_fen: int) -> None:
    lock(ctx)
    append(ctx, kind="budget.funded", region=region_code, refs={"region": region_code},
            postings=[Posting(treasury_account(region_code), budget_account(region_code), amount_fen)],
            data={"amount_fen": amount_fen})


def budget_remaining_fen(ctx: Context, region_code: str) -> int:
    return journal.account_balance(ctx.session, budget_account(region_code))
