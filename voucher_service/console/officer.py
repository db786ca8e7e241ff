"""The programme officer's pages of the web console (DESIGN §11): the review
queue of applications here; claims, catalogue proposals and providers in the
officer_* modules beside it. Each decision is the API's: a page only shows what
the officer's token may read and posts what the officer typed."""
from __future__ import annotations

from flask import render_template, request

from voucher_service.console.form_input import YuanError, form_problem, parse_yuan
from voucher_service.console.officer_common import (
    OFFICER,
    PAGE_SIZE,
    done,
    load_or_refuse,
    notice,
    refused,
)
from voucher_service.console.web import api, bp, for_roles, get

APPLICATION_STATUSES = ("submitted", "approved", "rejected")
APPLICATION_FILTERS = ("status", "enterprise_id", "submitted_from", "submitted_to")


@bp.get("/officer/applications")
@for_roles(OFFICER)
def officer_applications():
    """The queue: what awaits a decision unless the officer asks for another status."""
    chosen = {name: request.args.get(name, "").strip() for name in APPLICATION_FILTERS}
    if "status" not in request.args:
        chosen["status"] = "submitted"
    given = {name: value for name, value in chosen.items() if value}
    cursor = request.args.get("cursor", "")
    answer = api("GET", "/applications", query={**given, "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})})
    page = answer.data if answer.ok else {"items": [], "next_cursor": None}
    enterprises = api("GET", "/enterprises", query={"limit": 100})
    return render_template("console/officer/applications.html", page=page, chosen=chosen, cursor=cursor,
                           filters_given={**given, "status": chosen["status"]}, statuses=APPLICATION_STATUSES,
                           enterprises=enterprises.data["items"] if enterprises.ok else [],
                           problem=answer.problem), answer.status


def _application_page(application_id: str, *, form=None, problem=None, status: int = 200, answer=None):
    application = load_or_refuse(f"/applications/{application_id}", answer)
    enterprise = api("GET", f"/enterprises/{application['enterprise_id']}")
    region = api("GET", f"/regions/{application['region']}")
    vouchers = api("GET", "/vouchers", query={"enterprise_id": application["enterprise_id"], "limit": 100})
    context = dict(application=application, enterprise=enterprise.data if enterprise.ok else None,
                   region=region.data if region.ok else None,
                   vouchers=vouchers.data["items"] if vouchers.ok else [], form=form or {}, notice=notice())
    if problem is not None:
        return refused("console/officer/application.html", problem, status,
                       renames={"amount_fen": "amount_yuan"}, **context)
    return render_template("console/officer/application.html", errors={}, **context)


@bp.get("/officer/applications/<string:application_id>")
@for_roles(OFFICER)
def officer_application(application_id: str):
    return _application_page(application_id)


@bp.post("/officer/applications/<string:application_id>/approve")
@for_roles(OFFICER)
def officer_application_approve(application_id: str):
    """Approve, for the amount asked unless the officer grants less, valid as long
    as the policy allows unless a shorter end is given (the API's defaults)."""
    typed = request.form.get("amount_yuan", "").strip()
    try:
        amount_fen = parse_yuan(typed) if typed else None
    except YuanError as error:
        return _application_page(application_id, form=request.form, status=422,
                                 problem=form_problem({"body.amount_yuan": str(error)}))
    body = {"amount_fen": amount_fen, "valid_until": request.form.get("valid_until", "").strip()}
    answer = api("POST", f"/applications/{application_id}/approve",
                 json_body={name: value for name, value in body.items() if value not in (None, "")})
    if answer.ok:
        return done("console.officer_application", "approved", application_id=application_id)
    return _application_page(application_id, form=request.form, problem=answer.problem, status=answer.status,
                             answer=answer)


@bp.post("/officer/applications/<string:application_id>/reject")
@for_roles(OFFICER)
def officer_application_reject(application_id: str):
    answer = api("POST", f"/applications/{application_id}/reject",
                 json_body={"reason": request.form.get("reason", "").strip()})
    if answer.ok:
        return done("console.officer_application", "rejected", application_id=application_id)
    return _application_page(application_id, form=request.form, problem=answer.problem, status=answer.status,
                             answer=answer)


@bp.get("/officer/vouchers/<string:voucher_id>")
@for_roles(OFFICER)
def officer_voucher(voucher_id: str):
    """The voucher an approval issued, or a claim spends: its balances."""
    return render_template("console/officer/voucher.html", voucher=get(f"/vouchers/{voucher_id}"))


# The other pages register their routes on import.
from voucher_service.console import officer_claims, officer_proposals, officer_providers  # noqa: E402, F401
