"""`vouchers verify-document`: a file is the evidence a signed claim names, checked offline."""
from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner
from helpers import ok, pdf_bytes, unique_invoice, upload_document

from voucher_service.cli.verify import verify_document_command


def _claimed(actors, tmp_path):
    """A claim with a contract and an invoice; their files, the claim's entry and the keys, on disk."""
    sme, ks, provider = actors.sme("ent-ks-003"), actors.officer("KS"), actors.provider("prv-sh-001")
    application = ok(sme.post("/applications", json={"amount_fen": 100_000, "purpose": "verify document"}), 201)
    voucher_id = ok(ks.post(f"/applications/{application['id']}/approve", json={}))["voucher_id"]
    rid = ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": "prv-sh-001",
                                            "catalog_code": "TS-01", "service_fee_fen": 20_000,
                                            "amount_fen": 10_000}), 201)["id"]
    files = {}
    for kind in ("contract", "invoice"):
        content = pdf_bytes()
        ok(upload_document(provider, rid, kind, content), 201)
        files[kind] = tmp_path / f"{kind}.pdf"
        files[kind].write_bytes(content)
    claimed = ok(provider.post(f"/redemptions/{rid}/claim", json={
        "invoice_no": unique_invoice(), "service_fee_fen": 20_000, "amount_fen": 10_000}))
    entry = actors.auditor().get(f"/ledger/entries/{claimed['ledger']['seq']}")
    files["entry"] = tmp_path / "entry.json"
    files["entry"].write_bytes(entry.data)
    files["keys"] = tmp_path / "keys.json"
    files["keys"].write_bytes(actors.anonymous().get("/ledger/keys").data)
    return rid, files


def _run(*args):
    return CliRunner().invoke(verify_document_command, [str(a) for a in args])


def test_a_claims_documents_verify(app, actors, tmp_path):
    rid, files = _claimed(actors, tmp_path)
    result = _run(files["invoice"], "--entry", files["entry"], "--keys", files["keys"])
    assert result.exit_code == 0, result.output
    assert "is the invoice named by entry seq" in result.output and rid in result.output
    assert "signature: verified" in result.output
    unsigned = _run(files["contract"], "--entry", files["entry"])
    assert unsigned.exit_code == 0 and "is the contract" in unsigned.output
    assert "signature: not checked" in unsigned.output


def test_another_file_or_an_edited_entry_fails(app, actors, tmp_path):
    _rid, files = _claimed(actors, tmp_path)
    other = tmp_path / "other.pdf"
    other.write_bytes(pdf_bytes())
    result = _run(other, "--entry", files["entry"], "--keys", files["keys"])
    assert result.exit_code == 1 and "FAILED at document" in result.output and "not among the 2" in result.output

    # The entry edited to name another file: the file matches, the signature does not.
    entry = json.loads(files["entry"].read_text())
    forged = next(d for d in entry["data"]["documents"] if d["kind"] == "invoice")
    forged["sha256"] = hashlib.sha256(other.read_bytes()).hexdigest()
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(entry))
    assert _run(other, "--entry", edited).exit_code == 0  # without keys, only the hash is checked
    result = _run(other, "--entry", edited, "--keys", files["keys"])
    assert result.exit_code == 1 and "does not verify" in result.output, result.output

    not_entry = tmp_path / "not-entry.json"
    not_entry.write_text('{"kind": "voucher.issued", "data": {}}')
    result = _run(other, "--entry", not_entry)
    assert result.exit_code == 1 and "FAILED at entry" in result.output
    result = _run(tmp_path / "missing.pdf", "--entry", files["entry"])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_an_upload_entry_names_its_document(app, actors, tmp_path):
    sme, ks, provider = actors.sme("ent-ks-003"), actors.officer("KS"), actors.provider("prv-sh-001")
    application = ok(sme.post("/applications", json={"amount_fen": 100_000, "purpose": "verify upload"}), 201)
    voucher_id = ok(ks.post(f"/applications/{application['id']}/approve", json={}))["voucher_id"]
    rid = ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": "prv-sh-001",
                                            "catalog_code": "TS-01", "service_fee_fen": 20_000,
                                            "amount_fen": 10_000}), 201)["id"]
    content = pdf_bytes()
    uploaded = ok(upload_document(provider, rid, "acceptance", content), 201)
    (tmp_path / "doc.pdf").write_bytes(content)
    (tmp_path / "entry.json").write_bytes(actors.auditor().get(f"/ledger/entries/{uploaded['ledger']['seq']}").data)
    (tmp_path / "keys.json").write_bytes(actors.anonymous().get("/ledger/keys").data)
    result = _run(tmp_path / "doc.pdf", "--entry", tmp_path / "entry.json", "--keys", tmp_path / "keys.json")
    assert result.exit_code == 0 and "is the acceptance" in result.output, result.output
