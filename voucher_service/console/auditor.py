"""The auditor's pages: the ledger, filtered, each entry in full, the
checkpoint with its witnesses, the export, and verification in the browser."""
from __future__ import annotations

from flask import Response, abort, render_template, request

from voucher_service.console.web import api, bp, download, for_roles, get

AUDIT_ROLES = ("auditor", "admin")
FILTERS = ("kind", "region", "ref", "from", "to")
PAGE_SIZE = 50


@bp.get("/ledger")
@for_roles(*AUDIT_ROLES)
def auditor_ledger():
    chosen = {name: request.args.get(name, "").strip() for name in FILTERS}
    given = {name: value for name, value in chosen.items() if value}
    answer = api("GET", "/ledger/entries", query={**given, "start": request.args.get("start", "0"),
                                                 "limit": PAGE_SIZE})
    page, problem = (answer.data, None) if answer.ok else ({"items": [], "next_start": None}, answer.problem)
    regions = get("/regions")
    return render_template("console/auditor/ledger.html", page=page, chosen=chosen, filters_given=given,
                           problem=problem,
                           regions=regions.get("items", regions) if isinstance(regions, dict) else regions,
                           status=answer.status), 200 if answer.ok else answer.status


@bp.get("/ledger/<int:seq>")
@for_roles(*AUDIT_ROLES, "sme", "provider", "officer", "finance")
def ledger_entry(seq: int):
    """One entry as signed, for anyone the API shows it to; with its receipt
    (proof and checkpoint) once a checkpoint covers it, for the browser check."""
    entry = get(f"/ledger/entries/{seq}")
    receipt = api("GET", f"/ledger/receipts/{seq}")
    return render_template("console/auditor/entry.html", entry=entry,
                           receipt=receipt.data if receipt.ok else None,
                           receipt_problem=None if receipt.ok else receipt.problem)


@bp.get("/checkpoint")
@for_roles(*AUDIT_ROLES)
def auditor_checkpoint():
    note = api("GET", "/ledger/checkpoint")
    witnesses = get("/ledger/witnesses")
    keys = get("/ledger/keys")
    return render_template("console/auditor/checkpoint.html", note=note.body.decode("utf-8") if note.ok else None,
                           note_problem=None if note.ok else note.problem, witnesses=witnesses, keys=keys)


@bp.get("/ledger/export.jsonl")
@for_roles(*AUDIT_ROLES)
def auditor_export():
    """The whole ledger as the API exports it, streamed through, never held in memory."""
    return download("/ledger/export", filename="ledger.jsonl",
                    query={k: request.args[k] for k in ("start", "end") if request.args.get(k)})


@bp.get("/receipts/<int:seq>.json")
@for_roles(*AUDIT_ROLES, "sme", "provider", "officer", "finance")
def receipt_download(seq: int):
    """The receipt as the API gives it, to keep and check offline (`vouchers verify-receipt`)."""
    answer = api("GET", f"/ledger/receipts/{seq}")
    if not answer.ok:
        abort(answer.status, description=answer.problem)
    return Response(answer.body, mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=receipt-{seq}.json"})


@bp.get("/verify")
@for_roles(*AUDIT_ROLES, "sme")
def auditor_verify():
    """Paste or open a receipt file; the page's script checks it (nothing is sent)."""
    return render_template("console/auditor/verify.html")
