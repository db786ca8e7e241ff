"""The SME's catalogue and its reservation form: choose a voucher, a provider
and the price, see the subsidy worked out, reserve.

The subsidy shown is worked out from the item's and the issuing region's
ratio and the voucher's available balance, as the API's reservation rules
read them (form_input.subsidy_fen); with JavaScript sme.js works it out while
the user types, without it the "Work it out" button asks the server. Either
way the API decides: the voucher page shows what it actually reserved.
"""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _

from voucher_service.console.form_input import (
    YuanError,
    checked_id,
    field_errors,
    parse_yuan,
    subsidy_fen,
)
from voucher_service.console.web import api, bp, category_names, for_roles, get

# Enough for the whole shared catalogue (about 15 items) and every provider of a category.
ITEMS_AT_MOST = 100
# The API's fields that the form's price input stands for (the amount and the
# item follow from the price); voucher_id and provider_id are the inputs' own names.
FORM_FIELDS = {"service_fee_fen": "service_fee_yuan", "amount_fen": "service_fee_yuan",
               "catalog_code": "service_fee_yuan"}
WORK_OUT, RESERVE = "work_out", "reserve"


@bp.get("/catalogue")
@for_roles("sme")
def sme_catalogue():
    category = request.args.get("category", "")
    names = category_names()
    items = get("/catalog", active="true", category=category if category in names else None,
                limit=ITEMS_AT_MOST)["items"]
    return render_template("console/sme/catalogue.html", items=items, category_names=names,
                           chosen_category=category, ratios=_region_ratios())


def _region_ratios() -> dict[str, int]:
    """Each region's subsidy ratio in effect today (basis points)."""
    regions = get("/regions")
    return {region["code"]: region["policy"]["subsidy_ratio_bp"] for region in regions if region.get("policy")}


def _usable(voucher: dict) -> bool:
    return voucher["status"] == "active" and voucher["available_fen"] > 0


@bp.route("/catalogue/<code>/reserve", methods=["GET", "POST"])
@for_roles("sme")
def sme_reserve(code: str):
    item = get(f"/catalog/{checked_id(code)}")
    vouchers = [v for v in get("/vouchers", status="active", limit=ITEMS_AT_MOST)["items"] if _usable(v)]
    # Those accredited for the item's category; a suspension or a region's
    # exclusion is the API's to refuse, with its reason, when reserving.
    providers = get("/providers", category=item["category"], limit=ITEMS_AT_MOST)["items"]
    ratios = _region_ratios()
    form = {"voucher_id": request.values.get("voucher_id", vouchers[0]["id"] if vouchers else ""),
            "provider_id": request.values.get("provider_id", ""),
            "service_fee_yuan": request.form.get("service_fee_yuan", "")}
    page = {"item": item, "vouchers": vouchers, "providers": providers, "ratios": ratios, "form": form,
            "category_names": category_names()}
    if request.method != "POST":  # GET, and HEAD (Flask sends it here too): the form, nothing written
        return render_template("console/sme/reserve.html", errors={}, worked_out=None, **page)

    errors, worked_out = {}, None
    try:
        service_fee_fen = parse_yuan(form["service_fee_yuan"])
    except YuanError as error:
        errors["body.service_fee_yuan"] = [str(error)]
    voucher = next((v for v in vouchers if v["id"] == form["voucher_id"]), None)
    if voucher is None:
        errors["body.voucher_id"] = [_("Choose one of your vouchers with value available.")]
    if form["provider_id"] not in {p["id"] for p in providers}:
        errors["body.provider_id"] = [_("Choose a provider accredited for this service.")]
    if errors:
        return render_template("console/sme/reserve.html", errors=errors, worked_out=None, **page), 422

    amount_fen = subsidy_fen(service_fee_fen, item["max_subsidy_ratio_bp"], ratios.get(voucher["region"]),
                             voucher["available_fen"])
    worked_out = {"service_fee_fen": service_fee_fen, "amount_fen": amount_fen,
                  "rest_fen": service_fee_fen - amount_fen}
    if request.form.get("action") != RESERVE:
        return render_template("console/sme/reserve.html", errors={}, worked_out=worked_out, **page)
    if amount_fen <= 0:
        errors["body.service_fee_yuan"] = [_("At this price the voucher would pay nothing: enter a higher price.")]
        return render_template("console/sme/reserve.html", errors=errors, worked_out=worked_out, **page), 422
    answer = api("POST", "/redemptions", json_body={
        "voucher_id": voucher["id"], "provider_id": form["provider_id"], "catalog_code": item["code"],
        "service_fee_fen": service_fee_fen, "amount_fen": amount_fen})
    if answer.ok:
        return redirect(url_for("console.sme_voucher", voucher_id=voucher["id"], done="reserved",
                                redemption=answer.data["id"], _anchor="reserved"), 303)
    return render_template("console/sme/reserve.html", problem=answer.problem, worked_out=worked_out,
                           errors=field_errors(answer.problem, FORM_FIELDS), **page), answer.status
