"""Vouchers: holders, voiding and expiry."""
from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam
from sqlmodel import select

from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, voucher_account
from voucher_service.models import Voucher
from voucher_service.process import rules
from voucher_service.programme.context import Context
from voucher_service.programme.writes import append as _append
from voucher_service.programme.writes import lock


def get_voucher(ctx: Context, voucher_id: str, *, for_update: bool = False) -> Voucher:
    return ctx.get(Voucher, voucher_id, "voucher", for_update=for_update)


_HOLDER = select(Voucher.region, Voucher.enterprise_id).where(Voucher.id == bindparam("voucher_id"))


def voucher_holder(ctx: Context, voucher_id: str):
    """The voucher's region and enterprise (a row), or None: what an access
    check needs before a reservation, read without the ORM (every one asks)."""
    return ctx.session.connection().execute(_HOLDER, {"voucher_id": voucher_id}).first()


def _close_voucher(ctx: Context, voucher: Voucher, status: str, kind: str, data: dict) -> Voucher:
    rules.check_transition("voucher", voucher.status, status, rules.VOUCHER_TRANSITIONS)
    returned_fen = voucher.available_fen
    voucher.returned_fen += returned_fen
    voucher.available_fen = 0
    voucher.status = status
    voucher.closed_at = ctx.now_str
    ctx.session.add(voucher)
    ctx.session.flush()
    postings = [Posting(voucher_account(voucher.id), budget_account(voucher.region), returned_fen)] if returned_fen else []
    _append(ctx, kind=kind, region=voucher.region,
            refs={"voucher": voucher.id, "enterprise": voucher.enterprise_id},
            postings=postings, data={**data, "returned_fen": returned_fen})
    return voucher


def void_voucher(ctx: Context, voucher_id: str, *, reason: str) -> Voucher:
    lock(ctx)
    voucher = get_voucher(ctx, voucher_id, for_update=True)
    rules.check_voucher_voidable(voucher.status)
    rules.check_no_open_redemptions(voucher.held_fen)
    return _close_voucher(ctx, voucher, "voided", "voucher.voided", {"reason": reason})


def expire_vouchers(ctx: Context, as_of: date) -> list[Voucher]:
    """Expire every voucher whose last valid day is before `as_of`.

    Open redemptions keep their hold: the service may already have been
    delivered, so they can still be redeemed (or released) after expiry.
    """
    lock(ctx)
    due = ctx.session.exec(
        select(Voucher).where(Voucher.status.in_(rules.OPEN_VOUCHER_STATUSES), Voucher.valid_until < as_of)
        .order_by(Voucher.id).with_for_update()).all()
    return [_close_voucher(ctx, voucher, "expired", "voucher.expired", {"as_of": as_of.isoformat()})
            for voucher in due]
