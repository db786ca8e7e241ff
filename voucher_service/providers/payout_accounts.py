"""The accounts providers are paid into, changed with four eyes (DESIGN §9).

An officer of the provider's home region proposes a change (it is *pending*); a
different officer of the home region confirms it, and only then is it the account
the finance payout file pays into. A second proposal while one is pending replaces
it (the ledger keeps both): a mistyped number can be corrected without a withdraw
step, and the replacer becomes the proposer, so it cannot confirm its own change.
A confirmer may name the change it reviewed (`change_id`): a change proposed since
is then refused, not confirmed unseen.

The number itself never leaves this module but through `accounts_for_payout` (the
payout file): ledger entries carry `account_sha256`, the name and the bank, no
digit of the number; everything shown to people carries `masked(number)`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlmodel import select

from voucher_service.clock import new_id
from voucher_service.models import PayoutAccount, PayoutAccountChange, Provider
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput
from voucher_service.programme.writes import append, lock
from voucher_service.providers.rules import (
    check_account_changes,
    check_change_current,
    check_change_pending,
    check_four_eyes,
)

ACCOUNT_NO = re.compile(r"[0-9]{8,30}")  # ASCII digits only: re's [0-9] is not \d
ACCOUNT_NO_PATTERN = "^[0-9]{8,30}$"  # the same, for the OpenAPI document
SHOWN_DIGITS = 4


@dataclass(frozen=True)
class PayoutAccountDetails:
    """Unmasked: for the finance payout file only."""
    account_name: str
    bank_name: str
    account_no: str


def account_sha256(account_no: str) -> str:
    return hashlib.sha256(account_no.encode("ascii")).hexdigest()


def masked(account_no: str) -> str:
    return "****" + account_no[-SHOWN_DIGITS:]


def check_account_no(account_no: str) -> None:
    if not isinstance(account_no, str) or ACCOUNT_NO.fullmatch(account_no) is None:
        raise InvalidInput("account_no", "account number: 8 to 30 ASCII digits")


def in_effect(ctx: Context, provider_id: str) -> PayoutAccount | None:
    return ctx.session.get(PayoutAccount, provider_id)


def pending_change(ctx: Context, provider_id: str) -> PayoutAccountChange | None:
    return ctx.session.exec(select(PayoutAccountChange)
                            .where(PayoutAccountChange.pending_provider_id == provider_id)).first()


def _facts(change: PayoutAccountChange) -> dict:
    return {"account_name": change.account_name, "bank_name": change.bank_name,
            "account_sha256": change.account_sha256}


def propose_payout_account(ctx: Context, *, provider_id: str, account_name: str, bank_name: str,
                           account_no: str) -> PayoutAccountChange:
    lock(ctx)
    provider = ctx.get(Provider, provider_id, "provider")
    check_account_no(account_no)
    digest = account_sha256(account_no)
    current = in_effect(ctx, provider_id)
    check_account_changes(current is not None and (current.account_sha256, current.account_name, current.bank_name)
                          == (digest, account_name, bank_name), provider_id)
    replaced = pending_change(ctx, provider_id)
    if replaced is not None:
        replaced.status, replaced.pending_provider_id, replaced.decided_at = "replaced", None, ctx.now_str
        ctx.session.add(replaced)
        ctx.session.flush()  # frees the UNIQUE pending slot for the new change
    change = PayoutAccountChange(id=new_id("pac"), provider_id=provider_id, pending_provider_id=provider_id,
                                 account_name=account_name, bank_name=bank_name, account_no=account_no,
                                 account_sha256=digest, status="pending", proposed_by=ctx.actor,
                                 proposed_at=ctx.now_str)
    ctx.session.add(change)
    ctx.session.flush()
    data = _facts(change)
    if replaced is not None:
        data["replaces"] = replaced.id
    append(ctx, kind="provider.payout_account_proposed", region=provider.region,
           refs={"provider": provider_id, "payout_account_change": change.id}, data=data)
    return change


def confirm_payout_account(ctx: Context, *, provider_id: str, change_id: str | None = None) -> PayoutAccount:
    lock(ctx)
    provider = ctx.get(Provider, provider_id, "provider")
    change = pending_change(ctx, provider_id)
    check_change_pending(change is not None, provider_id)
    check_change_current(change_id, change.id, provider_id)
    check_four_eyes(change.proposed_by, ctx.actor, provider_id)
    previous = in_effect(ctx, provider_id)
    previous_digest = previous.account_sha256 if previous is not None else None
    change.status, change.pending_provider_id = "confirmed", None
    change.confirmed_by, change.decided_at = ctx.actor, ctx.now_str
    ctx.session.add(change)
    account = previous or PayoutAccount(provider_id=provider_id)
    account.account_name, account.bank_name = change.account_name, change.bank_name
    account.account_no, account.account_sha256 = change.account_no, change.account_sha256
    account.change_id, account.proposed_by = change.id, change.proposed_by
    account.confirmed_by, account.effective_at = ctx.actor, ctx.now_str
    ctx.session.add(account)
    ctx.session.flush()
    data = {**_facts(change), "proposed_by": change.proposed_by}
    if previous_digest is not None:
        data["previous_account_sha256"] = previous_digest
    append(ctx, kind="provider.payout_account_changed", region=provider.region,
           refs={"provider": provider_id, "payout_account_change": change.id}, data=data)
    return account


def accounts_for_payout(ctx: Context, provider_ids) -> dict[str, PayoutAccountDetails]:
    """The accounts in effect, unmasked, for the finance payout file; a provider
    without a confirmed account is absent (a pending change is not paid into)."""
    provider_ids = sorted(set(provider_ids))
    if not provider_ids:
        return {}
    rows = ctx.session.exec(select(PayoutAccount).where(PayoutAccount.provider_id.in_(provider_ids))).all()
    return {row.provider_id: PayoutAccountDetails(row.account_name, row.bank_name, row.account_no) for row in rows}
