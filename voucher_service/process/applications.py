"""Applications: an SME asks its home region for a voucher; approval issues it."""
from __future__ import annotations

import secrets
from datetime import date

from sqlalchemy import func
from sqlmodel import select

from voucher_service.clock import local_date, new_id
from voucher_service.enterprises.service import get_enterprise
from voucher_service.ledger import Posting
from voucher_service.ledger.accounts import budget_account, voucher_account
from voucher_service.models import Application, Voucher
from voucher_service.process import rules
from voucher_service.programme.budgets import budget_remaining_fen
from voucher_service.programme.context import Context
from voucher_service.programme.regions import policy_in_effect
from voucher_service.programme.writes import append as _append
from voucher_service.programme.writes import lock


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
    return ctx.get(Application, application_id, "application", for_update=for_update)


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
    latest = rules.latest_valid_until(today, policy.validity_days)
    valid_until = valid_until or latest
    rules.check_validity_window(today, valid_until)
    rules.check_validity_within_policy(valid_until, latest, policy.validity_days, application.region)

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
            postings=[Posting(budget_account(application.region), voucher_account(voucher.id), amount_fen)],
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
