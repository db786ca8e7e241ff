"""The chart of accounts (DESIGN §3): every account name is built here, and here
is the one rule of which accounts may go negative.

It sits in the pure ledger package, not in programme/, because the offline
verifier, which may import nothing else of the project, must apply the same
may-go-negative rule as the journal that writes the balances.
"""
from __future__ import annotations

TREASURY_PREFIX = "treasury:"
BUDGET_PREFIX = "budget:"
VOUCHER_PREFIX = "voucher:"
HELD_SUFFIX = ":held"
PAYABLE_PREFIX = "payable:"
PAID_PREFIX = "paid:"
RECEIVABLE_PREFIX = "receivable:"


def treasury_account(region: str) -> str:
    """Region R's fund outside the programme: the only accounts that may go negative."""
    return f"{TREASURY_PREFIX}{region}"


def budget_account(region: str) -> str:
    """R's programme budget not yet granted."""
    return f"{BUDGET_PREFIX}{region}"


def voucher_account(voucher_id: str) -> str:
    """Voucher V's available value."""
    return f"{VOUCHER_PREFIX}{voucher_id}"


def held_account(voucher_id: str) -> str:
    """V's value held by open redemptions."""
    return f"{VOUCHER_PREFIX}{voucher_id}{HELD_SUFFIX}"


def payable_prefix(region: str) -> str:
    """What every account owed by R's programme to a provider starts with."""
    return f"{PAYABLE_PREFIX}{region}:"


def payable_account(region: str, provider_id: str) -> str:
    """Owed by R's programme to provider P."""
    return f"{payable_prefix(region)}{provider_id}"


def paid_account(provider_id: str) -> str:
    """Paid out to provider P."""
    return f"{PAID_PREFIX}{provider_id}"


def receivable_prefix(region: str) -> str:
    """What every account owed back to R's programme by a provider starts with."""
    return f"{RECEIVABLE_PREFIX}{region}:"


def receivable_account(region: str, provider_id: str) -> str:
    """Owed back to R's programme by provider P after a recovery of money already paid (DESIGN §9)."""
    return f"{receivable_prefix(region)}{provider_id}"


def may_go_negative(account: str) -> bool:
    """Only a treasury may: money comes into the programme from outside it."""
    return account.startswith(TREASURY_PREFIX)
