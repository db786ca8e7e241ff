"""HTTP conventions of DESIGN §5 (normative): RFC 9457 problem+json for every error and
never a 5xx for bad input, Idempotency-Key replay, limit/cursor pagination, Location on
201, health endpoints, and the OpenAPI document with docs served without the internet.
"""
from __future__ import annotations

import json
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest


from helpers import adopt_catalogue_change, assert_problem, ledger_size, make_uscc

PROBLEM_JSON = "application/problem+json"


def wrong_check_character(code: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return code[:-1] + alphabet[(alphabet.index(code[-1]) + 1) % len(alphabet)]


@pytest.fixture(scope="module")
def world(actors):
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    r = sme.post("/applications", json={"amount_fen": 1_000_000, "purpose": "conventions"})
    application_id = r.get_json()["id"]
    pending = sme.post("/applications", json={"amount_fen": 1_000, "purpose": "pending"}).get_json()["id"]
    voucher = officer.post(f"/applications/{application_id}/approve", json={}).get_json()["voucher"]
    r = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-sh-001",
                                       "catalog_code": "TS-01", "service_fee_fen": 20_000, "amount_fen": 10_000})
    assert r.status_code == 201, r.get_json()
    return {"sme": sme, "officer": officer, "sh_officer": actors.officer("SH"), "auditor": actors.auditor(),
            "provider": actors.provider("prv-sh-001"), "voucher": voucher["id"], "redemption": r.get_json()["id"],
            "application": pending}


# --- every error is problem+json, no bad input is a 5xx, none changes state ----------

def redemption_body(world, **changes):
    return {"voucher_id": world["voucher"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
            "service_fee_fen": 20_000, "amount_fen": 1_000, **changes}


def provider_body(**changes):
    return {"name": "Provider under test", "uscc": make_uscc(letters=True), "region": "KS", "categories": ["testing"],
            **changes}


APPLICATION = {"amount_fen": 1_000, "purpose": "valid purpose"}
RAW = object()  # marks a raw body: (data, content_type)

# (id, who, method, path, body, status, field in `errors` or None)
# body: a JSON-able value, a callable of `world`, or (RAW, data, content_type)
BAD_INPUT = [
    ("malformed-json", "sme", "POST", "/applications", (RAW, '{"amount_fen": ', "application/json"), 400, None),
    ("not-utf8", "sme", "POST", "/applications", (RAW, b'{"purpose": "\xff\xfe"}', "application/json"), 400, None),
    ("json-array", "sme", "POST", "/applications", [APPLICATION], 422, None),
    ("json-string", "sme", "POST", "/applications", "amount_fen=100", 422, None),
    ("json-null", "sme", "POST", "/applications", (RAW, "null", "application/json"), 422, None),
    ("amount-as-string", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": "100"}, 422, "amount_fen"),
    ("amount-as-float", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": 1.5}, 422, "amount_fen"),
    ("amount-as-float-integral", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": 100.0}, 422,
     "amount_fen"),
    ("amount-as-true", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": True}, 422, "amount_fen"),
    ("amount-null", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": None}, 422, "amount_fen"),
    ("amount-negative", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": -1}, 422, "amount_fen"),
    ("amount-zero", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": 0}, 422, "amount_fen"),
    ("amount-above-1e12", "sme", "POST", "/applications", {**APPLICATION, "amount_fen": 10**12 + 1}, 422,
     "amount_fen"),
    ("amount-nan", "sme", "POST", "/applications",
     (RAW, '{"amount_fen": NaN, "purpose": "x"}', "application/json"), 422, "amount_fen"),
    ("amount-1e400", "sme", "POST", "/applications",
     (RAW, '{"amount_fen": 1e400, "purpose": "x"}', "application/json"), 422, "amount_fen"),
    ("unknown-field", "sme", "POST", "/applications", {**APPLICATION, "enterprise_id": "ent-ks-001"}, 422,
     "enterprise_id"),
    ("missing-field", "sme", "POST", "/applications", {"amount_fen": 1_000}, 422, "purpose"),
    ("empty-string", "sme", "POST", "/applications", {**APPLICATION, "purpose": ""}, 422, "purpose"),
    ("over-long-string", "sme", "POST", "/applications", {**APPLICATION, "purpose": "x" * 501}, 422, "purpose"),
    ("fee-as-string", "sme", "POST", "/redemptions", lambda w: redemption_body(w, service_fee_fen="20000"), 422,
     "service_fee_fen"),
    ("redemption-amount-float", "sme", "POST", "/redemptions", lambda w: redemption_body(w, amount_fen=10.5), 422,
     "amount_fen"),
    ("redemption-missing-voucher", "sme", "POST", "/redemptions",
     lambda w: {k: v for k, v in redemption_body(w).items() if k != "voucher_id"}, 422, "voucher_id"),
    ("redemption-unknown-field", "sme", "POST", "/redemptions", lambda w: redemption_body(w, region="SH"), 422,
     "region"),
    ("claim-invoice-too-long", "provider", "POST", "/redemptions/{redemption}/claim",
     {"invoice_no": "I" * 65, "service_fee_fen": 20_000, "amount_fen": 10_000}, 422, "invoice_no"),
    ("claim-amount-zero", "provider", "POST", "/redemptions/{redemption}/claim",
     {"invoice_no": "I", "service_fee_fen": 20_000, "amount_fen": 0}, 422, "amount_fen"),
    ("approve-bad-date", "officer", "POST", "/applications/{application}/approve", {"valid_until": "31/12/2026"},
     422, "valid_until"),
    ("approve-amount-string", "officer", "POST", "/applications/{application}/approve", {"amount_fen": "5"}, 422,
     "amount_fen"),
    ("reject-without-reason", "officer", "POST", "/applications/{application}/reject", {}, 422, "reason"),
    ("void-reason-too-long", "officer", "POST", "/vouchers/{voucher}/void", {"reason": "r" * 501}, 422, "reason"),
    ("uscc-bad-check-character", "officer", "POST", "/providers",
     lambda w: provider_body(uscc=wrong_check_character(make_uscc(letters=True))), 422, "uscc"),
    ("uscc-lowercase", "officer", "POST", "/providers", lambda w: provider_body(uscc=make_uscc(letters=True).lower()), 422,
     "uscc"),
    ("uscc-too-short", "officer", "POST", "/providers", lambda w: provider_body(uscc=make_uscc(letters=True)[:17]), 422, "uscc"),
    ("uscc-bad-check-on-enterprise", "officer", "POST", "/enterprises",
     lambda w: {"name": "E", "uscc": wrong_check_character(make_uscc(letters=True)), "region": "KS", "kind": "team"}, 422,
     "uscc"),
    ("enterprise-bad-kind", "officer", "POST", "/enterprises",
     lambda w: {"name": "E", "uscc": make_uscc(letters=True), "region": "KS", "kind": "cooperative"}, 422, "kind"),
    ("provider-unknown-category", "officer", "POST", "/providers", lambda w: provider_body(categories=["astrology"]),
     422, "categories"),
    ("enterprise-unknown-related-provider", "officer", "POST", "/enterprises",
     lambda w: {"name": "E", "uscc": make_uscc(letters=True), "region": "KS", "kind": "enterprise",
                "related_provider_ids": ["prv-nope"]}, 422, "related_provider_ids"),
    ("redemption-unknown-provider", "sme", "POST", "/redemptions", lambda w: redemption_body(w, provider_id="prv-x"),
     404, None),
    ("redemption-unknown-item", "sme", "POST", "/redemptions", lambda w: redemption_body(w, catalog_code="XX-99"),
     404, None),
    ("provider-no-categories", "officer", "POST", "/providers", lambda w: provider_body(categories=[]), 422,
     "categories"),
    ("provider-name-too-long", "officer", "POST", "/providers", lambda w: provider_body(name="n" * 201), 422, "name"),
    ("catalog-lowercase-code", "officer", "POST", "/catalog",
     {"code": "ts-99", "category": "testing", "name_zh": "x", "name_en": "x", "max_subsidy_ratio_bp": 5000}, 422,
     "code"),
    # "$" in a pattern also matches before a final newline: codes are matched in full.
    ("catalog-code-with-final-newline", "officer", "POST", "/catalog",
     {"code": "TS-01\n", "category": "testing", "name_zh": "x", "name_en": "x", "max_subsidy_ratio_bp": 5000}, 422,
     "code"),
    ("catalog-ratio-above-100%", "officer", "PATCH", "/catalog/TS-01", {"max_subsidy_ratio_bp": 10_001}, 422,
     "max_subsidy_ratio_bp"),
    ("catalog-ratio-as-string", "officer", "PATCH", "/catalog/TS-01", {"max_subsidy_ratio_bp": "5000"}, 422,
     "max_subsidy_ratio_bp"),
    ("catalog-active-not-bool", "officer", "PATCH", "/catalog/TS-01", {"active": "perhaps"}, 422, "active"),
    ("text-plain-body", "sme", "POST", "/applications", (RAW, json.dumps(APPLICATION), "text/plain"), 422, None),
    ("form-body", "sme", "POST", "/applications", (RAW, "amount_fen=1000&purpose=x",
                                                   "application/x-www-form-urlencoded"), 422, None),
    ("body-too-large", "sme", "POST", "/applications",
     (RAW, json.dumps({**APPLICATION, "purpose": "x" * 70_000}), "application/json"), 413, None),
    ("limit-above-maximum", "auditor", "GET", "/vouchers?limit=101", None, 422, "limit"),
    ("limit-zero", "auditor", "GET", "/catalog?limit=0", None, 422, "limit"),
    ("limit-not-a-number", "auditor", "GET", "/providers?limit=ten", None, 422, "limit"),
    ("unknown-status-filter", "auditor", "GET", "/redemptions?status=paid", None, 422, "status"),
    ("unknown-id", "auditor", "GET", "/vouchers/vch_does_not_exist", None, 404, None),
    ("unknown-region", "auditor", "GET", "/regions/XX", None, 404, None),
    ("unknown-catalogue-item", "officer", "PATCH", "/catalog/NO-SUCH", {"active": False}, 404, None),
    ("unknown-route", "auditor", "GET", "/no-such-resource", None, 404, None),
    ("wrong-method", "auditor", "DELETE", "/catalog", None, 405, None),
    ("wrong-method-on-item", "officer", "PUT", "/catalog/TS-01", {"active": False}, 405, None),
    ("get-on-an-action", "officer", "GET", "/redemptions/{redemption}/approve", None, 405, None),
]

DEEP_JSON = (RAW, "[" * 5000 + "]" * 5000, "application/json")
HUGE_INTEGER = (RAW, '{"amount_fen": 1' + "0" * 5000 + ', "purpose": "x"}', "application/json")
# json.loads raises RecursionError (deep nesting) or ValueError (an integer of
# over 4300 digits) rather than JSONDecodeError: both must still be a 400.
UNREADABLE_JSON = [
    pytest.param("deeply-nested-json", "sme", "POST", "/applications", DEEP_JSON, 400, None,
                 id="deeply-nested-json"),
    pytest.param("integer-with-5000-digits", "sme", "POST", "/applications", HUGE_INTEGER, 400, None,
                 id="integer-with-5000-digits"),
]


def send(client, method, path, body, headers=None):
    if isinstance(body, tuple) and body and body[0] is RAW:
        _raw, data, content_type = body
        merged = {**client._headers(headers), "Content-Type": content_type}
        return client.http.open(f"/api/v1{path}", method=method, data=data, headers=merged)
    if method == "GET":
        return client.get(path, headers=headers)
    return client.http.open(f"/api/v1{path}", method=method, json=body, headers=client._headers(headers))


@pytest.mark.parametrize("case, who, method, path, body, status, field",
                         [pytest.param(*row, id=row[0]) for row in BAD_INPUT] + UNREADABLE_JSON)
def test_bad_input_is_a_problem_and_changes_nothing(app, world, case, who, method, path, body, status, field):
    before = ledger_size(app)
    body = body(world) if callable(body) else body
    r = send(world[who], method, path.format(**world), body)
    assert r.status_code < 500, r.get_data(as_text=True)[:500]
    problem = assert_problem(r, status)
    if status == 422:
        assert isinstance(problem.get("errors"), dict) and problem["errors"], problem
        for messages in problem["errors"].values():
            assert isinstance(messages, (list, dict)) and messages, problem
    if field is not None:
        assert field in problem["errors"], problem
    if status == 405:
        assert method not in r.headers.get("Allow", ""), r.headers
        assert r.headers.get("Allow"), "a 405 says which methods are allowed"
    assert ledger_size(app) == before, f"{case}: bad input changed state"


@pytest.mark.parametrize("body", [DEEP_JSON, HUGE_INTEGER], ids=["deeply-nested-json", "integer-with-5000-digits"])
def test_unreadable_json_with_an_idempotency_key_is_a_problem(app, world, body):
    before = ledger_size(app)
    r = send(world["sme"], "POST", "/applications", body, {"Idempotency-Key": f"deep-{secrets.token_hex(4)}"})
    assert_problem(r, 400)
    assert ledger_size(app) == before


def test_boundaries_of_money_fields_are_inclusive(world):
    sme = world["sme"]
    r = sme.post("/applications", json={"amount_fen": 10**12, "purpose": "the largest amount accepted"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["amount_fen"] == 10**12
    r = sme.post("/applications", json={"amount_fen": 1, "purpose": "p" * 500})
    assert r.status_code == 201, r.get_json()


@pytest.mark.parametrize("key, status", [("k" * 255, 201), ("k" * 256, 422), ("k" * 10_000, 422)])
def test_idempotency_key_length(app, world, key, status):
    before = ledger_size(app)
    r = world["sme"].post("/applications", json=APPLICATION, headers={"Idempotency-Key": key})
    if status == 201:
        assert r.status_code == 201, r.get_json()
        assert ledger_size(app) == before + 1
    else:
        problem = assert_problem(r, 422)
        assert any("idempotency" in name.lower() for name in problem["errors"]), problem
        assert ledger_size(app) == before


# --- idempotency ---------------------------------------------------------------------

def test_same_key_same_body_replays_status_body_and_location(app, world):
    sme, key = world["sme"], f"idem-{secrets.token_hex(8)}"
    body = {"amount_fen": 4_321, "purpose": "replay me"}
    before = ledger_size(app)
    first = sme.post("/applications", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and first.headers.get("Location")
    assert ledger_size(app) == before + 1
    # A retry that re-serialises the same JSON (other key order, other spacing) is the same request.
    raw = '{ "purpose" : "replay me",\n  "amount_fen" : 4321 }'
    for replay in (sme.post("/applications", json=body, headers={"Idempotency-Key": key}),
                   send(sme, "POST", "/applications", (RAW, raw, "application/json"), {"Idempotency-Key": key})):
        assert replay.status_code == first.status_code
        assert replay.get_json() == first.get_json()
        assert replay.headers.get("Location") == first.headers["Location"]
    assert ledger_size(app) == before + 1, "a replay must have no second effect"
    assert sme.get(first.headers["Location"].removeprefix("/api/v1")).get_json()["id"] == first.get_json()["id"]


def test_replayed_action_has_no_second_effect(app, world):
    sme, officer = world["sme"], world["officer"]
    application = sme.post("/applications", json={"amount_fen": 2_000, "purpose": "approve once"}).get_json()
    key = f"approve-{secrets.token_hex(8)}"
    before = ledger_size(app)
    first = officer.post(f"/applications/{application['id']}/approve", json={}, headers={"Idempotency-Key": key})
    again = officer.post(f"/applications/{application['id']}/approve", json={}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.get_json()["voucher"]["id"] == first.get_json()["voucher"]["id"]
    assert ledger_size(app) == before + 1
    # Without the key, the second approval is what it is: a state-machine refusal.
    assert assert_problem(officer.post(f"/applications/{application['id']}/approve", json={}), 409)["rule"] == \
        "state_machine"


def test_a_refusal_is_replayed_too(app, world):
    sme, key = world["sme"], f"refused-{secrets.token_hex(8)}"
    body = redemption_body(world, amount_fen=10_001)  # above 50% of the fee
    before = ledger_size(app)
    first = sme.post("/redemptions", json=body, headers={"Idempotency-Key": key})
    again = sme.post("/redemptions", json=body, headers={"Idempotency-Key": key})
    assert assert_problem(first, 409)["rule"] == "subsidy_ratio"
    assert again.status_code == 409 and again.get_json() == first.get_json()
    assert ledger_size(app) == before


def test_same_key_with_another_body_is_422(app, world):
    sme, key = world["sme"], f"other-{secrets.token_hex(8)}"
    first = sme.post("/applications", json={"amount_fen": 1_000, "purpose": "first"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    before = ledger_size(app)
    for other in ({"amount_fen": 1_001, "purpose": "first"}, {"amount_fen": 1_000, "purpose": "second"}):
        problem = assert_problem(sme.post("/applications", json=other, headers={"Idempotency-Key": key}), 422)
        assert problem["errors"]
    # The same key on another endpoint is another request too.
    assert_problem(sme.post("/redemptions", json=redemption_body(world), headers={"Idempotency-Key": key}), 422)
    assert ledger_size(app) == before
    # ...and the original is still replayed.
    replay = sme.post("/applications", json={"amount_fen": 1_000, "purpose": "first"},
                      headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.get_json() == first.get_json()


def test_one_key_two_principals_are_two_requests(app, actors):
    key = f"shared-{secrets.token_hex(8)}"
    body = {"amount_fen": 1_500, "purpose": "same key, different principal"}
    before = ledger_size(app)
    a = actors.sme("ent-ks-003").post("/applications", json=body, headers={"Idempotency-Key": key})
    b = actors.sme("ent-sh-001").post("/applications", json=body, headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 201
    assert a.get_json()["id"] != b.get_json()["id"]
    assert (a.get_json()["enterprise_id"], b.get_json()["enterprise_id"]) == ("ent-ks-003", "ent-sh-001")
    assert ledger_size(app) == before + 2


def test_a_401_is_not_remembered_under_the_key(app, actors):
    key = f"unauth-{secrets.token_hex(8)}"
    assert actors.anonymous().post("/applications", json=APPLICATION, headers={"Idempotency-Key": key}) \
        .status_code == 401
    r = actors.sme("ent-ks-003").post("/applications", json=APPLICATION, headers={"Idempotency-Key": key})
    assert r.status_code == 201


# --- pagination ----------------------------------------------------------------------

def walk(client, path, limit, **query):
    items, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit, **query, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, query_string=params)
        assert r.status_code == 200, r.get_json()
        page = r.get_json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        pages += 1
        assert pages < 1000, "the cursor does not advance"
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert page["items"], "a page with a next_cursor is not empty"


@pytest.mark.parametrize("path, key, limit", [("/catalog", "code", 4), ("/providers", "id", 3),
                                              ("/enterprises", "id", 2), ("/vouchers", "id", 1),
                                              ("/redemptions", "id", 2)])
def test_limit_and_cursor_walk_a_list_completely(world, actors, path, key, limit):
    auditor = world["auditor"]
    for _ in range(3):  # more than one page of vouchers and redemptions
        world["sme"].post("/redemptions", json=redemption_body(world))
    everything = auditor.get(path, query_string={"limit": 100}).get_json()
    assert everything["next_cursor"] is None and len(everything["items"]) > limit
    items, pages = walk(auditor, path, limit)
    keys = [item[key] for item in items]
    assert len(keys) == len(set(keys)), "duplicates across pages"
    assert keys == [item[key] for item in everything["items"]], "gaps or another order across pages"
    assert pages == -(-len(keys) // limit), "no trailing empty page"


def test_a_walk_survives_inserts_between_pages(world, actors):
    auditor = world["auditor"]
    before = {item["code"] for item in auditor.get("/catalog", query_string={"limit": 100}).get_json()["items"]}
    first = auditor.get("/catalog", query_string={"limit": 4}).get_json()
    created = []
    for prefix in ("AA", "ZZ"):  # one sorts before the cursor, one after
        code = f"{prefix}-{secrets.token_hex(3).upper()}"
        adopt_catalogue_change(actors, "POST", "/catalog", {"code": code, "category": "testing", "name_zh": "新",
                                                            "name_en": "New", "max_subsidy_ratio_bp": 5000})
        created.append(code)
    rest, _ = walk(auditor, "/catalog", 4, cursor=first["next_cursor"])
    seen = [item["code"] for item in first["items"] + rest]
    assert len(seen) == len(set(seen))
    assert before <= set(seen), "an item that existed throughout was skipped"


def test_filters_page_too(world):
    auditor = world["auditor"]
    items, _ = walk(auditor, "/catalog", 2, category="testing")
    assert {item["code"] for item in items} >= {"TS-01", "TS-02", "TS-03"}
    assert all(item["category"] == "testing" for item in items)


@pytest.mark.parametrize("cursor", [
    "not a cursor", "zzzz", "a", "é",
    "***", "%%%", "!!!!",
])
def test_a_garbage_cursor_is_422(world, cursor):
    problem = assert_problem(world["auditor"].get("/catalog", query_string={"limit": 4, "cursor": cursor}), 422)
    assert "cursor" in problem["errors"], problem


# --- Location on every 201 -------------------------------------------------------------

CREATIONS = {
    "provider": ("officer", "/providers", lambda w: provider_body(), "id"),
    "enterprise": ("officer", "/enterprises",
                   lambda w: {"name": "New SME", "uscc": make_uscc(letters=True), "region": "KS", "kind": "enterprise",
                              "related_provider_ids": ["prv-ks-002"]}, "id"),
    "application": ("sme", "/applications", lambda w: dict(APPLICATION), "id"),
    "redemption": ("sme", "/redemptions", lambda w: redemption_body(w), "id"),
}


@pytest.mark.parametrize("kind", sorted(CREATIONS))
def test_every_201_has_a_location_that_serves_the_resource(world, kind):
    who, path, body, key = CREATIONS[kind]
    r = world[who].post(path, json=body(world))
    assert r.status_code == 201, r.get_json()
    location = r.headers.get("Location")
    assert location, "201 without Location"
    target = urlsplit(urljoin("http://localhost/", location))
    assert target.path.startswith(f"/api/v1{path}/")
    fetched = world[who].http.get(target.path, headers=world[who]._headers(None))
    assert fetched.status_code == 200 and fetched.get_json()[key] == r.get_json()[key]
    # The 201 shows the resource as it was stored: its categories and related providers too.
    created = {name: value for name, value in r.get_json().items() if name != "ledger"}
    assert created == fetched.get_json()


def test_a_catalogue_proposal_is_202_with_a_location_that_serves_it(world):
    """POST /catalog creates no item yet (DESIGN §8): the 202's Location is the proposal."""
    body = {"code": f"LC-{secrets.token_hex(3).upper()}", "category": "ip", "name_zh": "新", "name_en": "New",
            "max_subsidy_ratio_bp": 3000}
    r = world["officer"].post("/catalog", json=body)
    assert r.status_code == 202, r.get_json()
    target = urlsplit(urljoin("http://localhost/", r.headers["Location"]))
    assert target.path == f"/api/v1/catalog/proposals/{r.get_json()['id']}"
    fetched = world["officer"].http.get(target.path, headers=world["officer"]._headers(None))
    assert fetched.status_code == 200
    assert {name: value for name, value in r.get_json().items() if name != "ledger"} == fetched.get_json()
    assert fetched.get_json()["change"]["code"] == body["code"]


# --- health, OpenAPI, docs -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_are_public_json(app, path):
    r = app.test_client().get(path)
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json()["status"] in ("ok", "ready")


def test_openapi_document_is_served(app):
    r = app.test_client().get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    spec = r.get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/applications", "/api/v1/vouchers/{voucher_id}", "/api/v1/redemptions/{redemption_id}/claim"):
        assert path in spec["paths"], path
    assert "bearer" in spec["components"]["securitySchemes"]


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.urls.append(attrs["src"])


def test_docs_are_served_without_the_internet(app):
    http = app.test_client()
    r = http.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    parser = _Assets()
    parser.feed(html)
    assert any(u.endswith(".js") for u in parser.urls) and any(u.endswith(".css") for u in parser.urls)
    for url in parser.urls:
        parts = urlsplit(urljoin("http://localhost/docs", url))
        assert parts.netloc == "localhost", f"{url} is not served by the app"
        asset = http.get(parts.path)
        try:
            assert asset.status_code == 200, url
            assert len(asset.get_data()) > 1000, url
        finally:
            asset.close()
    assert not re.search(r"(?:https?:)?//(?!localhost)[a-z0-9.-]+\.[a-z]{2,}", html, re.I), \
        "the docs page references an external host"
    spec_url = re.search(r'url:\s*"([^"]+)"', html).group(1)
    assert http.get(spec_url).status_code == 200


def test_docs_do_not_call_the_online_validator(app):
    html = app.test_client().get("/docs").get_data(as_text=True)
    config = re.search(r"var override_config = (\{.*?\});", html, re.S)
    assert config, "the docs page has no override config"
    assert json.loads(config.group(1)).get("validatorUrl", "missing") is None
