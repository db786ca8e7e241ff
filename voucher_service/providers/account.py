"""A provider's own view (DESIGN §9): what each region owes it, what it was paid,
what it owes back, and its payout lines, from the ledger's account balances.

Balances are read by account name (the chart of accounts, ledger/accounts.py):
`payable:{R}:{P}` per region, `paid:{P}`, and `receivable:{R}:{P}` per region,
which recoveries of money already paid open (payout/recoveries.py).
Only accounts the ledger has touched have a row, so a region appears once it has
owed the provider something (with 0 once paid).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import select

from voucher_service.ledger.accounts import PAYABLE_PREFIX, RECEIVABLE_PREFIX, paid_account
from voucher_service.models import Account, Provider, Settlement, SettlementLine
from voucher_service.programme.context import Context


@dataclass(frozen=True)
class PayoutLine:
    settlement_id: str
    region: str  # the paying region
    period: str
    status: str  # the batch's
    amount_fen: int  # gross
    redemption_count: int
    offset_fen: int  # taken from what the provider owed the region back
    result: str | None  # the bank's: paid, failed, or not yet known

    @property
    def net_fen(self) -> int:
        return self.amount_fen - self.offset_fen


@dataclass
class ProviderAccount:
    provider_id: str
    region: str
    owed: dict[str, int] = field(default_factory=dict)        # paying region -> payable balance
    receivable: dict[str, int] = field(default_factory=dict)  # region -> owed back to it
    paid_fen: int = 0
    payout_lines: list[PayoutLine] = field(default_factory=list)

    @property
    def owed_fen(self) -> int:
        return sum(self.owed.values())

    @property
    def receivable_fen(self) -> int:
        return sum(self.receivable.values())


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _per_region(ctx: Context, prefix: str, provider_id: str) -> dict[str, int]:
    """Balances of `{prefix}{R}:{P}` by R: the LIKE narrows, the exact split decides."""
    rows = ctx.session.connection().execute(
        select(Account.name, Account.balance_fen)
        .where(Account.name.like(f"{_like(prefix)}%:{_like(provider_id)}", escape="\\")))
    found = {}
    for name, balance in rows:
        region, _, rest = name.removeprefix(prefix).partition(":")
        if rest == provider_id and region:
            found[region] = balance
    return dict(sorted(found.items()))


def provider_account(ctx: Context, provider_id: str) -> ProviderAccount:
    provider = ctx.get(Provider, provider_id, "provider")
    paid = ctx.session.connection().execute(
        select(Account.balance_fen).where(Account.name == paid_account(provider_id))).scalar_one_or_none()
    lines = ctx.session.connection().execute(
        select(SettlementLine.settlement_id, Settlement.region, Settlement.period, Settlement.status,
               SettlementLine.amount_fen, SettlementLine.redemption_count, SettlementLine.offset_fen,
               SettlementLine.result)
        .join(Settlement, Settlement.id == SettlementLine.settlement_id)
        .where(SettlementLine.provider_id == provider_id)
        .order_by(Settlement.created_at, SettlementLine.settlement_id))
    return ProviderAccount(provider_id=provider.id, region=provider.region,
                           owed=_per_region(ctx, PAYABLE_PREFIX, provider_id),
                           receivable=_per_region(ctx, RECEIVABLE_PREFIX, provider_id),
                           paid_fen=paid or 0, payout_lines=[PayoutLine(*row) for row in lines])
