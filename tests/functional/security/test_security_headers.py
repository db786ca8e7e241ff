"""Every kind of response carries the security headers (voucher_service/http/security.py),
in process and through gunicorn."""
from __future__ import annotations

import io
import re
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from helpers import pdf_bytes
from security_support import (API_CSP, LIMIT, PROBLEM_JSON, app, bearer, dispose, fresh_limits,  # noqa: F401
                              limited_config, mint, oversized_application, server, server_token)
from server import REQUEST_TIMEOUT_S

from voucher_service import create_app


def current_month() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")


def payouts_csv(app):
    """A KS voucher redeemed at an SH provider, batched by KS finance: its payout file as CSV."""
    client = app.test_client()
    sme, officer = bearer(mint(app, "sme", enterprise_id="ent-ks-003")), bearer(mint(app, "officer", region="KS"))
    provider, finance = bearer(mint(app, "provider", provider_id="prv-sh-001")), bearer(
        mint(app, "finance", region="KS"))

    def ok(response, status=200):
        assert response.status_code == status, response.json
        return response.json

    application = ok(client.post("/api/v1/applications", json={"amount_fen": 1_000_000, "purpose": "csv"},
                                 headers=sme), 201)
    voucher = ok(client.post(f"/api/v1/applications/{application['id']}/approve", json={}, headers=officer))
    redemption = ok(client.post("/api/v1/redemptions", headers=sme, json={
        "voucher_id": voucher["voucher"]["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
        "service_fee_fen": 600_000, "amount_fen": 300_000}), 201)
    rid = redemption["id"]
    for kind in ("contract", "invoice"):
        ok(client.post(f"/api/v1/redemptions/{rid}/documents", headers=provider, content_type="multipart/form-data",
                       data={"kind": kind, "file": (io.BytesIO(pdf_bytes()), f"{kind}.pdf")}), 201)
    ok(client.post(f"/api/v1/redemptions/{rid}/claim", headers=provider, json={
        "invoice_no": f"INV-{rid[-8:]}", "service_fee_fen": 600_000, "amount_fen": 300_000}))
    ok(client.post(f"/api/v1/redemptions/{rid}/confirm", headers=sme))
    ok(client.post(f"/api/v1/redemptions/{rid}/approve", headers=officer))
    batch = ok(client.post("/api/v1/settlements", json={"period": current_month()}, headers=finance), 201)
    return client.get(f"/api/v1/settlements/{batch['id']}/payouts", headers=finance | {"Accept": "text/csv"})


def too_many(app):
    client = app.test_client()
    address = {"REMOTE_ADDR": "192.0.2.40"}
    for _ in range(LIMIT):
        client.get("/api/v1/ledger/keys", environ_base=address)
    return client.get("/api/v1/ledger/keys", environ_base=address)


def auditor_get(path, **headers):
    return lambda app: app.test_client().get(path, headers=bearer(mint(app, "auditor")) | headers)


def anonymous(method, path, **kw):
    return lambda app: app.test_client().open(path, method=method, **kw)


# kind -> (make the response, expected status, mimetype, Cache-Control; None: the route's own business)
KINDS = {
    "json": (auditor_get("/api/v1/regions"), 200, "application/json", "no-store"),
    "json-list-page": (auditor_get("/api/v1/vouchers?limit=1"), 200, "application/json", "no-store"),
    "jsonl-export": (auditor_get("/api/v1/ledger/export"), 200, None, "no-store"),
    "csv": (payouts_csv, 200, "text/csv", "no-store"),
    "text-checkpoint": (anonymous("GET", "/api/v1/ledger/checkpoint"), 200, "text/plain", "no-cache"),
    "problem-401": (anonymous("GET", "/api/v1/vouchers"), 401, PROBLEM_JSON, "no-store"),
    "problem-403": (lambda app: app.test_client().get(
        "/api/v1/settlements", headers=bearer(mint(app, "sme", enterprise_id="ent-ks-003"))),
        403, PROBLEM_JSON, "no-store"),
    "problem-404": (auditor_get("/api/v1/vouchers/vch_nothing"), 404, PROBLEM_JSON, "no-store"),
    "problem-404-no-route": (anonymous("GET", "/no/such/page"), 404, PROBLEM_JSON, None),
    "problem-405": (anonymous("DELETE", "/api/v1/ledger/keys"), 405, PROBLEM_JSON, "no-store"),
    "problem-413": (lambda app: app.test_client().post(
        "/api/v1/applications", data=oversized_application(app),
        headers=bearer(mint(app, "sme", enterprise_id="ent-ks-003")) | {"Content-Type": "application/json"}),
        413, PROBLEM_JSON, "no-store"),
    "problem-422": (lambda app: app.test_client().post(
        "/api/v1/applications", json={"amount_fen": "lots"},
        headers=bearer(mint(app, "sme", enterprise_id="ent-ks-003"))), 422, PROBLEM_JSON, "no-store"),
    "problem-429": (too_many, 429, PROBLEM_JSON, "no-store"),
    "openapi-json": (anonymous("GET", "/openapi.json"), 200, "application/json", None),
    "docs-page": (anonymous("GET", "/docs"), 200, "text/html", None),
    "docs-script": (anonymous("GET", "/docs/assets/swagger-ui-bundle.js"), 200, None, None),
    "docs-stylesheet": (anonymous("GET", "/docs/assets/swagger-ui.css"), 200, "text/css", None),
    "healthz": (anonymous("GET", "/healthz"), 200, "application/json", None),
    "readyz": (anonymous("GET", "/readyz"), 200, "application/json", None),
    "metrics": (anonymous("GET", "/metrics"), 200, "text/plain", None),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_response_carries_the_security_headers(app, kind):
    make, status, mimetype, cache_control = KINDS[kind]
    response = make(app)
    response.close()  # files (the docs assets) are streamed
    assert response.status_code == status, (response.status_code, response.data[:300])
    if mimetype:
        assert response.mimetype == mimetype, response.mimetype
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert len(headers.getlist("Content-Security-Policy")) == 1
    if kind == "docs-page":
        csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
        assert csp["script-src"] == "'self' 'unsafe-inline'" and csp["style-src"] == "'self' 'unsafe-inline'"
        assert csp["img-src"] == "'self' data:" and csp["connect-src"] == "'self'"
    else:
        assert headers["Content-Security-Policy"] == API_CSP
    if cache_control:
        assert headers["Cache-Control"] == cache_control


def test_the_docs_page_loads_nothing_its_policy_forbids(app):
    """Everything the Swagger UI page loads is same-origin ('self'): no CDN, no other host."""
    page = app.test_client().get("/docs").get_data(as_text=True)
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
    assert "validatorUrl" in page  # Swagger UI's validator badge would call validator.swagger.io
    for u in urls:
        with app.test_client().get(u) as asset:
            assert asset.status_code == 200, u


def test_hsts_can_be_left_out(databases):
    url = databases.clone()
    try:
        plain = create_app(limited_config(databases, url, VOUCHERS_HSTS_SECONDS=0))
        assert "Strict-Transport-Security" not in plain.test_client().get("/healthz").headers
        dispose(plain)
    finally:
        databases.drop(url)


def test_a_real_server_sends_the_security_headers(server):
    token = server_token(server.database_url, "auditor")
    request = urllib.request.Request(server.base + "/api/v1/regions", headers=bearer(token))
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Security-Policy"] == API_CSP
