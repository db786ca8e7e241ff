"""The officer's claims: the queue of claims its region pays, each claim with
its evidence, approve or reject, and the recovery (clawback) of one paid."""
from __future__ import annotations

from flask import render_template, request

from voucher_service.console.filters import DOCUMENT_KINDS
from voucher_service.console.form_input import YuanError, checked_id, form_problem, parse_yuan
from voucher_service.console.officer_common import (
    OFFICER,
    PAGE_SIZE,
    done,
    load_or_refuse,
    my_region,
    notice,
    refused,
)
from voucher_service.console.web import api, bp, download, for_roles

# The states a claim passes through, as the API names them; "confirmed" awaits the officer.
CLAIM_STATUSES = ("reserved", "claimed", "confirmed", "redeemed", "settled", "recovered", "rejected", "cancelled")
CLAIM_FILTERS = ("status", "provider_id", "voucher_id")
REJECTABLE = ("reserved", "claimed", "confirmed")
RECOVERABLE = ("redeemed", "settled")


def _claims_page(query: dict, cursor: str, mine_only: bool):
    """A page of the claims the officer may read; "mine" are those its region
    decides (the vouchers it issued), not those at its providers that other
    regions pay."""
    answer = api("GET", "/redemptions", query={**query, **({"region": my_region()} if mine_only else {}),
                                               "limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})})
    if not answer.ok:
        return {"items": [], "next_cursor": None}, answer
    return answer.data, answer


@bp.get("/officer/claims")
@for_roles(OFFICER)
def officer_claims():
    chosen = {name: request.args.get(name, "").strip() for name in CLAIM_FILTERS}
    if "status" not in request.args:
        chosen["status"] = "confirmed"
    chosen["scope"] = "all" if request.args.get("scope") == "all" else "mine"
    given = {name: chosen[name] for name in CLAIM_FILTERS if chosen[name]}
    cursor = request.args.get("cursor", "")
    page, answer = _claims_page(given, cursor, chosen["scope"] == "mine")
    return render_template("console/officer/claims.html", page=page, chosen=chosen, cursor=cursor,
                           statuses=CLAIM_STATUSES, problem=answer.problem,
                           filters_given={**given, "status": chosen["status"], "scope": chosen["scope"]}), answer.status


def _claim_page(redemption_id: str, *, form=None, posted: str = "", problem=None, status: int = 200, answer=None):
    redemption = load_or_refuse(f"/redemptions/{redemption_id}", answer)
    documents = api("GET", f"/redemptions/{redemption_id}/documents")
    provider = api("GET", f"/providers/{redemption['provider_id']}")
    context = dict(redemption=redemption, documents=documents.data["items"] if documents.ok else [],
                   documents_problem=documents.problem, provider=provider.data if provider.ok else None,
                   mine=redemption["region"] == my_region(), rejectable=REJECTABLE, recoverable=RECOVERABLE,
                   document_kinds=DOCUMENT_KINDS, form=form or {}, posted=posted, notice=notice())
    if problem is not None:
        renames = {"amount_fen": "amount_yuan", "reason": f"{posted}_reason"}
        return refused("console/officer/claim.html", problem, status, renames=renames, **context)
    return render_template("console/officer/claim.html", errors={}, **context)


@bp.get("/officer/claims/<string:redemption_id>")
@for_roles(OFFICER)
def officer_claim(redemption_id: str):
    return _claim_page(redemption_id)


def _decided(redemption_id: str, answer, key: str, posted: str):
    if answer.ok:
        return done("console.officer_claim", key, redemption_id=redemption_id)
    return _claim_page(redemption_id, form=request.form, posted=posted, problem=answer.problem, status=answer.status,
                       answer=answer)


@bp.post("/officer/claims/<string:redemption_id>/approve")
@for_roles(OFFICER)
def officer_claim_approve(redemption_id: str):
    return _decided(redemption_id, api("POST", f"/redemptions/{redemption_id}/approve"), "claim_approved", "approve")


@bp.post("/officer/claims/<string:redemption_id>/reject")
@for_roles(OFFICER)
def officer_claim_reject(redemption_id: str):
    answer = api("POST", f"/redemptions/{redemption_id}/reject",
                 json_body={"reason": request.form.get("reason", "").strip()})
    return _decided(redemption_id, answer, "claim_rejected", "reject")


@bp.post("/officer/claims/<string:redemption_id>/recover")
@for_roles(OFFICER)
def officer_claim_recover(redemption_id: str):
    try:
        amount_fen = parse_yuan(request.form.get("amount_yuan"))
    except YuanError as error:
        return _claim_page(redemption_id, form=request.form, posted="recover", status=422,
                           problem=form_problem({"body.amount_yuan": str(error)}))
    answer = api("POST", f"/redemptions/{redemption_id}/recover",
                 json_body={"amount_fen": amount_fen, "reason": request.form.get("reason", "").strip()})
    return _decided(redemption_id, answer, "recovered", "recover")


@bp.get("/claims/<string:redemption_id>/documents/<string:sha256>")
@for_roles(OFFICER, "provider")
def claim_document(redemption_id: str, sha256: str):
    """A claim's document for the provider that uploaded it and the officers of
    the regions the API lets read it, from their claim pages: its bytes as the
    API serves them, always a download (never shown in the console's own origin:
    an uploaded file is the provider's content), with the media type the service
    decided from its bytes."""
    return download(f"/redemptions/{checked_id(redemption_id)}/documents/{checked_id(sha256)}", filename=sha256)
