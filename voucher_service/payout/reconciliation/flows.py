"""The flows of DESIGN §3 as a statement sees them, and account names as SQL."""
from __future__ import annotations

from sqlalchemy import and_, case, func, literal

from voucher_service.ledger.accounts import (
    HELD_SUFFIX,
    PAID_PREFIX,
    VOUCHER_PREFIX,
    budget_account,
    payable_prefix,
    receivable_prefix,
    treasury_account,
)
from voucher_service.models import LedgerPosting

# Account classes, as small integers so that SQL groups by one integer per posting.
CLASSES = ("other", "treasury", "budget", "voucher", "held", "payable", "paid", "receivable")  # 8 at most
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
    # Money that comes back (DESIGN §9).
    "recovered_unpaid": ("payable", "budget"),      # recovered before settlement
    "recovered_paid": ("paid", "receivable"),       # recovered after: the provider owes it
    "receivable_closed": ("receivable", "budget"),  # repaid, or offset by a batch
    "offset_reversed": ("budget", "receivable"),    # a failed line's offset, owed again
    "payment_failed": ("paid", "payable"),          # a failed line's payment, owed again
}
FLOW_OF_PAIR = {pair: name for name, pair in FLOWS.items()}
# Entry kinds whose every entry carries at least one posting (a claim posts only
# when it lowers the amount; a void or expiry only when value is left).
ALWAYS_POSTING_KINDS = ("budget.funded", "voucher.issued", "redemption.reserved", "redemption.redeemed",
                        "redemption.cancelled", "redemption.rejected", "settlement.executed")
DETAIL_NAMES = 5  # mismatching accounts or vouchers named in a check's detail


def has_prefix(column, prefix: str):
    # substr rather than LIKE: exact (SQLite's LIKE ignores case), no escaping,
    # the same on SQLite and PostgreSQL.
    return func.substr(column, 1, len(prefix)) == prefix


def has_held_suffix(column):
    return func.substr(column, func.length(column) - (len(HELD_SUFFIX) - 1)) == HELD_SUFFIX


def is_held(column):
    return and_(has_prefix(column, VOUCHER_PREFIX), has_held_suffix(column))


# The chart of accounts (ledger/accounts.py) with SQL columns for the ids.

def voucher_account_sql(voucher_id):
    return literal(VOUCHER_PREFIX) + voucher_id


def held_account_sql(voucher_id):
    return literal(VOUCHER_PREFIX) + voucher_id + literal(HELD_SUFFIX)


def payable_account_sql(region: str, provider_id):
    return literal(payable_prefix(region)) + provider_id


def receivable_account_sql(region: str, provider_id):
    return literal(receivable_prefix(region)) + provider_id


def paid_account_sql(provider_id):
    return literal(PAID_PREFIX) + provider_id


def account_class(column, region: str):
    """The CLASSES code of an account name, in SQL."""
    held_or_available = case((has_held_suffix(column), CLASS_CODE["held"]), else_=CLASS_CODE["voucher"])
    return case(
        (has_prefix(column, VOUCHER_PREFIX), held_or_available),
        (column == budget_account(region), CLASS_CODE["budget"]),
        (has_prefix(column, payable_prefix(region)), CLASS_CODE["payable"]),
        (has_prefix(column, PAID_PREFIX), CLASS_CODE["paid"]),
        (has_prefix(column, receivable_prefix(region)), CLASS_CODE["receivable"]),
        (column == treasury_account(region), CLASS_CODE["treasury"]),
        else_=CLASS_CODE["other"])


def flow_code(region: str):
    """One integer per posting for its (source class, destination class)."""
    return account_class(LedgerPosting.source, region) * 8 + account_class(LedgerPosting.destination, region)


def pair_of(code: int) -> tuple[str, str]:
    return CLASSES[code // 8], CLASSES[code % 8]


def as_int(value) -> int:
    # PostgreSQL's SUM(bigint) is numeric (a Decimal in Python); amounts are whole fen.
    return int(value or 0)
