"""The service provider's console pages (DESIGN §11): the reservations made
at it, a claim page per reservation (documents, then the claim) with the
API's refusals shown as problems, and its account with the payout account
masked. (The whole SME-and-provider path is in test_sme.py.)"""
from __future__ import annotations

import io
import re

import pytest

from helpers import Console, nothing_changes, ok, pdf_bytes, redeem, unique_invoice

PROVIDER = "prv-sh-001"
OTHER_PROVIDER = "prv-ks-002"
ENTERPRISE = "ent-ks-002"
ACCOUNT_NO = "6222021001098765432"


@pytest.fixture(scope="module")
def provider(app, actors):
    return Console(app, actors.token("provider", provider_id=PROVIDER))


@pytest.fixture(scope="module")
def voucher(actors):
    application = ok(actors.sme(ENTERPRISE).post("/applications", json={"amount_fen": 2_000_000,
                                                                        "purpose": "testing"}), 201)
    return ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]


def reservation(actors, voucher, provider_id: str = PROVIDER, fee_fen: int = 200_000) -> dict:
    return ok(actors.sme(ENTERPRISE).post("/redemptions", json={
        "voucher_id": voucher["id"], "provider_id": provider_id, "catalog_code": "TS-01",
        "service_fee_fen": fee_fen, "amount_fen": fee_fen // 2}), 201)


def claim_page(redemption_id: str) -> str:
    return f"/console/provider/reservations/{redemption_id}/claim"


def upload(console, redemption_id: str, kind: str, content: bytes | None = None, filename: str = "scan.pdf"):
    return console.post(f"/console/provider/reservations/{redemption_id}/documents",
                        {"kind": kind, "file": (io.BytesIO(pdf_bytes() if content is None else content), filename)},
                        from_page=claim_page(redemption_id), content_type="multipart/form-data")


def claim(console, redemption_id: str, invoice_no: str, fee: str = "2000", amount: str = "1000",
          from_page: str | None = None):
    return console.post(claim_page(redemption_id), {"invoice_no": invoice_no, "service_fee_yuan": fee,
                                                    "amount_yuan": amount}, from_page=from_page)


def test_each_page_renders_for_the_provider(provider, actors, voucher):
    redemption = reservation(actors, voucher)
    listing = provider.page("/console/provider/reservations")
    assert redemption["id"] in listing and f'href="{claim_page(redemption["id"])}"' in listing
    assert redemption["id"] not in provider.page("/console/provider/reservations?status=claimed")
    page = provider.page(claim_page(redemption["id"]))
    assert "Upload a document" in page and "Claim payment" in page and 'value="1000.00"' in page
    assert "Your account" in provider.page("/console/provider/account")


def test_documents_then_a_claim_through_the_forms(app, actors, provider, voucher):
    redemption = reservation(actors, voucher)
    # One document larger than any other form may be (64 KiB): the upload form takes it.
    big = pdf_bytes() + b"0" * 200_000
    r = upload(provider, redemption["id"], "contract", big, filename="contract.pdf")
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    assert "The document is stored with this reservation." in provider.page(r.headers["Location"])
    assert upload(provider, redemption["id"], "invoice").status_code == 303
    documents = ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption['id']}/documents"))["items"]
    assert {(d["kind"], d["size_bytes"]) for d in documents} >= {("contract", len(big))}
    contract = next(d for d in documents if d["kind"] == "contract")
    link = f"/console/claims/{redemption['id']}/documents/{contract['sha256']}"
    assert f'href="{link}" download' in provider.page(claim_page(redemption["id"])), "its own upload, to check"
    r = provider.get(link)
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment") and r.data == big

    invoice = unique_invoice()
    r = claim(provider, redemption["id"], invoice, fee="1800.50", amount="900.25")
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=claimed")
    claimed = ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption['id']}"))
    assert (claimed["status"], claimed["invoice_no"], claimed["service_fee_fen"], claimed["amount_fen"]) == (
        "claimed", invoice, 180_050, 90_025)
    page = provider.page(r.headers["Location"])
    assert "Your claim is submitted" in page and invoice in page
    assert "Submit the claim" not in page, "a claimed reservation has no claim form"


def test_a_document_over_the_limit_is_refused_on_a_page_and_nothing_is_stored(app, actors, provider, voucher,
                                                                              monkeypatch):
    redemption = reservation(actors, voucher)
    monkeypatch.setitem(app.config, "VOUCHERS_MAX_DOCUMENT_BYTES", 100 * 1024)
    with nothing_changes(app):
        r = upload(provider, redemption["id"], "contract", pdf_bytes() + b"0" * 300_000, filename="big.pdf")
    assert (r.status_code, r.mimetype) == (413, "text/html")
    assert "A document may be at most 100 KiB." in r.get_data(as_text=True)
    assert ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption['id']}/documents"))["items"] == []


def test_a_claim_without_evidence_shows_the_problem_and_changes_nothing(app, actors, provider, voucher):
    redemption = reservation(actors, voucher)
    assert upload(provider, redemption["id"], "contract").status_code == 303
    with nothing_changes(app):
        r = claim(provider, redemption["id"], "INV-NO-EVIDENCE")
    page = r.get_data(as_text=True)
    assert r.status_code == 409 and 'role="alert"' in page and "evidence missing" in page and "invoice" in page
    assert 'value="INV-NO-EVIDENCE"' in page, "what the provider typed is kept"
    assert ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption['id']}"))["status"] == "reserved"


def test_a_duplicate_invoice_shows_the_problem_and_changes_nothing(app, actors, provider, voucher):
    first, second = reservation(actors, voucher), reservation(actors, voucher)
    for redemption in (first, second):
        for kind in ("contract", "invoice"):
            assert upload(provider, redemption["id"], kind).status_code == 303
    invoice = unique_invoice()
    assert claim(provider, first["id"], invoice).status_code == 303
    with nothing_changes(app):
        r = claim(provider, second["id"], invoice)
    assert r.status_code == 409 and "duplicate invoice" in r.get_data(as_text=True)
    assert ok(actors.provider(PROVIDER).get(f"/redemptions/{second['id']}"))["status"] == "reserved"


def test_a_file_that_is_no_document_and_bad_amounts_are_refused(app, actors, provider, voucher):
    redemption = reservation(actors, voucher)
    with nothing_changes(app):
        r = upload(provider, redemption["id"], "contract", b"MZ\x90\x00 not a pdf", filename="contract.pdf")
        assert r.status_code == 415 and 'role="alert"' in r.get_data(as_text=True)
        r = provider.post(f"/console/provider/reservations/{redemption['id']}/documents", {"kind": "contract"},
                          from_page=claim_page(redemption["id"]), content_type="multipart/form-data")
        assert r.status_code == 422 and "Choose the file to upload" in r.get_data(as_text=True)
        for amount in ("12.345", "-1", "abc"):
            r = claim(provider, redemption["id"], unique_invoice(), amount=amount)
            page = r.get_data(as_text=True)
            assert r.status_code == 422, amount
            assert re.search(r'<div class="field invalid">\s*<label for="f-amount_yuan">', page), amount
    assert ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption['id']}/documents"))["items"] == []


def test_a_provider_cannot_see_or_claim_another_providers_reservation(app, actors, voucher):
    theirs = reservation(actors, voucher, provider_id=OTHER_PROVIDER)
    intruder = Console(app, actors.token("provider", provider_id=PROVIDER))
    page = intruder.page(claim_page(theirs["id"]), status=404)
    assert ENTERPRISE not in page and "¥1,000.00" not in page
    assert theirs["id"] not in intruder.page("/console/provider/reservations")
    with nothing_changes(app):
        r = claim(intruder, theirs["id"], unique_invoice(), from_page="/console/provider/reservations")
        assert r.status_code == 404 and ENTERPRISE not in r.get_data(as_text=True)
        r = intruder.post(f"/console/provider/reservations/{theirs['id']}/documents",
                          {"kind": "contract", "file": (io.BytesIO(pdf_bytes()), "c.pdf")},
                          from_page="/console/provider/reservations", content_type="multipart/form-data")
        assert r.status_code == 404
    assert ok(actors.provider(OTHER_PROVIDER).get(f"/redemptions/{theirs['id']}/documents"))["items"] == []
    theirs_uploaded = ok(actors.provider(OTHER_PROVIDER).post(
        f"/redemptions/{theirs['id']}/documents", data={"kind": "contract", "file": (io.BytesIO(pdf_bytes()), "c.pdf")},
        content_type="multipart/form-data"), 201)
    r = intruder.get(f"/console/claims/{theirs['id']}/documents/{theirs_uploaded['sha256']}")
    assert r.status_code == 404 and b"%PDF" not in r.data


def test_the_account_shows_what_is_owed_and_the_payout_account_masked(app, actors):
    provider_id = "prv-wj-001"  # testing, WJ: paid by SH for an SH voucher
    redeem(actors, "ent-sh-002", provider_id, 30_000)
    officer, second_officer = actors.officer("WJ"), actors.officer("WJ")
    ok(officer.put(f"/providers/{provider_id}/payout-account", json={
        "account_name": "苏州市吴江区检验检测中心", "bank_name": "中国银行吴江支行", "account_no": ACCOUNT_NO}), 202)
    ok(second_officer.post(f"/providers/{provider_id}/payout-account/confirm", json={}))
    page = Console(app, actors.token("provider", provider_id=provider_id)).page("/console/provider/account")
    owed = re.search(r'<th scope="row">SH</th><td class="num">([^<]+)</td>', page)
    assert owed and owed.group(1) == "¥300.00", "owed by the issuing region, SH"
    assert "****5432" in page and ACCOUNT_NO not in page
    assert "中国银行吴江支行" in page


def test_other_roles_are_sent_home_from_the_providers_pages(app, actors, voucher):
    sme = Console(app, actors.token("sme", enterprise_id=ENTERPRISE))
    redemption = reservation(actors, voucher)
    for path in ("/console/provider/reservations", "/console/provider/account", claim_page(redemption["id"])):
        r = sme.get(path)
        assert r.status_code == 302 and r.headers["Location"] == "/console/", path
    with nothing_changes(app):
        r = sme.post(claim_page(redemption["id"]), {"invoice_no": "X", "service_fee_yuan": "1", "amount_yuan": "1"},
                     from_page="/console/vouchers")
    assert r.status_code == 302
