"""Applications, voucher issue, voiding and expiry."""
from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy import bindparam, func
from sqlmodel import select

from ..ledger import Posting
from ..models import Application, Voucher
from . import rules
from .context import Context, local_date, new_id
from .errors import NotFound
from .registry import _append, budget_remaining_fen, get_enterprise, lock, policy_in_effect


def voucher_account(voucher_id: str) -> str:
    return f"voucher:{voucher_id}"


def held_account(voucher_id: str) -> str:
    return f"voucher:{voucher_id}:held"


def submit_application(ctx: Context, *, enterprise_id: str, amount_fen: int, purpose: str) -> Application:
    lock(ctx)
    enterprise = get_enterprise(ctx, enterprise_id)
    application = Application(id=new_id("app"), enterprise_id=enterprise.id, region=enterprise.region,
                              amount_fen=amount_fen, purpose=purpose, status="submitted",
                              submitted_at=ctx.now_str)
    ctx.session.add(application)
    ctx.session.flush()
    _append(ctx, kind="application.submitted", region=enterprise.region,
            refs={"application": application.id, "enterprise": enterprise.id},
            data={"amount_fen": amount_fen, "purpose": purpose})
    return application


def get_application(ctx: Context, application_id: str, *, for_update: bool = False) -> Application:
    application = ctx.session.get(Application, application_id, with_for_update=for_update, populate_existing=for_update)
    if application is None:
        raise NotFound("application", f"no application {application_id}")
    return application


def granted_in_year_fen(ctx: Context, enterprise_id: str, year: int) -> int:
    """What the enterprise was granted in a calendar year, net of value given back by void or expiry."""
    total = ctx.session.exec(
        select(func.coalesce(func.sum(Voucher.face_fen - Voucher.returned_fen), 0))
        .where(Voucher.enterprise_id == enterprise_id,
               Voucher.valid_from >= date(year, 1, 1), Voucher.valid_from <= date(year, 12, 31))).one()
    return int(total)


def approve_application(ctx: Context, application_id: str, *, amount_fen: int | None = None,
                        valid_until: date | None = None) -> tuple[Application, Voucher]:
    lock(ctx)
    application = get_application(ctx, application_id, for_update=True)
    rules.check_application_pending(application.status)
    amount_fen = application.amount_fen if amount_fen is None else amount_fen
    rules.check_approved_within_requested(amount_fen, application.amount_fen)
    enterprise = get_enterprise(ctx, application.enterprise_id)
    today = local_date(ctx.now)
    policy = policy_in_effect(ctx, application.region, today)
    rules.check_region_budget(budget_remaining_fen(ctx, application.region), amount_fen, application.region)
    cap_fen = policy.team_cap_fen if enterprise.kind == "team" else policy.enterprise_cap_fen
    rules.check_annual_cap(granted_in_year_fen(ctx, enterprise.id, today.year), amount_fen, cap_fen,
                           enterprise.kind, today.year)
    valid_until = valid_until or today + timedelta(days=policy.validity_days - 1)
    rules.check_validity_window(today, valid_until)

    voucher = Voucher(id=new_id("vch"), code=f"{application.region}-{today.year}-{secrets.token_hex(5).upper()}",
                      application_id=application.id, enterprise_id=enterprise.id, region=application.region,
                      face_fen=amount_fen, available_fen=amount_fen, status="active",
                      valid_from=today, valid_until=valid_until, issued_at=ctx.now_str)
    application.status = "approved"
    application.approved_fen = amount_fen
    application.voucher_id = voucher.id
    application.decided_by = ctx.actor
    application.decided_at = ctx.now_str
    ctx.session.add(voucher)
    ctx.session.flush()
    ctx.session.add(application)
    _append(ctx, kind="voucher.issued", region=application.region,
            refs={"application": application.id, "voucher": voucher.id, "enterprise": enterprise.id},
            postings=[Posting(f"budget:{application.region}", voucher_account(voucher.id), amount_fen)],
            data={"code": voucher.code, "face_fen": amount_fen, "valid_from": today.isoformat(),
                  "valid_until": valid_until.isoformat(), "requested_fen": application.amount_fen})
    return application, voucher


def reject_application(ctx: Context, application_id: str, *, reason: str) -> Application:
    lock(ctx)
    application = get_application(ctx, application_id, for_update=True)
    rules.check_transition("application", application.status, "rejected", rules.APPLICATION_TRANSITIONS)
    application.status = "rejected"
    application.reason = reason
    application.decided_by = ctx.actor
    application.decided_at = ctx.now_str
    ctx.session.add(application)
    ctx.session.flush()
    _append(ctx, kind="application.rejected", region=application.region,
            refs={"application": application.id, "enterprise": application.enterprise_id},
            data={"reason": reason})
    return application


def get_voucher(ctx: Context, voucher_id: str, *, for_update: bool = False) -> Voucher:
    voucher = ctx.session.get(Voucher, voucher_id, with_for_update=for_update, populate_existing=for_update)
    if voucher is None:
        raise NotFound("voucher", f"no voucher {voucher_id}")
    return voucher


_HOLDER = select(Voucher.region, Voucher.enterprise_id).where(Voucher.id == bindparam("voucher_id"))


def voucher_holder(ctx: Context, voucher_id: str):
    """The voucher's region and enterprise (a row), or None: what an access
    check needs before a reservation, read without the ORM (every one asks)."""
    return ctx.session.connection().execute(_HOLDER, {"voucher_id": voucher_id}).first()


def _close_voucher(ctx: Context, voucher: Voucher, status: str, kind: str, data: dict) -> Voucher:
    returned_fen = voucher.available_fen
    voucher.returned_fen += returned_fen
    voucher.available_fen = 0
    voucher.status = status
    voucher.closed_at = ctx.now_str
    ctx.session.add(voucher)
    ctx.session.flush()
    postings = [Posting(voucher_account(voucher.id), f"budget:{voucher.region}", returned_fen)] if returned_fen else []
    _append(ctx, kind=kind, region=voucher.region,
            refs={"voucher": voucher.id, "enterprise": voucher.enterprise_id},
            postings=postings, data={**data, "returned_fen": returned_fen})
    return voucher


def void_voucher(ctx: Context, voucher_id: str, *, reason: str) -> Voucher:
    lock(ctx)
    voucher = get_voucher(ctx, voucher_id, for_update=True)
    if voucher.status not in ("active", "exhausted"):
        raise rules.RuleViolation("state_machine", f"state machine: a voucher that is '{voucher.status}' cannot be voided")
    rules.check_no_open_redemptions(voucher.held_fen)
    return _close_voucher(ctx, voucher, "voided", "voucher.voided", {"reason": reason})


def expire_vouchers(ctx: Context, as_of: date) -> list[Voucher]:
    """Expire every voucher whose last valid day is before `as_of`.

    Open redemptions keep their hold: the service may already have been
    delivered, so they can still be redeemed (or released) after expiry.
    """
    lock(ctx)
    due = ctx.session.exec(
        select(Voucher).where(Voucher.status.in_(("active", "exhausted")), Voucher.valid_until < as_of)
        .order_by(Voucher.id).with_for_update()).all()
    return [_close_voucher(ctx, voucher, "expired", "voucher.expired", {"as_of": as_of.isoformat()})
            for voucher in due]
