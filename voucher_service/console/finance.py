"""The finance pages of the web console (DESIGN §11): its region's settlement
batches, their approvals by every region they touch, execution, the bank's
results and the payout file. The budget and the charts are in finance_money.py
and finance_charts.py.

Every figure and every rule is the API's: a page shows what GET /settlements
says and offers the actions the batch's state allows; whether the signed-in
officer may take one (four eyes, the region that approves) is for the API to
answer, and a refusal is shown on the batch's page as the API put it.
"""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.clock import local_date, utc_now
from voucher_service.console import client
from voucher_service.console.filters import STATUS_NAMES
from voucher_service.console.form_input import done_notice, field_errors
from voucher_service.console.web import api, bp, download, for_roles, get, principal

STATUSES = ("draft", "approved", "executed", "completed", "cancelled")
PAGE_SIZE = 50

# What a successful write says on the page it leads to (?done=KEY): fixed words, never text from the URL.
DONE = {"created": _l("The batch was created. It now needs an approval from each region it touches."),
        "approved": _l("Your region's approval was recorded."),
        "executed": _l("The batch was executed: its redemptions are settled. Record the bank's result of each line."),
        "cancelled": _l("The batch was cancelled: its redemptions can go into a later batch."),
        "results": _l("The bank's results were recorded.")}


def notice() -> str | None:
    return done_notice(DONE)


def suggested_period(region: dict | None) -> str:
    """The period a batch would usually be for now: this month or this quarter,
    by the region's payout cycle (the API refuses a period of the other cycle)."""
    today = local_date(utc_now())
    if (((region or {}).get("policy") or {}).get("payout_cycle")) == "quarterly":
        return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    return today.strftime("%Y-%m")


def own_region() -> dict | None:
    answer = api("GET", f"/regions/{principal().region}")
    return answer.data if answer.ok else None


@bp.get("/finance/batches")
@for_roles("finance")
def finance_batches():
    return _batches_page()


def _batches_page(*, problem=None, status=200, typed_period=None):
    chosen = {"status": request.args.get("status", "") if request.args.get("status") in STATUSES else "",
              "period": request.args.get("period", "").strip()[:7]}
    answer = api("GET", "/settlements", query={**{k: v for k, v in chosen.items() if v}, "limit": PAGE_SIZE,
                                               **({"cursor": request.args["cursor"]}
                                                  if request.args.get("cursor") else {})})
    listing = answer.data if answer.ok else {"items": [], "next_cursor": None}
    if problem is None and not answer.ok:
        problem, status = answer.problem, answer.status
    region = own_region()
    return render_template("console/finance/batches.html", batches=listing["items"],
                           next_cursor=listing.get("next_cursor"), chosen=chosen,
                           filters_given={k: v for k, v in chosen.items() if v},
                           status_options=[("", _("All"))] + [(s, STATUS_NAMES[s]) for s in STATUSES],
                           period=typed_period if typed_period is not None else suggested_period(region),
                           region=region, problem=problem, errors=field_errors(problem),
                           notice=None if problem else notice()), status


@bp.post("/finance/batches")
@for_roles("finance")
def finance_batch_create():
    period = (request.form.get("period") or "").strip()
    answer = api("POST", "/settlements", json_body={"period": period})
    if answer.ok:
        return redirect(url_for("console.finance_batch", settlement_id=answer.data["id"], done="created"), 303)
    return _batches_page(problem=answer.problem, status=answer.status, typed_period=period)


def approvals_table(batch: dict) -> list[dict]:
    """Each region the batch needs, with who approved it for that region, or none yet."""
    given = {approval["region"]: approval for approval in batch.get("approvals", [])}
    return [{"region": region, "approval": given.get(region)} for region in batch.get("approvals_required", [])]


@bp.get("/finance/batches/<string:settlement_id>")
@for_roles("finance")
def finance_batch(settlement_id: str):
    return _batch_page(get(f"/settlements/{settlement_id}"))


def _batch_page(batch: dict, *, problem=None, status=200, typed=None):
    me = principal()
    approved_regions = {a["region"] for a in batch.get("approvals", [])}
    may = {
        "approve": batch["status"] == "draft" and me.region in batch["approvals_required"]
        and me.region not in approved_regions,
        "execute": batch["status"] == "approved" and me.region == batch["region"],
        "cancel": batch["status"] in ("draft", "approved") and me.region == batch["region"],
        "results": batch["status"] == "executed" and me.region == batch["region"],
    }
    # Providers' names are in the payout file's JSON, not on the batch's lines.
    payouts = api("GET", f"/settlements/{batch['id']}/payouts")
    names = {p["provider_id"]: p.get("provider_name") for p in payouts.data.get("payouts", [])} if payouts.ok else {}
    return render_template("console/finance/batch.html", batch=batch, approvals=approvals_table(batch), may=may,
                           provider_names=names,
                           open_lines=[line for line in batch["lines"] if not line.get("result")],
                           typed=typed or {}, problem=problem,
                           notice=None if problem else notice()), status


def _after_write(settlement_id: str, answer: client.ApiAnswer, done: str, typed=None):
    """Back to the batch with its notice, or the batch again with the API's refusal."""
    if answer.ok:
        return redirect(url_for("console.finance_batch", settlement_id=settlement_id, done=done), 303)
    batch = api("GET", f"/settlements/{settlement_id}")
    if not batch.ok:  # not a batch this officer may see: say so, and show nothing of it
        return render_template("console/refused.html", status=answer.status, problem=answer.problem), answer.status
    return _batch_page(batch.data, problem=answer.problem, status=answer.status, typed=typed)


@bp.post("/finance/batches/<string:settlement_id>/approve")
@for_roles("finance")
def finance_batch_approve(settlement_id: str):
    return _after_write(settlement_id, api("POST", f"/settlements/{settlement_id}/approve"), "approved")


@bp.post("/finance/batches/<string:settlement_id>/execute")
@for_roles("finance")
def finance_batch_execute(settlement_id: str):
    return _after_write(settlement_id, api("POST", f"/settlements/{settlement_id}/execute"), "executed")


@bp.post("/finance/batches/<string:settlement_id>/cancel")
@for_roles("finance")
def finance_batch_cancel(settlement_id: str):
    reason = (request.form.get("reason") or "").strip()
    answer = api("POST", f"/settlements/{settlement_id}/cancel", json_body={"reason": reason})
    return _after_write(settlement_id, answer, "cancelled", typed={"reason": reason})


def results_from_form(form) -> tuple[list[dict], dict]:
    """The lines the officer answered (a line left at "no result yet" is left
    for later), and everything typed, to show again if the API refuses."""
    results, typed = [], {}
    for provider_id in form.getlist("line"):
        outcome = form.get(f"result-{provider_id}", "")
        reference = (form.get(f"bank_reference-{provider_id}") or "").strip()
        reason = (form.get(f"reason-{provider_id}") or "").strip()
        typed[provider_id] = {"result": outcome, "bank_reference": reference, "reason": reason}
        if outcome == "paid":
            results.append({"provider_id": provider_id, "result": "paid", "bank_reference": reference})
        elif outcome == "failed":
            results.append({"provider_id": provider_id, "result": "failed", "reason": reason})
        elif outcome:
            results.append({"provider_id": provider_id, "result": outcome})  # the API names what is wrong
    return results, typed


@bp.post("/finance/batches/<string:settlement_id>/results")
@for_roles("finance")
def finance_batch_results(settlement_id: str):
    results, typed = results_from_form(request.form)
    answer = api("POST", f"/settlements/{settlement_id}/results", json_body={"results": results})
    return _after_write(settlement_id, answer, "results", typed={"lines": typed})


@bp.get("/finance/batches/<string:settlement_id>/payouts.csv")
@for_roles("finance")
def finance_payouts_csv(settlement_id: str):
    """The payout file exactly as the API writes it (UTF-8 with BOM, DESIGN §9), as a download."""
    return download(f"/settlements/{settlement_id}/payouts", filename=f"payouts-{settlement_id}.csv",
                    accept="text/csv")


from voucher_service.console import finance_charts, finance_money  # noqa: E402,F401  (their routes)
