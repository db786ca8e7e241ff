"""The finance officer's budget page: its region's budget per fiscal year,
funding it from the treasury, and recording a provider's repayment of what
it owes back after a recovery (DESIGN §8, §9).

Amounts are typed in yuan and sent in fen: the text is parsed exactly (digits,
at most two decimals), never through a float, and a text that is not an amount
is refused here with the field named, before anything is sent."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.clock import local_date, utc_now
from voucher_service.console.form_input import (
    YuanError,
    done_notice,
    field_errors,
    form_problem,
    is_id,
    parse_yuan,
)
from voucher_service.console.web import api, bp, for_roles, get, principal

PROVIDER_LIST_LIMIT = 100  # the API's largest page: the choices offered; any id can still be typed

DONE = {"funded": _l("The budget was funded."), "repaid": _l("The repayment was recorded.")}


def this_year() -> int:
    """The fiscal year: the calendar year in Asia/Shanghai."""
    return local_date(utc_now()).year


@bp.get("/finance/budget")
@for_roles("finance")
def finance_budget():
    return _budget_page(notice=done_notice(DONE))


def _budget_page(*, problem=None, status=200, typed=None, form=None, notice=None):
    region = principal().region
    budget = get(f"/regions/{region}/budget")
    providers = api("GET", "/providers", query={"limit": PROVIDER_LIST_LIMIT})
    items = providers.data.get("items", []) if providers.ok and isinstance(providers.data, dict) else []
    # The forms' inputs are named for what is typed (yuan), the API's fields for what is sent (fen).
    rename = {"amount_fen": "amount"} if form == "fund" else {"amount_fen": "repay_amount",
                                                             "reference": "repay_reference"}
    return render_template("console/finance/budget.html", budget=budget, region=region, providers=items,
                           this_year=this_year(), typed=typed or {}, form=form,
                           problem=problem, errors=field_errors(problem, rename), notice=notice), status


@bp.post("/finance/budget")
@for_roles("finance")
def finance_budget_fund():
    typed = {name: (request.form.get(name) or "").strip() for name in ("amount", "fiscal_year", "reference")}
    try:
        amount_fen = parse_yuan(typed["amount"])
    except YuanError as refusal:
        return _budget_page(problem=form_problem({"body.amount": str(refusal)}), status=422, typed=typed, form="fund")
    if not typed["fiscal_year"].isdigit():
        why = _("Type the fiscal year, e.g. %(year)s.", year=this_year())
        return _budget_page(problem=form_problem({"body.fiscal_year": why}), status=422, typed=typed, form="fund")
    answer = api("POST", f"/regions/{principal().region}/budget",
                 json_body={"amount_fen": amount_fen, "fiscal_year": int(typed["fiscal_year"]),
                            "reference": typed["reference"]})
    if answer.ok:
        return redirect(url_for("console.finance_budget", done="funded"), 303)
    return _budget_page(problem=answer.problem, status=answer.status, typed=typed, form="fund")


@bp.post("/finance/repayments")
@for_roles("finance")
def finance_repayment():
    # Names of their own: the fund form on the same page has an amount and a reference too.
    typed = {name: (request.form.get(name) or "").strip()
             for name in ("provider_id", "repay_amount", "repay_reference")}
    try:
        amount_fen = parse_yuan(typed["repay_amount"])
    except YuanError as refusal:
        return _budget_page(problem=form_problem({"body.repay_amount": str(refusal)}), status=422, typed=typed,
                            form="repay")
    if not is_id(typed["provider_id"]):
        return _budget_page(problem=form_problem({"body.provider_id": _("Choose the provider that repaid.")}),
                            status=422, typed=typed, form="repay")
    answer = api("POST", f"/providers/{typed['provider_id']}/repayments",
                 json_body={"amount_fen": amount_fen, "reference": typed["repay_reference"]})
    if answer.ok:
        return redirect(url_for("console.finance_budget", done="repaid"), 303)
    return _budget_page(problem=answer.problem, status=answer.status, typed=typed, form="repay")
