"""The finance officer's charts (DESIGN §11): redeemed per month by issuing
region, the flows from issuing regions to providers' regions, and the budget's
use per fiscal year.

The figures are the API's: GET /reports/programme (rows per month × issuing
region × provider region, summed from the ledger's postings) and GET
/regions/{code}/budget. This module only adds the report's integer fen up
along one axis or another, so every cell is a sum of the API's own figures,
to the fen. Each chart is drawn from the same figures as the table beside it
(the page's JSON block), and the table is there without JavaScript.
"""
from __future__ import annotations

import re
from collections import defaultdict

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from voucher_service.console.web import api, bp, for_roles, get, principal

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
REGION = re.compile(r"[A-Z]{2,8}")
BUDGET_FIGURES = ("carried_over_fen", "funded_fen", "granted_fen", "returned_fen", "remaining_fen")
BUDGET_NAMES = {"carried_over_fen": _l("Carried over"), "funded_fen": _l("Funded"), "granted_fen": _l("Granted"),
                "returned_fen": _l("Returned"), "remaining_fen": _l("Remaining")}
HEAT_LEVELS = 4  # the matrix's cells are shaded in this many steps of the largest flow
MAX_MONTHS = 120  # the report's own limit


def months_from_to(first: str, last: str) -> list[str]:
    """Every month label from `first` to `last`, both included (the report's own range)."""
    if not (MONTH.fullmatch(first or "") and MONTH.fullmatch(last or "")):
        return []
    year, month = int(first[:4]), int(first[5:])
    labels = []
    while f"{year:04d}-{month:02d}" <= last and len(labels) < MAX_MONTHS:
        labels.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return labels


def monthly_by_issuer(rows: list[dict], months: list[str]) -> dict[str, dict[str, int]]:
    """{month: {issuing region: redeemed_fen}}, each the sum over providers'
    regions; every month of the range, those with nothing redeemed too."""
    totals: dict[str, dict[str, int]] = {month: defaultdict(int) for month in months}
    for row in rows:
        if row["redeemed_fen"]:
            totals.setdefault(row["month"], defaultdict(int))[row["issuing_region"]] += row["redeemed_fen"]
    return {month: dict(by_region) for month, by_region in sorted(totals.items())}


def flows(rows: list[dict]) -> dict[tuple[str, str], int]:
    """{(issuing region, provider region): redeemed_fen} over the report's months."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        if row["provider_region"] and row["redeemed_fen"]:
            totals[(row["issuing_region"], row["provider_region"])] += row["redeemed_fen"]
    return dict(totals)


def cross_region_by_issuer(rows: list[dict]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        totals[row["issuing_region"]] += row["cross_region_redeemed_fen"]
    return dict(totals)


def heat_level(amount_fen: int, largest_fen: int) -> int:
    """0 for nothing, else 1..HEAT_LEVELS by the share of the largest flow (integers only)."""
    if amount_fen <= 0 or largest_fen <= 0:
        return 0
    return max(1, -(-amount_fen * HEAT_LEVELS // largest_fen))


def region_label(region: dict | None, code: str) -> str:
    if not region:
        return code
    name = region.get("name_zh") if str(get_locale() or "zh").startswith("zh") else region.get("name_en")
    return f"{code} · {name}" if name else code


def budgets_readable(codes: list[str], own: str) -> tuple[dict[str, dict], list[str]]:
    """Each region's budget that this officer may read (its own; others if the
    API allows), and the regions it may not."""
    readable, refused = {}, []
    for code in [own] + [c for c in codes if c != own]:
        answer = api("GET", f"/regions/{code}/budget")
        if answer.ok:
            readable[code] = answer.data
        elif code != own:
            refused.append(code)
    return readable, refused


@bp.get("/finance/charts")
@for_roles("finance")
def finance_charts():
    chosen = {"from": request.args.get("from", "").strip(), "to": request.args.get("to", "").strip(),
              "region": request.args.get("region", "").strip()}
    query = {key: value for key, value in chosen.items() if value}
    answer = api("GET", "/reports/programme", query=query)
    problem, status = (None, 200) if answer.ok else (answer.problem, answer.status)
    report = answer.data if answer.ok else {"rows": [], "totals": {}, "from": chosen["from"], "to": chosen["to"]}
    regions = get("/regions")
    regions = regions.get("items", regions) if isinstance(regions, dict) else regions
    by_code = {region["code"]: region for region in regions}
    budgets, budgets_refused = budgets_readable(sorted(by_code), principal().region)
    figures = _figures(report["rows"], months_from_to(report.get("from"), report.get("to")))
    labels = {code: region_label(by_code.get(code), code) for code in by_code}
    return render_template("console/finance/charts.html", report=report, chosen=chosen, regions=regions,
                           labels=labels, budgets=budgets, budgets_refused=budgets_refused, problem=problem,
                           chart_data=_chart_data(figures, labels, budgets), **figures), status


def _figures(rows: list[dict], months: list[str]) -> dict:
    monthly = monthly_by_issuer(rows, months)
    flow = flows(rows)
    # A column for each region whose vouchers were redeemed in the range, a row of the matrix for each too.
    issuers = sorted({r for by_region in monthly.values() for r in by_region} | {i for i, _p in flow})
    matrix = sorted({i for i, _p in flow} | {p for _i, p in flow})
    largest = max(flow.values(), default=0)
    return {"monthly": monthly, "issuers": issuers, "matrix": matrix, "flow": flow,
            "heat": {pair: heat_level(amount, largest) for pair, amount in flow.items()},
            "cross_region": cross_region_by_issuer(rows),
            "month_totals": {month: sum(by_region.values()) for month, by_region in monthly.items()},
            "issuer_totals": {i: sum(by_region.get(i, 0) for by_region in monthly.values()) for i in issuers}}


def _chart_data(figures: dict, labels: dict, budgets: dict) -> dict:
    """What finance.js draws, in fen (integers), with the words it shows."""
    monthly = figures["monthly"]
    return {
        "monthly": {"months": list(monthly),
                    "series": [{"key": i, "label": labels.get(i, i),
                                "values": [monthly[m].get(i, 0) for m in monthly]} for i in figures["issuers"]]},
        "flows": {"labels": [_("%(issuer)s → %(receiver)s", issuer=i, receiver=p)
                             for (i, p) in sorted(figures["flow"]) if i != p],
                  "values": [figures["flow"][(i, p)] for (i, p) in sorted(figures["flow"]) if i != p],
                  "series": _("Redeemed across regions")},
        "budget": {"series": [{"key": key, "label": str(BUDGET_NAMES[key])} for key in BUDGET_FIGURES[1:]],
                   "regions": [{"code": code, "label": labels.get(code, code),
                                "years": [str(y["fiscal_year"]) for y in budget.get("years", [])],
                                "values": {key: [y[key] for y in budget.get("years", [])]
                                           for key in BUDGET_FIGURES[1:]}}
                               for code, budget in budgets.items()]},
    }

