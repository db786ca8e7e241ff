"""The service provider's pages of the web console (DESIGN §11): the
reservations made at it, a claim page per reservation (its documents, an
upload form, the claim form) and its account.

The evidence rules (a contract and an invoice before a claim, one invoice
number per claim) are the API's: the page shows its refusal as it gives it.
"""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from voucher_service.console.filters import DOCUMENT_KINDS
from voucher_service.console.form_input import (
    YuanError,
    checked_id,
    done_notice,
    field_errors,
    parse_yuan,
    yuan_text,
)
from voucher_service.console.web import api, bp, for_roles, get, principal

PAGE_SIZE = 50
STATUSES = ("reserved", "claimed", "confirmed", "redeemed", "settled", "cancelled", "rejected", "recovered")
INVOICE_MAX_CHARS = 64
# The API's names of the claim's amounts, as the form's inputs are named (in yuan).
CLAIM_FIELDS = {"service_fee_fen": "service_fee_yuan", "amount_fen": "amount_yuan"}

NOTICES = {
    "uploaded": _l("The document is stored with this reservation."),
    "claimed": _l("Your claim is submitted. The enterprise confirms the delivery, "
                  "then the issuing region approves it."),
}


@bp.get("/provider/reservations")
@for_roles("provider")
def provider_reservations():
    chosen = request.args.get("status", "")
    page = get("/redemptions", status=chosen if chosen in STATUSES else None, limit=PAGE_SIZE,
               cursor=request.args.get("cursor"))
    return render_template("console/provider/reservations.html", page=page, statuses=STATUSES, chosen=chosen)


@bp.route("/provider/reservations/<redemption_id>/claim", methods=["GET", "POST"])
@for_roles("provider")
def provider_claim(redemption_id: str):
    checked_id(redemption_id)
    if request.method != "POST":  # GET, and HEAD (Flask sends it here too): the form, nothing written
        return _claim_page(redemption_id)
    form = {name: request.form.get(name, "").strip() for name in ("invoice_no", "service_fee_yuan", "amount_yuan")}
    errors, amounts = {}, {}
    if not form["invoice_no"]:
        errors["body.invoice_no"] = [_("Enter the invoice number.")]
    elif len(form["invoice_no"]) > INVOICE_MAX_CHARS:
        errors["body.invoice_no"] = [_("An invoice number has at most %(count)s characters.", count=INVOICE_MAX_CHARS)]
    for name, api_name in (("service_fee_yuan", "service_fee_fen"), ("amount_yuan", "amount_fen")):
        try:
            amounts[api_name] = parse_yuan(form[name])
        except YuanError as error:
            errors[f"body.{name}"] = [str(error)]
    if errors:
        return _claim_page(redemption_id, form=form, errors=errors, status=422)
    answer = api("POST", f"/redemptions/{redemption_id}/claim", json_body={"invoice_no": form["invoice_no"], **amounts})
    if answer.ok:
        return redirect(url_for("console.provider_claim", redemption_id=redemption_id, done="claimed"), 303)
    return _claim_page(redemption_id, form=form, problem=answer.problem, status=answer.status,
                       errors=field_errors(answer.problem, CLAIM_FIELDS))


@bp.post("/provider/reservations/<redemption_id>/documents")
@for_roles("provider")
def provider_upload(redemption_id: str):
    checked_id(redemption_id)
    upload = request.files.get("file")
    kind = request.form.get("kind", "")
    errors = {}
    if upload is None or not upload.filename:
        errors["body.file"] = [_("Choose the file to upload: a PDF, PNG or JPEG.")]
    if kind not in DOCUMENT_KINDS:
        errors["body.kind"] = [_("Choose what the document is.")]
    if errors:
        return _claim_page(redemption_id, errors=errors, kind=kind, status=422)
    answer = api("POST", f"/redemptions/{redemption_id}/documents", form={"kind": kind},
                 files={"file": (upload.stream, upload.filename, upload.mimetype or "application/octet-stream")})
    if answer.ok:
        return redirect(url_for("console.provider_claim", redemption_id=redemption_id, done="uploaded"), 303)
    return _claim_page(redemption_id, problem=answer.problem, status=answer.status, kind=kind,
                       errors=field_errors(answer.problem))


def _claim_page(redemption_id: str, *, form: dict | None = None, errors: dict | None = None,
                problem: dict | None = None, status: int = 200, kind: str = ""):
    """The reservation (another provider's is the API's 404), its documents, and the forms."""
    redemption = get(f"/redemptions/{redemption_id}")
    documents = get(f"/redemptions/{redemption_id}/documents")["items"]
    item = api("GET", f"/catalog/{checked_id(redemption['catalog_code'])}")
    form = form or {"invoice_no": redemption.get("invoice_no") or "",
                    "service_fee_yuan": yuan_text(redemption["service_fee_fen"]),
                    "amount_yuan": yuan_text(redemption["amount_fen"])}
    return render_template("console/provider/claim.html", redemption=redemption, documents=documents,
                           item=item.data if item.ok else None, form=form, errors=errors or {}, problem=problem,
                           kinds=DOCUMENT_KINDS, kind=kind, notice=done_notice(NOTICES)), status


@bp.get("/provider/account")
@for_roles("provider")
def provider_account():
    provider_id = principal().provider_id
    account = get(f"/providers/{provider_id}/account")
    provider = get(f"/providers/{provider_id}")
    return render_template("console/provider/account.html", account=account, provider=provider)
