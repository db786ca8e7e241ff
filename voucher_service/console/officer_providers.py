"""The provider registry for officers (服务机构统一): every region's providers,
registering one in the officer's region, suspending and reinstating its own;
the region's exclusions; and a provider's payout account, changed by one officer
of its home region and confirmed by another (four eyes: DESIGN §9)."""
from __future__ import annotations

from flask import render_template, request

from voucher_service.console.officer_common import (
    OFFICER,
    PAGE_SIZE,
    done,
    every_item,
    load_or_refuse,
    my_region,
    notice,
    refused,
)
from voucher_service.console.web import api, bp, category_names, for_roles, principal

PROVIDER_FILTERS = ("region", "status", "category")
PROVIDER_STATUSES = ("active", "suspended")
ACCOUNT_FIELDS = ("account_name", "bank_name", "account_no")


def _providers_page(*, form=None, problem=None, status: int = 200):
    """The registry; the register form; and the providers the officer's region excludes."""
    reading = request.method != "POST"
    chosen = {name: request.args.get(name, "").strip() if reading else "" for name in PROVIDER_FILTERS}
    given = {name: value for name, value in chosen.items() if value}
    cursor = request.args.get("cursor", "") if reading else ""
    answer = api("GET", "/providers", query={**given, "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})})
    exclusions = every_item(f"/regions/{my_region()}/excluded-providers")
    context = dict(page=answer.data if answer.ok else {"items": [], "next_cursor": None}, chosen=chosen,
                   filters_given=given, cursor=cursor, statuses=PROVIDER_STATUSES, categories=category_names(),
                   regions=every_item("/regions"), exclusions=exclusions, region=my_region(), form=form or {},
                   notice=notice())
    if problem is None and not answer.ok:
        problem, status = answer.problem, answer.status
    if problem is not None:
        return refused("console/officer/providers.html", problem, status, **context)
    return render_template("console/officer/providers.html", errors={}, **context)


@bp.get("/officer/providers")
@for_roles(OFFICER)
def officer_providers():
    return _providers_page()


@bp.post("/officer/providers/register")
@for_roles(OFFICER)
def officer_provider_register():
    """In the officer's own region: the API refuses any other (403)."""
    body = {"name": request.form.get("name", "").strip(), "uscc": request.form.get("uscc", "").strip().upper(),
            "region": my_region(), "categories": request.form.getlist("categories")}
    answer = api("POST", "/providers", json_body=body)
    if answer.ok:
        return done("console.officer_provider", "registered", provider_id=answer.data["id"])
    form = {**request.form.to_dict(), "categories": request.form.getlist("categories")}
    return _providers_page(form=form, problem=answer.problem, status=answer.status)


def _provider_page(provider_id: str, *, form=None, posted: str = "", problem=None, status: int = 200, answer=None):
    provider = load_or_refuse(f"/providers/{provider_id}", answer)
    home = provider["region"] == my_region()
    # Only the home region's officers read the payout account (masked even to them).
    payout = api("GET", f"/providers/{provider_id}/payout-account") if home else None
    context = dict(provider=provider, home=home, region=my_region(), me=principal().principal_id,
                   excluded_here=my_region() in provider.get("excluded_in", []),
                   payout=payout.data if payout is not None and payout.ok else None,
                   categories=category_names(), form=form or {}, posted=posted, notice=notice())
    if problem is not None:
        return refused("console/officer/provider.html", problem, status, **context)
    return render_template("console/officer/provider.html", errors={}, **context)


@bp.get("/officer/providers/<string:provider_id>")
@for_roles(OFFICER)
def officer_provider(provider_id: str):
    return _provider_page(provider_id)


def _changed(provider_id: str, answer, key: str, posted: str):
    if answer.ok:
        return done("console.officer_provider", key, provider_id=provider_id)
    return _provider_page(provider_id, form=request.form, posted=posted, problem=answer.problem,
                          status=answer.status, answer=answer)


@bp.post("/officer/providers/<string:provider_id>/suspend")
@for_roles(OFFICER)
def officer_provider_suspend(provider_id: str):
    return _changed(provider_id, api("POST", f"/providers/{provider_id}/suspend"), "suspended", "status")


@bp.post("/officer/providers/<string:provider_id>/reinstate")
@for_roles(OFFICER)
def officer_provider_reinstate(provider_id: str):
    return _changed(provider_id, api("POST", f"/providers/{provider_id}/reinstate"), "reinstated", "status")


@bp.post("/officer/providers/<string:provider_id>/exclude")
@for_roles(OFFICER)
def officer_provider_exclude(provider_id: str):
    answer = api("POST", f"/regions/{my_region()}/excluded-providers",
                 json_body={"provider_id": provider_id, "reason": request.form.get("reason", "").strip()})
    return _changed(provider_id, answer, "excluded", "exclude")


@bp.post("/officer/providers/<string:provider_id>/readmit")
@for_roles(OFFICER)
def officer_provider_readmit(provider_id: str):
    answer = api("DELETE", f"/regions/{my_region()}/excluded-providers/{provider_id}")
    return _changed(provider_id, answer, "readmitted", "exclude")


@bp.post("/officer/providers/<string:provider_id>/payout-account")
@for_roles(OFFICER)
def officer_payout_account_propose(provider_id: str):
    """PUT as the API has it (a form can only POST): a pending change, not yet in effect."""
    body = {name: request.form.get(name, "").strip() for name in ACCOUNT_FIELDS}
    body["account_no"] = body["account_no"].replace(" ", "")
    answer = api("PUT", f"/providers/{provider_id}/payout-account", json_body=body)
    return _changed(provider_id, answer, "account_proposed", "account")


@bp.post("/officer/providers/<string:provider_id>/payout-account/confirm")
@for_roles(OFFICER)
def officer_payout_account_confirm(provider_id: str):
    """Names the change the officer reviewed: one proposed since is refused, not confirmed unseen."""
    change_id = request.form.get("change_id", "").strip()
    answer = api("POST", f"/providers/{provider_id}/payout-account/confirm",
                 json_body={"change_id": change_id} if change_id else {})
    return _changed(provider_id, answer, "account_confirmed", "confirm")
