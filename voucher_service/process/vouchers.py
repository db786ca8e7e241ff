"""Vouchers: holders, voiding, extension and expiry."""
from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam
from sqlmodel import select

from voucher_service.clock import local_date
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, voucher_account
from voucher_service.models import Voucher
from voucher_service.process import rules
from voucher_service.programme.context import Context
from voucher_service.programme.regions import policy_in_effect
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


def extend_voucher(ctx: Context, voucher_id: str, *, valid_until: date, reason: str) -> Voucher:
    """Move the voucher's last valid day later, by at most the validity of the
    region's policy in effect today, counted from the current end."""
    lock(ctx)
    voucher = get_voucher(ctx, voucher_id, for_update=True)
    rules.check_voucher_extendable(voucher.status)
    rules.check_extension_later(voucher.valid_until, valid_until)
    policy = policy_in_effect(ctx, voucher.region, local_date(ctx.now))
    rules.check_validity_within_policy(valid_until, rules.latest_extension(voucher.valid_until, policy.validity_days),
                                       policy.validity_days, voucher.region)
    before = voucher.valid_until
    voucher.valid_until = valid_until
    ctx.session.add(voucher)
    ctx.session.flush()
    _append(ctx, kind="voucher.extended", region=voucher.region,
            refs={"voucher": voucher.id, "enterprise": voucher.enterprise_id},
            data={"before": before.isoformat(), "after": valid_until.isoformat(), "reason": reason})
    return voucher


def _due(as_of: date):
    return (select(Voucher).where(Voucher.status.in_(rules.OPEN_VOUCHER_STATUSES), Voucher.valid_until < as_of)
            .order_by(Voucher.id))


def vouchers_due_to_expire(ctx: Context, as_of: date) -> list[Voucher]:
    """What expire_vouchers would expire as of that day; reads only (no lock, no entry)."""
    return list(ctx.session.exec(_due(as_of)).all())


def expire_vouchers(ctx: Context, as_of: date) -> list[Voucher]:
    """Expire every voucher whose last valid day is before `as_of`.

    Open redemptions keep their hold: the service may already have been
    delivered, so they can still be redeemed (or released) after expiry.
    """
    lock(ctx)
    due = ctx.session.exec(_due(as_of).with_for_update()).all()
    return [_close_voucher(ctx, voucher, "expired", "voucher.expired", {"as_of": as_of.isoformat()})
            for voucher in due]
