"""Evidence (DESIGN §9): documents of a redemption, and the claims that need them."""
from __future__ import annotations

import hashlib

import pytest
from sqlmodel import Session, func, select

from tests.helpers import (
    add_evidence,
    assert_problem,
    assert_rule,
    ledger_size,
    nothing_changes,
    ok,
    pdf_bytes,
    unique_invoice,
    upload_document,
)
from voucher_service.db import get_engine
from voucher_service.models import DocumentChunk

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
PROVIDER = "prv-sh-001"


def _reserve(actors, amount_fen=100_000):
    sme, ks = actors.sme("ent-ks-003"), actors.officer("KS")
    application = ok(sme.post("/applications", json={"amount_fen": 1_000_000, "purpose": "evidence"}), 201)
    voucher_id = ok(ks.post(f"/applications/{application['id']}/approve", json={}))["voucher_id"]
    redemption = ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": PROVIDER,
                                                   "catalog_code": "TS-01", "service_fee_fen": 2 * amount_fen,
                                                   "amount_fen": amount_fen}), 201)
    return redemption["id"]


def _claim(invoice_no=None, amount_fen=100_000):
    return {"invoice_no": invoice_no or unique_invoice(), "service_fee_fen": 2 * amount_fen, "amount_fen": amount_fen}


def _chunks(app) -> int:
    with app.app_context(), Session(get_engine()) as session:
        return session.exec(select(func.count()).select_from(DocumentChunk)).one()


@pytest.fixture(scope="module")
def rid(actors):
    return _reserve(actors)


@pytest.mark.parametrize("content, media_type", [(None, "application/pdf"), (PNG, "image/png"),
                                                 (JPEG, "image/jpeg")])
def test_upload_decides_the_type_by_content(app, actors, rid, content, media_type):
    content = pdf_bytes() if content is None else content + pdf_bytes()
    provider = actors.provider(PROVIDER)
    size = ledger_size(app)
    # The name and the client's Content-Type say nothing: the bytes decide.
    r = upload_document(provider, rid, "acceptance", content, filename="x.exe")
    body = ok(r, 201)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert (body["kind"], body["media_type"], body["size_bytes"]) == ("acceptance", media_type, len(content))
    assert body["ledger"]["seq"] == size
    entry = ok(actors.auditor().get(f"/ledger/entries/{size}"))
    assert entry["kind"] == "redemption.document_added"
    assert entry["data"]["sha256"] == body["sha256"] and entry["refs"]["redemption"] == rid

    download = provider.get(f"/redemptions/{rid}/documents/{body['sha256']}")
    assert download.status_code == 200 and download.data == content
    assert download.mimetype == media_type
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_other_content_is_refused_and_changes_nothing(app, actors, rid):
    provider = actors.provider(PROVIDER)
    chunks = _chunks(app)
    with nothing_changes(app):
        for content in (b"GIF89a" + b"\x00" * 20, b"<html>%PDF-</html>", b"MZ\x90\x00"):
            assert_problem(upload_document(provider, rid, "invoice", content, filename="invoice.pdf"), 415)
        body = assert_problem(upload_document(provider, rid, "invoice", b""), 422)
        assert "file" in str(body.get("errors")), body
        assert_problem(upload_document(provider, rid, "receipt"), 422)
        r = provider.http.post(f"/api/v1/redemptions/{rid}/documents", headers=provider._headers(None),
                               data={"kind": "invoice", "file": "not a file part"},
                               content_type="multipart/form-data")
        assert_problem(r, 422)
        assert_problem(provider.post(f"/redemptions/{rid}/documents", json={"kind": "invoice"}), 422)
    assert _chunks(app) == chunks


def test_size_limit_is_the_document_limit_here_and_64_kib_elsewhere(app, actors, rid):
    provider = actors.provider(PROVIDER)
    app.config["VOUCHERS_MAX_DOCUMENT_BYTES"] = 300 * 1024
    try:
        chunks = _chunks(app)
        with nothing_changes(app):
            # Larger than the document limit, within the body limit: the service counts and refuses.
            body = assert_problem(upload_document(provider, rid, "contract", pdf_bytes() + b"x" * 300 * 1024), 413)
            assert "VOUCHERS_MAX_DOCUMENT_BYTES" in body["detail"]
            # Larger than the body limit for this route: werkzeug refuses before parsing.
            assert_problem(upload_document(provider, rid, "contract", pdf_bytes() + b"x" * 400 * 1024), 413)
            # Every other route keeps the 64 KiB limit.
            big = {"invoice_no": "x" * 70_000, "service_fee_fen": 1, "amount_fen": 1}
            assert_problem(provider.post(f"/redemptions/{rid}/claim", json=big), 413)
        assert _chunks(app) == chunks
        # 200 KiB: more than 64 KiB, within the limit; stored in chunks of 256 KiB at most.
        content = pdf_bytes() + b"y" * 200 * 1024
        body = ok(upload_document(provider, rid, "payment_proof", content), 201)
        assert provider.get(f"/redemptions/{rid}/documents/{body['sha256']}").data == content
    finally:
        app.config["VOUCHERS_MAX_DOCUMENT_BYTES"] = 10 * 1024 * 1024


def test_same_bytes_are_stored_once(app, actors):
    provider = actors.provider(PROVIDER)
    first, second = _reserve(actors), _reserve(actors)
    content = pdf_bytes() + b"z" * 300 * 1024  # two chunks
    a = ok(upload_document(provider, first, "contract", content), 201)
    chunks = _chunks(app)
    b = ok(upload_document(provider, second, "contract", content), 201)
    assert a["sha256"] == b["sha256"] and _chunks(app) == chunks
    # Twice on one redemption: refused, whatever the kind.
    assert_rule(upload_document(provider, first, "invoice", content), "document_not_attached")


def test_list_and_read_access(app, actors):
    rid = _reserve(actors)
    provider = actors.provider(PROVIDER)
    uploaded = add_evidence(provider, rid)
    sha = uploaded[0]["sha256"]
    for reader in (actors.sme("ent-ks-003"), provider, actors.officer("KS"), actors.officer("SH"),
                   actors.auditor(), actors.client("admin")):
        items = ok(reader.get(f"/redemptions/{rid}/documents"))["items"]
        assert {item["sha256"] for item in items} == {u["sha256"] for u in uploaded}
        assert reader.get(f"/redemptions/{rid}/documents/{sha}").status_code == 200
    for stranger in (actors.sme("ent-ks-001"), actors.provider("prv-sh-002"), actors.officer("WJ")):
        assert_problem(stranger.get(f"/redemptions/{rid}/documents"), 404)
        assert_problem(stranger.get(f"/redemptions/{rid}/documents/{sha}"), 404)
    assert_problem(actors.finance("KS").get(f"/redemptions/{rid}/documents"), 403)
    assert_problem(actors.sme("ent-ks-003").post(f"/redemptions/{rid}/documents"), 403)
    assert_problem(provider.get(f"/redemptions/{rid}/documents/{'0' * 64}"), 404)
    assert_problem(provider.get(f"/redemptions/{rid}/documents/not-a-hash"), 404)
    # A document of another redemption is not this one's.
    other = ok(upload_document(provider, _reserve(actors), "contract"), 201)
    assert_problem(provider.get(f"/redemptions/{rid}/documents/{other['sha256']}"), 404)


def test_a_claim_needs_a_contract_and_an_invoice(app, actors):
    rid = _reserve(actors)
    provider = actors.provider(PROVIDER)
    with nothing_changes(app):
        assert_rule(provider.post(f"/redemptions/{rid}/claim", json=_claim()), "evidence_missing", "contract")
    ok(upload_document(provider, rid, "contract"), 201)
    with nothing_changes(app):
        body = assert_rule(provider.post(f"/redemptions/{rid}/claim", json=_claim()), "evidence_missing")
        assert "missing: invoice" in body["detail"]
    invoice = ok(upload_document(provider, rid, "invoice"), 201)
    contract_sha = ok(provider.get(f"/redemptions/{rid}/documents"))["items"][0]["sha256"]
    claimed = ok(provider.post(f"/redemptions/{rid}/claim", json=_claim()))
    entry = ok(actors.auditor().get(f"/ledger/entries/{claimed['ledger']['seq']}"))
    assert entry["kind"] == "redemption.claimed"
    assert entry["data"]["documents"] == [{"kind": "contract", "sha256": contract_sha},
                                          {"kind": "invoice", "sha256": invoice["sha256"]}]


def test_an_invoice_number_is_claimed_once_per_provider(app, actors):
    provider = actors.provider(PROVIDER)
    first, second = _reserve(actors), _reserve(actors)
    invoice_no = unique_invoice()
    add_evidence(provider, first)
    add_evidence(provider, second)
    ok(provider.post(f"/redemptions/{first}/claim", json=_claim(invoice_no)))
    with nothing_changes(app):
        assert_rule(provider.post(f"/redemptions/{second}/claim", json=_claim(invoice_no)), "duplicate_invoice",
                    invoice_no, first)
    # Once the first claim is rejected, the number is free again.
    ok(actors.officer("KS").post(f"/redemptions/{first}/reject", json={"reason": "wrong invoice"}))
    ok(provider.post(f"/redemptions/{second}/claim", json=_claim(invoice_no)))


def test_the_index_holds_when_the_rule_is_skipped(app, actors, monkeypatch):
    from voucher_service.process import documents
    provider = actors.provider(PROVIDER)
    first, second = _reserve(actors), _reserve(actors)
    invoice_no = unique_invoice()
    add_evidence(provider, first)
    add_evidence(provider, second)
    ok(provider.post(f"/redemptions/{first}/claim", json=_claim(invoice_no)))
    monkeypatch.setattr(documents, "live_claim_of_invoice", lambda *_args: None)
    with nothing_changes(app):
        assert_problem(provider.post(f"/redemptions/{second}/claim", json=_claim(invoice_no)), 409)


def test_a_document_evidences_one_claim(app, actors):
    provider = actors.provider(PROVIDER)
    first, second = _reserve(actors), _reserve(actors)
    contract = pdf_bytes()
    ok(upload_document(provider, first, "contract", contract), 201)
    ok(upload_document(provider, first, "invoice"), 201)
    ok(provider.post(f"/redemptions/{first}/claim", json=_claim()))
    shared = ok(upload_document(provider, second, "contract", contract), 201)
    ok(upload_document(provider, second, "invoice"), 201)
    with nothing_changes(app):
        assert_rule(provider.post(f"/redemptions/{second}/claim", json=_claim()), "duplicate_document",
                    shared["sha256"], first)


def test_closed_redemptions_take_no_documents(app, actors):
    rid = _reserve(actors)
    ok(actors.sme("ent-ks-003").post(f"/redemptions/{rid}/cancel", json={}))
    with nothing_changes(app):
        assert_rule(upload_document(actors.provider(PROVIDER), rid, "contract"), "documents_accepted")


def test_an_upload_replays_by_idempotency_key(app, actors, rid):
    provider = actors.provider(PROVIDER)
    content = pdf_bytes()
    first = ok(upload_document(provider, rid, "acceptance", content, headers={"Idempotency-Key": "up-1"}), 201)
    size = ledger_size(app)
    again = upload_document(provider, rid, "acceptance", content, headers={"Idempotency-Key": "up-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["sha256"] == first["sha256"] and ledger_size(app) == size
    assert_problem(upload_document(provider, rid, "acceptance", pdf_bytes(), headers={"Idempotency-Key": "up-1"}),
                   422)
