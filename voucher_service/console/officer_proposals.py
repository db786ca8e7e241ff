"""Catalogue governance for officers (DESIGN §8): the proposals with their
approvals so far, approve one for the officer's region, withdraw its region's,
and propose a change of an item (PATCH /catalog/{code}) or a new one (POST
/catalog). A proposal is in effect only when enough regions approve it."""
from __future__ import annotations

from flask import render_template, request
from flask_babel import lazy_gettext as _l

from voucher_service.console.form_input import form_problem
from voucher_service.console.officer_common import (
    OFFICER,
    PAGE_SIZE,
    done,
    every_item,
    load_or_refuse,
    my_region,
    notice,
    parse_percent_bp,
    refused,
)
from voucher_service.console.web import api, bp, category_names, for_roles

PROPOSAL_STATUSES = {"open": _l("open"), "adopted": _l("adopted"), "withdrawn": _l("withdrawn")}
# The item's fields a proposal may set, in the order a reader compares them.
ITEM_FIELDS = {"category": _l("Category"), "name_zh": _l("Name in Chinese"), "name_en": _l("Name in English"),
               "max_subsidy_ratio_bp": _l("Largest subsidy ratio"), "active": _l("Can be reserved")}
TEXT_FIELDS = ("category", "name_zh", "name_en")
FORM_RENAMES = {"max_subsidy_ratio_bp": "ratio_percent"}


def _catalogue():
    return every_item("/catalog"), category_names()


def _proposals_page(*, form=None, posted: str = "", problem=None, status: int = 200):
    reading = request.method != "POST"
    chosen = request.args.get("status", "open") if reading else "open"
    cursor = request.args.get("cursor", "") if reading else ""
    query = {"limit": PAGE_SIZE, **({"status": chosen} if chosen else {}), **({"cursor": cursor} if cursor else {})}
    answer = api("GET", "/catalog/proposals", query=query)
    items, categories = _catalogue()
    context = dict(page=answer.data if answer.ok else {"items": [], "next_cursor": None}, chosen=chosen,
                   cursor=cursor, proposal_statuses=PROPOSAL_STATUSES, items=items, categories=categories,
                   item_fields=ITEM_FIELDS, form=form or {}, posted=posted, region=my_region(), notice=notice())
    if problem is None and not answer.ok:
        problem, status = answer.problem, answer.status
    if problem is not None:
        return refused("console/officer/proposals.html", problem, status, renames=FORM_RENAMES, **context)
    return render_template("console/officer/proposals.html", errors={}, **context)


@bp.get("/officer/proposals")
@for_roles(OFFICER)
def officer_proposals():
    return _proposals_page()


def _item_fields(form, *, creating: bool) -> tuple[dict, dict]:
    """The fields the officer filled in, as the API names them; empty means unchanged
    (for a change) and is for the API to refuse where it needs a value (for a new item)."""
    fields, errors = {}, {}
    for name in TEXT_FIELDS:
        value = form.get(name, "").strip()
        if value or creating:
            fields[name] = value
    ratio_bp, ratio_error = parse_percent_bp(form.get("ratio_percent"))
    if ratio_error:
        errors["body.ratio_percent"] = ratio_error
    elif ratio_bp is not None:
        fields["max_subsidy_ratio_bp"] = ratio_bp
    if form.get("active") in ("true", "false"):
        fields["active"] = form["active"] == "true"
    return fields, errors


def _proposed(answer, posted: str):
    if answer.status == 202:
        return done("console.officer_proposal", "proposed", proposal_id=answer.data["id"])
    return _proposals_page(form=request.form, posted=posted, problem=answer.problem, status=answer.status)


@bp.post("/officer/proposals/change")
@for_roles(OFFICER)
def officer_propose_change():
    code = request.form.get("code", "").strip()
    fields, errors = _item_fields(request.form, creating=False)
    if not code:
        errors["body.code"] = str(_l("Choose the item to change."))
    elif not fields and not errors:
        errors["body.ratio_percent"] = str(_l("Fill in at least one field to change."))
    if errors:
        return _proposals_page(form=request.form, posted="change", problem=form_problem(errors), status=422)
    return _proposed(api("PATCH", f"/catalog/{code}", json_body=fields), "change")


@bp.post("/officer/proposals/new")
@for_roles(OFFICER)
def officer_propose_item():
    fields, errors = _item_fields(request.form, creating=True)
    if "max_subsidy_ratio_bp" not in fields and not errors:
        errors["body.ratio_percent"] = str(_l("Enter the largest subsidy ratio."))
    if errors:
        return _proposals_page(form=request.form, posted="new", problem=form_problem(errors), status=422)
    body = {"code": request.form.get("code", "").strip(), **fields}
    return _proposed(api("POST", "/catalog", json_body=body), "new")


def _proposal_page(proposal_id: str, *, problem=None, status: int = 200, answer=None):
    proposal = load_or_refuse(f"/catalog/proposals/{proposal_id}", answer)
    change = proposal["change"]
    current = api("GET", f"/catalog/{change['code']}") if change["action"] != "create" else None
    approved_regions = {approval["region"] for approval in proposal["approvals"]}
    context = dict(proposal=proposal, change=change, current=current.data if current and current.ok else None,
                   item_fields=ITEM_FIELDS, proposal_statuses=PROPOSAL_STATUSES, region=my_region(),
                   approved_here=my_region() in approved_regions, notice=notice())
    if problem is not None:
        return refused("console/officer/proposal.html", problem, status, **context)
    return render_template("console/officer/proposal.html", errors={}, **context)


@bp.get("/officer/proposals/<string:proposal_id>")
@for_roles(OFFICER)
def officer_proposal(proposal_id: str):
    return _proposal_page(proposal_id)


@bp.post("/officer/proposals/<string:proposal_id>/approve")
@for_roles(OFFICER)
def officer_proposal_approve(proposal_id: str):
    answer = api("POST", f"/catalog/proposals/{proposal_id}/approve")
    if answer.ok:
        key = "proposal_adopted" if answer.data.get("status") == "adopted" else "proposal_approved"
        return done("console.officer_proposal", key, proposal_id=proposal_id)
    return _proposal_page(proposal_id, problem=answer.problem, status=answer.status, answer=answer)


@bp.post("/officer/proposals/<string:proposal_id>/withdraw")
@for_roles(OFFICER)
def officer_proposal_withdraw(proposal_id: str):
    answer = api("POST", f"/catalog/proposals/{proposal_id}/withdraw")
    if answer.ok:
        return done("console.officer_proposal", "withdrawn", proposal_id=proposal_id)
    return _proposal_page(proposal_id, problem=answer.problem, status=answer.status, answer=answer)
