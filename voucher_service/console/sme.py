"""The SME's pages of the web console (DESIGN §11): its vouchers and balances,
its applications, a voucher with its reservations and receipts, the
application form, and the reservations that wait for it (confirm or cancel).
The catalogue and the reservation form are in sme_catalogue.py.

What the enterprise may see and do is the API's to say: a page asks as the
signed-in user, and another enterprise's voucher is the API's 404.
"""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.console import sme_catalogue  # noqa: F401  (the catalogue's routes)
from voucher_service.console.form_input import YuanError, checked_id, done_notice, field_errors, parse_yuan
from voucher_service.console.web import api, bp, for_roles, get, principal

PAGE_SIZE = 50
# A voucher's redemptions on one page: far more than a voucher is ever spent on.
REDEMPTIONS_PER_VOUCHER = 100
# Pages of the ledger read to find a voucher's redeemed entries (each up to 1000).
LEDGER_PAGES_AT_MOST = 5
# Redemptions whose money reached the provider's account: they have a redeemed entry.
REDEEMED_STATUSES = ("redeemed", "settled", "recovered")
PURPOSE_MAX_CHARS = 500
# Providers named on one page, each looked up once; beyond that a page shows ids.
PROVIDER_NAMES_AT_MOST = 20

NOTICES = {
    "applied": _l("Your application has been submitted. Your region's programme office will decide on it."),
    "reserved": _l("The service is reserved: the voucher holds the amount below until the provider claims it."),
    "confirmed": _l("You have confirmed the delivery. The issuing region will now approve the payment."),
    "cancelled": _l("The reservation is cancelled and its amount is back on the voucher."),
}


@bp.get("/vouchers")
@for_roles("sme")
def sme_vouchers():
    vouchers = get("/vouchers", limit=PAGE_SIZE, cursor=request.args.get("cursor"))
    applications = get("/applications", limit=PAGE_SIZE, cursor=request.args.get("applications_cursor"))
    return render_template("console/sme/vouchers.html", vouchers=vouchers, applications=applications,
                           notice=done_notice(NOTICES))


@bp.get("/vouchers/<voucher_id>")
@for_roles("sme")
def sme_voucher(voucher_id: str):
    voucher = get(f"/vouchers/{checked_id(voucher_id)}")
    redemptions = get("/redemptions", voucher_id=voucher_id, limit=REDEMPTIONS_PER_VOUCHER)["items"]
    redeemed_seq = _redeemed_entries(voucher_id) if any(r["status"] in REDEEMED_STATUSES
                                                         for r in redemptions) else {}
    return render_template("console/sme/voucher.html", voucher=voucher, redemptions=redemptions,
                           provider_names=provider_names(redemptions), redeemed_seq=redeemed_seq,
                           redeemed_statuses=REDEEMED_STATUSES,
                           reserved=_just_reserved(voucher_id), notice=done_notice(NOTICES))


def _redeemed_entries(voucher_id: str) -> dict[str, int]:
    """Redemption id → seq of its `redemption.redeemed` entry: the entry whose
    receipt proves the voucher paid the provider."""
    found, start = {}, 0
    for _page in range(LEDGER_PAGES_AT_MOST):
        answer = api("GET", "/ledger/entries", query={"ref": f"voucher:{voucher_id}", "kind": "redemption.redeemed",
                                                      "start": start, "limit": 1000})
        if not answer.ok:
            break
        found.update({entry["refs"].get("redemption"): entry["seq"] for entry in answer.data["items"]})
        if answer.data.get("next_start") is None:
            break
        start = answer.data["next_start"]
    return found


def provider_names(redemptions: list[dict]) -> dict[str, str]:
    """Provider id → name, for the providers these redemptions were made with."""
    names = {}
    for provider_id in sorted({r["provider_id"] for r in redemptions})[:PROVIDER_NAMES_AT_MOST]:
        answer = api("GET", f"/providers/{checked_id(provider_id)}")
        if answer.ok:
            names[provider_id] = answer.data["name"]
    return names


def _just_reserved(voucher_id: str) -> dict | None:
    """The reservation just made, as the API now has it (its amounts are the truth, not the form's)."""
    redemption_id = request.args.get("redemption")
    if request.args.get("done") != "reserved" or not redemption_id:
        return None
    answer = api("GET", f"/redemptions/{checked_id(redemption_id)}")
    if not answer.ok or answer.data.get("voucher_id") != voucher_id:
        return None
    return answer.data


@bp.route("/apply", methods=["GET", "POST"])
@for_roles("sme")
def sme_apply():
    form = {"amount_yuan": request.form.get("amount_yuan", ""), "purpose": request.form.get("purpose", "")}
    enterprise = api("GET", f"/enterprises/{principal().enterprise_id}")
    region = api("GET", f"/regions/{enterprise.data['region']}") if enterprise.ok else None
    context = {"form": form, "enterprise": enterprise.data if enterprise.ok else None,
               "policy": region.data.get("policy") if region is not None and region.ok else None,
               "purpose_max": PURPOSE_MAX_CHARS}
    if request.method != "POST":  # GET, and HEAD (Flask sends it here too): the form, nothing written
        return render_template("console/sme/apply.html", errors={}, **context)
    errors = {}
    try:
        amount_fen = parse_yuan(form["amount_yuan"])
    except YuanError as error:
        errors["body.amount_yuan"] = [str(error)]
    if not form["purpose"].strip():
        errors["body.purpose"] = [_("Say what the voucher is for.")]
    if errors:
        return render_template("console/sme/apply.html", errors=errors, **context), 422
    answer = api("POST", "/applications", json_body={"amount_fen": amount_fen, "purpose": form["purpose"].strip()})
    if answer.ok:
        return redirect(url_for("console.sme_vouchers", done="applied"), 303)
    return render_template("console/sme/apply.html", problem=answer.problem,
                           errors=field_errors(answer.problem, {"amount_fen": "amount_yuan"}),
                           **context), answer.status


@bp.get("/reservations")
@for_roles("sme")
def sme_reservations():
    return _reservations_page()


def _reservations_page(problem: dict | None = None, status: int = 200, acted_on: str | None = None):
    """Reserved ones (the provider has not claimed yet: the SME may cancel) and
    claimed ones (the provider says it delivered: the SME confirms)."""
    reserved = get("/redemptions", status="reserved", limit=PAGE_SIZE)["items"]
    claimed = get("/redemptions", status="claimed", limit=PAGE_SIZE)["items"]
    return render_template("console/sme/reservations.html", reserved=reserved, claimed=claimed, problem=problem,
                           provider_names=provider_names(reserved + claimed),
                           acted_on=acted_on, reason=request.form.get("reason", ""),
                           notice=done_notice(NOTICES)), status


@bp.post("/reservations/<redemption_id>/confirm")
@for_roles("sme")
def sme_confirm(redemption_id: str):
    answer = api("POST", f"/redemptions/{checked_id(redemption_id)}/confirm")
    if answer.ok:
        return redirect(url_for("console.sme_reservations", done="confirmed"), 303)
    return _reservations_page(answer.problem, answer.status, redemption_id)


@bp.post("/reservations/<redemption_id>/cancel")
@for_roles("sme")
def sme_cancel(redemption_id: str):
    reason = request.form.get("reason", "").strip()
    answer = api("POST", f"/redemptions/{checked_id(redemption_id)}/cancel",
                 json_body={"reason": reason} if reason else {})
    if answer.ok:
        return redirect(url_for("console.sme_reservations", done="cancelled"), 303)
    return _reservations_page(answer.problem, answer.status, redemption_id)
