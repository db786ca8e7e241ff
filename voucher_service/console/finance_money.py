"""The finance officer's budget page: its region's budget per fiscal year,
funding it from the treasury, and recording a provider's repayment of what
it owes back after a recovery (DESIGN §8, §9).

Amounts are typed in yuan and sent in fen: the text is parsed exactly (digits,
at most two decimals), never through a float, and a text that is not an amount
is refused here with the field named, before anything is sent."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.console.finance import field_errors
from voucher_service.console.web import api, bp, for_roles, get, principal

# Digits with optional thousands commas, then at most two decimals: "1,234.5" or "1234.56".
YUAN_TEXT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{1,2}))?")
MAX_FEN = 10 ** 15  # far above any budget; keeps a typo of many digits from reaching the API as a huge integer
PROGRAMME_TIMEZONE = ZoneInfo("Asia/Shanghai")  # the fiscal year is the calendar year there
PROVIDER_LIST_LIMIT = 100  # the API's largest page: the choices offered; any id can still be typed

DONE = {"funded": _l("The budget was funded."), "repaid": _l("The repayment was recorded.")}


class NotAnAmount(ValueError):
    pass


def parse_yuan(text: str | None) -> int:
    """Fen from a yuan amount as typed ("¥1,234.56", "1234.5", "80"); NotAnAmount
    when it is not one, or is not more than zero."""
    cleaned = (text or "").strip().removeprefix("¥").removeprefix("￥").strip()
    match = YUAN_TEXT.fullmatch(cleaned)
    if not match:
        raise NotAnAmount(_("Type an amount in yuan, with at most two decimals, e.g. 1234.56."))
    whole, _dot, decimals = cleaned.replace(",", "").partition(".")
    fen = int(whole) * 100 + int((decimals or "0").ljust(2, "0"))
    if fen <= 0:
        raise NotAnAmount(_("The amount must be more than zero."))
    if fen > MAX_FEN:
        raise NotAnAmount(_("The amount is too large."))
    return fen


def field_problem(field: str, message: str) -> dict:
    """A refusal of the console's own, shaped as the API's 422, so the page shows it the same way."""
    return {"title": _("Check the form"), "detail": message, "errors": {f"body.{field}": [message]}}


@bp.get("/finance/budget")
@for_roles("finance")
def finance_budget():
    text = DONE.get(request.args.get("done", ""))
    return _budget_page(notice=str(text) if text else None)


def _budget_page(*, problem=None, status=200, typed=None, form=None, notice=None):
    region = principal().region
    budget = get(f"/regions/{region}/budget")
    providers = api("GET", "/providers", query={"limit": PROVIDER_LIST_LIMIT})
    items = providers.data.get("items", []) if providers.ok and isinstance(providers.data, dict) else []
    # The forms' inputs are named for what is typed (yuan), the API's fields for what is sent (fen).
    rename = {"amount_fen": "amount"} if form == "fund" else {"amount_fen": "repay_amount",
                                                             "reference": "repay_reference"}
    return render_template("console/finance/budget.html", budget=budget, region=region, providers=items,
                           this_year=datetime.now(PROGRAMME_TIMEZONE).year, typed=typed or {}, form=form,
                           problem=problem, errors=field_errors(problem, rename), notice=notice), status


@bp.post("/finance/budget")
@for_roles("finance")
def finance_budget_fund():
    typed = {name: (request.form.get(name) or "").strip() for name in ("amount", "fiscal_year", "reference")}
    try:
        amount_fen = parse_yuan(typed["amount"])
    except NotAnAmount as refusal:
        return _budget_page(problem=field_problem("amount", str(refusal)), status=422, typed=typed, form="fund")
    if not typed["fiscal_year"].isdigit():
        return _budget_page(problem=field_problem("fiscal_year", _("Type the fiscal year, e.g. %(year)s.",
                                                                  year=datetime.now(PROGRAMME_TIMEZONE).year)),
                            status=422, typed=typed, form="fund")
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
    except NotAnAmount as refusal:
        return _budget_page(problem=field_problem("repay_amount", str(refusal)), status=422, typed=typed,
                            form="repay")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", typed["provider_id"]):
        return _budget_page(problem=field_problem("provider_id", _("Choose the provider that repaid.")),
                            status=422, typed=typed, form="repay")
    answer = api("POST", f"/providers/{typed['provider_id']}/repayments",
                 json_body={"amount_fen": amount_fen, "reference": typed["repay_reference"]})
    if answer.ok:
        return redirect(url_for("console.finance_budget", done="repaid"), 303)
    return _budget_page(problem=answer.problem, status=answer.status, typed=typed, form="repay")
