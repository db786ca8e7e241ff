"""The SME's console pages (DESIGN §11): vouchers and applications, a voucher
with its redemptions and receipts, applying, reserving from the catalogue with
the subsidy worked out, confirming and cancelling; and the whole path of a
voucher through the SME's and the provider's forms, checked through the API."""
from __future__ import annotations

import html
import io
import re

import pytest

from voucher_service.console.form_input import YuanError, parse_yuan, subsidy_fen
from helpers import Console, ledger_size, nothing_changes, ok, pdf_bytes, unique_invoice

ENTERPRISE = "ent-ks-003"     # KS, no related provider
OTHER_ENTERPRISE = "ent-sh-001"
PROVIDER = "prv-sh-001"       # SH, accredited for testing: a cross-region redemption
RELATED_PROVIDER = "prv-ks-004"  # related to ent-ks-001


def voucher_for(actors, enterprise_id: str, amount_fen: int) -> dict:
    region = enterprise_id.split("-")[1].upper()
    application = ok(actors.sme(enterprise_id).post("/applications", json={"amount_fen": amount_fen,
                                                                           "purpose": "testing"}), 201)
    return ok(actors.officer(region).post(f"/applications/{application['id']}/approve", json={}))["voucher"]


def reserve_over_api(actors, enterprise_id: str, voucher_id: str, fee_fen: int = 100_000) -> dict:
    return ok(actors.sme(enterprise_id).post("/redemptions", json={
        "voucher_id": voucher_id, "provider_id": PROVIDER, "catalog_code": "TS-01",
        "service_fee_fen": fee_fen, "amount_fen": fee_fen // 2}), 201)


def text(page: str) -> str:
    """The page's words, without tags, as a reader hears them."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture(scope="module")
def sme(app, actors):
    return Console(app, actors.token("sme", enterprise_id=ENTERPRISE))


@pytest.fixture(scope="module")
def voucher(actors):
    return voucher_for(actors, ENTERPRISE, 1_000_000)


@pytest.mark.parametrize("typed, fen", [("12", 1200), ("12.3", 1230), ("0.29", 29), ("1,234.56", 123456),
                                        (" ¥20 ", 2000), ("007.10", 710), ("12.", 1200), ("￥1，234，567", 123456700),
                                        ("9999999999.99", 999999999999)])
def test_yuan_is_read_exactly(typed, fen):
    assert parse_yuan(typed) == fen


@pytest.mark.parametrize("typed", ["12.345", "-1", "abc", "", "0", "0.00", "1e3", "١٢", ".5", "99999999999",
                                   "1,00", "1,2,3", "12,3456", "¥¥5", "1 000"])
def test_a_bad_amount_is_refused_with_a_reason(app, typed):
    with app.test_request_context(), pytest.raises(YuanError) as refused:
        parse_yuan(typed)
    assert str(refused.value)


def test_the_subsidy_is_the_stricter_ratio_rounded_down_and_at_most_what_is_available():
    assert subsidy_fen(100_001, 5000, 5000, 10**9) == 50_000, "never a fen above the ratio"
    assert subsidy_fen(100_000, 5000, 3000, 10**9) == 30_000, "the region's ratio is stricter"
    assert subsidy_fen(100_000, 3000, 5000, 10**9) == 30_000, "the item's ratio is stricter"
    assert subsidy_fen(100_000, 5000, 5000, 12_345) == 12_345, "no more than the voucher has"


def test_each_page_renders_for_the_sme(sme, voucher):
    vouchers = sme.page("/console/vouchers")
    assert voucher["code"] in vouchers and 'href="/console/vouchers/' + voucher["id"] in vouchers
    assert "¥10,000.00" in vouchers, "the face value and balances, in yuan"
    assert "Apply for a voucher" in sme.page("/console/apply")
    catalogue = sme.page("/console/catalogue")
    assert "TS-01" in catalogue and "Product testing and inspection" in catalogue
    assert "TS-01" not in sme.page("/console/catalogue?category=ip")
    reserve = sme.page("/console/catalogue/TS-01/reserve")
    assert voucher["code"] in reserve and PROVIDER in reserve
    assert "prv-sh-003" not in reserve, "only providers accredited for the item's category"
    assert 'src="/console/static/console/sme.js"' in reserve and 'data-item-ratio-bp="5000"' in reserve
    assert "Reservations" in sme.page("/console/reservations")
    assert voucher["code"] in sme.page(f"/console/vouchers/{voucher['id']}")


def test_the_catalogue_speaks_chinese(app, actors):
    console = Console(app, actors.token("sme", enterprise_id=ENTERPRISE), language="zh-CN")
    page = console.page("/console/catalogue")
    assert "产品检验检测" in page and '<option value="testing">检验检测</option>' in page, "names from the API"
    assert '<option value="testing">Testing and inspection</option>' in Console(
        app, actors.token("sme", enterprise_id=ENTERPRISE)).page("/console/catalogue")


def test_the_whole_path_through_the_sme_and_provider_forms(app, actors):
    sme = Console(app, actors.token("sme", enterprise_id=ENTERPRISE))
    provider = Console(app, actors.token("provider", provider_id=PROVIDER))
    api_sme, officer = actors.sme(ENTERPRISE), actors.officer("KS")

    # Apply through the form; the officer approves through the API.
    r = sme.post("/console/apply", {"amount_yuan": "2,000.00", "purpose": "Testing our new sensor"})
    assert r.status_code == 303 and r.headers["Location"] == "/console/vouchers?done=applied"
    assert "Your application has been submitted" in sme.page("/console/vouchers?done=applied")
    application = next(a for a in ok(api_sme.get("/applications?limit=100"))["items"]
                       if a["purpose"] == "Testing our new sensor")
    assert application["amount_fen"] == 200_000 and application["status"] == "submitted"
    voucher = ok(officer.post(f"/applications/{application['id']}/approve", json={}))["voucher"]

    # Work the subsidy out (the no-JavaScript path): nothing is reserved.
    reserve_page = "/console/catalogue/TS-01/reserve"
    form = {"voucher_id": voucher["id"], "provider_id": PROVIDER, "service_fee_yuan": "1000.01"}
    with nothing_changes(app):
        r = sme.post(reserve_page, {**form, "action": "work_out"})
    assert r.status_code == 200
    worked_out = "The voucher pays ¥500.00 of the ¥1,000.01 price; you pay the provider ¥500.01."
    assert worked_out in text(r.get_data(as_text=True))

    # Reserve: the API's answer is what the voucher page shows.
    r = sme.post(reserve_page, {**form, "action": "reserve"})
    assert r.status_code == 303, r.get_data(as_text=True)[:800]
    location = r.headers["Location"]
    redemption_id = re.search(r"redemption=(rdm_[0-9a-f]+)", location).group(1)
    assert location.startswith(f"/console/vouchers/{voucher['id']}?")
    redemption = ok(api_sme.get(f"/redemptions/{redemption_id}"))
    assert (redemption["service_fee_fen"], redemption["amount_fen"], redemption["status"]) == (100_001, 50_000,
                                                                                              "reserved")
    assert ok(api_sme.get(f"/vouchers/{voucher['id']}"))["held_fen"] == 50_000
    shown = text(sme.page(location))
    assert "Your reservation" in shown and "Held on the voucher ¥500.00" in shown
    assert "You pay the provider ¥500.01" in shown

    # The provider sees it, uploads a contract and an invoice, and claims.
    assert redemption_id in provider.page("/console/provider/reservations")
    claim_page = f"/console/provider/reservations/{redemption_id}/claim"
    for kind in ("contract", "invoice"):
        r = provider.post(f"/console/provider/reservations/{redemption_id}/documents",
                          {"kind": kind, "file": (io.BytesIO(pdf_bytes()), f"{kind}.pdf", "application/pdf")},
                          from_page=claim_page, content_type="multipart/form-data")
        assert r.status_code == 303 and r.headers["Location"].endswith("?done=uploaded"), r.get_data(as_text=True)[:800]
    documents = ok(actors.provider(PROVIDER).get(f"/redemptions/{redemption_id}/documents"))["items"]
    assert sorted(d["kind"] for d in documents) == ["contract", "invoice"]
    assert all(d["sha256"] in provider.page(claim_page) for d in documents)
    invoice = unique_invoice()
    r = provider.post(claim_page, {"invoice_no": invoice, "service_fee_yuan": "1000.01", "amount_yuan": "480"})
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=claimed"), r.get_data(as_text=True)[:800]
    claimed = ok(api_sme.get(f"/redemptions/{redemption_id}"))
    assert (claimed["status"], claimed["invoice_no"], claimed["amount_fen"]) == ("claimed", invoice, 48_000)

    # The SME confirms delivery through its reservations page.
    assert invoice in sme.page("/console/reservations")
    r = sme.post(f"/console/reservations/{redemption_id}/confirm", from_page="/console/reservations")
    assert r.status_code == 303 and r.headers["Location"] == "/console/reservations?done=confirmed"
    assert ok(api_sme.get(f"/redemptions/{redemption_id}"))["status"] == "confirmed"
    assert "Waiting for the issuing region's approval" in text(sme.page(f"/console/vouchers/{voucher['id']}"))

    # Once the region approves, the voucher page links the entry and its receipt.
    approved = ok(officer.post(f"/redemptions/{redemption_id}/approve"))
    seq = approved["ledger"]["seq"]
    page = sme.page(f"/console/vouchers/{voucher['id']}")
    assert f'href="/console/ledger/{seq}"' in page and f'href="/console/receipts/{seq}.json"' in page
    assert "redemption.redeemed" in sme.page(f"/console/ledger/{seq}")
    assert ok(api_sme.get(f"/vouchers/{voucher['id']}"))["redeemed_fen"] == 48_000


@pytest.mark.parametrize("price", ["12.345", "-1", "abc"])
def test_a_bad_price_shows_a_field_error_and_changes_nothing(app, sme, voucher, price):
    form = {"voucher_id": voucher["id"], "provider_id": PROVIDER, "service_fee_yuan": price, "action": "reserve"}
    with nothing_changes(app):
        r = sme.post("/console/catalogue/TS-01/reserve", form)
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert re.search(r'<div class="field invalid">\s*<label for="f-service_fee_yuan">', page), "the field is marked"
    assert '<p class="error">' in page
    assert f'value="{html.escape(price)}"' in page, "what the user typed is kept"


def test_a_refused_reservation_shows_the_apis_problem_and_changes_nothing(app, actors):
    related = "ent-ks-001"
    voucher = voucher_for(actors, related, 500_000)
    console = Console(app, actors.token("sme", enterprise_id=related))
    form = {"voucher_id": voucher["id"], "provider_id": RELATED_PROVIDER, "service_fee_yuan": "800",
            "action": "reserve"}
    with nothing_changes(app):
        r = console.post("/console/catalogue/TS-01/reserve", form)
    assert r.status_code == 409
    page = r.get_data(as_text=True)
    assert 'role="alert"' in page and "related party" in page
    assert 'value="800"' in page
    assert ok(actors.sme(related).get(f"/vouchers/{voucher['id']}"))["held_fen"] == 0


def test_a_bad_application_shows_field_errors_and_changes_nothing(app, sme):
    with nothing_changes(app):
        r = sme.post("/console/apply", {"amount_yuan": "5000.555", "purpose": "  "})
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "at most two decimals" in page and "Say what the voucher is for." in page
    assert 'value="5000.555"' in page


def test_cancel_and_confirm_go_through_the_api_and_its_refusals_show(app, actors, sme, voucher):
    api_sme = actors.sme(ENTERPRISE)
    redemption = reserve_over_api(actors, ENTERPRISE, voucher["id"])
    before = ok(api_sme.get(f"/vouchers/{voucher['id']}"))["available_fen"]
    assert redemption["id"] in sme.page("/console/reservations")

    # Confirming what the provider has not claimed is the API's 409, shown on the page.
    with nothing_changes(app):
        r = sme.post(f"/console/reservations/{redemption['id']}/confirm", from_page="/console/reservations")
    assert r.status_code == 409 and 'role="alert"' in r.get_data(as_text=True)

    r = sme.post(f"/console/reservations/{redemption['id']}/cancel", {"reason": "Changed our plans"},
                 from_page="/console/reservations")
    assert r.status_code == 303 and r.headers["Location"] == "/console/reservations?done=cancelled"
    cancelled = ok(api_sme.get(f"/redemptions/{redemption['id']}"))
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "Changed our plans")
    assert ok(api_sme.get(f"/vouchers/{voucher['id']}"))["available_fen"] == before + redemption["amount_fen"]

    with nothing_changes(app):
        r = sme.post(f"/console/reservations/{redemption['id']}/cancel", from_page="/console/reservations")
    assert r.status_code == 409 and "cancelled" in r.get_data(as_text=True)


def test_one_sme_cannot_open_another_smes_voucher(app, actors, voucher):
    other = Console(app, actors.token("sme", enterprise_id=OTHER_ENTERPRISE))
    page = other.page(f"/console/vouchers/{voucher['id']}", status=404)
    assert voucher["code"] not in page and "¥10,000.00" not in page
    assert voucher["code"] not in other.page("/console/vouchers")
    # Nor reserve on it, by posting its id to the form.
    form = {"voucher_id": voucher["id"], "provider_id": PROVIDER, "service_fee_yuan": "100", "action": "reserve"}
    with nothing_changes(app):
        r = other.post("/console/catalogue/TS-01/reserve", form)
    assert r.status_code == 422


def test_an_id_that_is_no_id_is_not_found(sme):
    for path in ("/console/vouchers/x%3Fstatus=active", "/console/vouchers/..%2F..%2Fledger",
                 "/console/catalogue/TS-01%3Fx/reserve"):
        assert sme.get(path).status_code == 404, path


def test_other_roles_are_sent_home_from_the_smes_pages(app, actors):
    provider = Console(app, actors.token("provider", provider_id=PROVIDER))
    for path in ("/console/vouchers", "/console/apply", "/console/catalogue", "/console/reservations"):
        r = provider.get(path)
        assert r.status_code == 302 and r.headers["Location"] == "/console/", path
    before = ledger_size(app)
    r = provider.post("/console/apply", {"amount_yuan": "100", "purpose": "x"}, from_page="/console/provider/account")
    assert r.status_code == 302 and ledger_size(app) == before
