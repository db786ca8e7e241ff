"""Requests no console page sends, as a reviewer probing the console sends them:
a form body on HEAD, ids in the address that decode to another API path, a
line break in `next`, a method no route names. Each is refused in the
console's frame and changes nothing."""
from __future__ import annotations

import pytest

from helpers import Console, nothing_changes, ok

ENTERPRISE, PROVIDER, HOME_PROVIDER = "ent-ks-003", "prv-sh-001", "prv-ks-001"


@pytest.fixture(scope="module")
def sme(app, actors):
    return Console(app, actors.token("sme", enterprise_id=ENTERPRISE))


@pytest.fixture(scope="module")
def officer(app, actors):
    return Console(app, actors.token("officer", region="KS"))


@pytest.fixture(scope="module")
def voucher(actors):
    application = ok(actors.sme(ENTERPRISE).post("/applications", json={"amount_fen": 500_000,
                                                                        "purpose": "hostile requests"}), 201)
    return ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]


def test_a_form_body_sent_with_head_writes_nothing(app, actors, sme, voucher):
    """Flask answers HEAD with the GET handler; a form's handler must not take it for the POST."""
    provider = Console(app, actors.token("provider", provider_id=PROVIDER))
    reserved = ok(actors.sme(ENTERPRISE).post("/redemptions", json={
        "voucher_id": voucher["id"], "provider_id": PROVIDER, "catalog_code": "TS-01",
        "service_fee_fen": 100_000, "amount_fen": 50_000}), 201)
    applications = len(ok(actors.sme(ENTERPRISE).get("/applications", query_string={"limit": 100}))["items"])
    forms = [
        (sme, "/console/apply", {"amount_yuan": "123.45", "purpose": "HEAD without a form token"}),
        (sme, "/console/catalogue/TS-01/reserve", {"voucher_id": voucher["id"], "provider_id": PROVIDER,
                                                   "service_fee_yuan": "100", "action": "reserve"}),
        (provider, f"/console/provider/reservations/{reserved['id']}/claim",
         {"invoice_no": "HEAD-1", "service_fee_yuan": "1000", "amount_yuan": "500"}),
    ]
    with nothing_changes(app):
        for console, path, form in forms:
            r = console.http.open(path, method="HEAD", data=form)
            assert r.status_code == 200 and "Location" not in r.headers, (path, r.status_code, r.headers)
    assert len(ok(actors.sme(ENTERPRISE).get("/applications", query_string={"limit": 100}))["items"]) == applications
    assert ok(actors.sme(ENTERPRISE).get(f"/redemptions/{reserved['id']}"))["status"] == "reserved"


@pytest.mark.parametrize("path", [
    "/console/finance/batches/%3F", "/console/finance/batches/x%3Flimit=1",
    "/console/officer/vouchers/%3Fa", "/console/officer/vouchers/{voucher}%252Fvoid",
    "/console/officer/claims/{redemption}%252Fdocuments",
    "/console/officer/providers/prv-ks-001%252F..%252F..%252Fvouchers",
])
def test_an_id_that_decodes_to_another_api_path_is_a_page_not_found(app, actors, voucher, path):
    """'%3F' arrives as '?', '%252F' as '%2F', which the API reads as '/': the page
    would ask for a sub-resource or an action of the object instead of the object."""
    redemption = ok(actors.sme(ENTERPRISE).post("/redemptions", json={
        "voucher_id": voucher["id"], "provider_id": PROVIDER, "catalog_code": "TS-01",
        "service_fee_fen": 20_000, "amount_fen": 10_000}), 201)
    path = path.format(voucher=voucher["id"], redemption=redemption["id"])
    role = {"finance": ("finance", {"region": "KS"}), "officer": ("officer", {"region": "KS"})}[path.split("/")[2]]
    console = Console(app, actors.token(role[0], **role[1]))
    r = console.get(path)
    assert (r.status_code, r.mimetype) == (404, "text/html"), (path, r.status_code, r.get_data(as_text=True)[:300])


def test_a_suspend_form_cannot_be_turned_into_another_action(app, actors, officer):
    ok(actors.officer("KS").post(f"/providers/{HOME_PROVIDER}/suspend", json={}))
    try:
        with nothing_changes(app):
            r = officer.post(f"/console/officer/providers/{HOME_PROVIDER}%252Freinstate%3F/suspend", {},
                             from_page=f"/console/officer/providers/{HOME_PROVIDER}")
            assert (r.status_code, r.mimetype) == (404, "text/html"), r.get_data(as_text=True)[:300]
        assert ok(actors.officer("KS").get(f"/providers/{HOME_PROVIDER}"))["status"] == "suspended"
    finally:
        ok(actors.officer("KS").post(f"/providers/{HOME_PROVIDER}/reinstate", json={}))


@pytest.mark.parametrize("next_path", ["/console%0D%0ASet-Cookie:%20x=1", "/console/vouchers%0A", "/console%00"])
def test_a_line_break_in_next_is_dropped_not_a_server_error(sme, next_path):
    r = sme.get(f"/console/language/en?next={next_path}")
    assert r.status_code in (302, 303) and r.headers["Location"].endswith("/console/"), (r.status_code, r.headers)
    assert "x=1" not in " ".join(r.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "FOO"])
def test_a_method_no_route_names_is_a_console_page_with_allow(sme, method):
    r = sme.http.open("/console/vouchers", method=method)
    assert (r.status_code, r.mimetype) == (405, "text/html"), (method, r.get_data(as_text=True)[:300])
    assert r.headers["Allow"] == "GET" and 'role="alert"' in r.get_data(as_text=True)
    assert sme.http.open("/console/no/such/page", method=method).status_code == 404
