"""Limits, keys and tokens, headers, and visible denials (voucher_service/security.py).

- An oversized body is a 413 problem+json that changes nothing, with or
  without a Content-Length (chunked), in process and through gunicorn.
- Rate limits: per token across routes, by address without one, health and
  metrics exempt, 429 problem+json with Retry-After, nothing changed, shared
  through Redis when configured (skipped without a Redis server).
- Signing keys: encrypted at rest, 0600; a wrong passphrase is refused at
  start-up (the gunicorn side is tests/concurrency/test_startup.py); commands
  that do not sign run without one.
- Tokens and the passphrase never reach a log line, in process or through a
  real gunicorn server (its structlog lines and its access log).
- Every kind of response carries the security headers.
- Every 401/403 is a warning "access denied" line and a count in /metrics.

These tests build apps with a low rate limit of their own; apps built with
TESTING and no limit configured (every other test module) get one no test reaches.
"""
from __future__ import annotations

import hmac
import http.client
import io
import json
import os
import re
import secrets
import stat
import subprocess
import urllib.request
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import structlog
from conftest import PASSPHRASE, REPO, make_config
from prometheus_client.parser import text_string_to_metric_families
from server import BIN, REQUEST_TIMEOUT_S, Server, server_env
from sqlalchemy import create_engine
from sqlmodel import Session, func, select

from voucher_service import config as config_module
from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth, observability, security
from voucher_service.models import Application, IdempotencyRecord, LedgerEntry

LIMIT = 20
PROBLEM_JSON = "application/problem+json"
APPLICATION = {"amount_fen": 100_000, "purpose": "security test"}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def dispose(app):
    with app.app_context():
        get_engine().dispose()


def limited_config(databases, url, **extra):
    return make_config(url, databases.keys_dir) | {"RATELIMIT_APPLICATION": f"{LIMIT} per minute"} | extra


@pytest.fixture(scope="module")
def app(databases):
    """This module's app: the conftest one, with a rate limit low enough to reach."""
    url = databases.clone()
    application = create_app(limited_config(databases, url))
    yield application
    dispose(application)
    databases.drop(url)


@pytest.fixture(autouse=True)
def fresh_limits(app):
    app.extensions["vouchers_limiter"].reset()
    yield


def mint(app, role, principal_id=None, **binding) -> str:
    with app.app_context(), Session(get_engine()) as session:
        token, _row = auth.create_token(session, role=role, principal_id=principal_id, **binding)
        session.commit()
    return token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def state(app):
    """What a refused request must not change: ledger, applications, remembered idempotent responses."""
    with app.app_context(), Session(get_engine()) as session:
        return tuple(session.exec(select(func.count()).select_from(model)).one()
                     for model in (LedgerEntry, Application, IdempotencyRecord))


def assert_problem(response, status):
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.mimetype == PROBLEM_JSON, response.mimetype
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body.get("detail"), body
    return body


# ---------------------------------------------------------------- body size


def oversized_application(app) -> bytes:
    filler = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1024)
    return json.dumps({**APPLICATION, "purpose": filler}).encode()


@pytest.mark.parametrize("idempotency_key", [None, "big-body-1"])
def test_an_oversized_body_is_a_413_problem_and_changes_nothing(app, idempotency_key):
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    headers = bearer(token) | {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    before = state(app)
    response = app.test_client().post("/api/v1/applications", data=oversized_application(app), headers=headers)
    body = assert_problem(response, 413)
    assert f"larger than the {app.config['MAX_CONTENT_LENGTH']} bytes allowed" in body["detail"], body
    assert state(app) == before
    # The refusal was not remembered: the same key with a body that fits is a first request.
    ok = app.test_client().post("/api/v1/applications", json=APPLICATION, headers={
        k: v for k, v in headers.items() if k != "Content-Type"})
    assert ok.status_code == 201, ok.json
    assert "Idempotent-Replayed" not in ok.headers


def test_an_oversized_chunked_body_without_content_length_is_a_413(app):
    """A server that frames chunked bodies itself (gunicorn sets wsgi.input_terminated)
    hands werkzeug a stream of unknown length: MAX_CONTENT_LENGTH still stops it."""
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    before = state(app)
    response = app.test_client().open(
        "/api/v1/applications", method="POST", input_stream=io.BytesIO(oversized_application(app)),
        headers=bearer(token) | {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
                                 "Idempotency-Key": "chunked-1"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.request.content_length is None  # chunked: any Content-Length is ignored
    assert_problem(response, 413)
    assert state(app) == before


def chunked_post(app, token, body: bytes):
    return app.test_client().open(
        "/api/v1/applications", method="POST", input_stream=io.BytesIO(body),
        headers=bearer(token) | {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_body_is_cut_at_the_limit_not_truncated(app):
    """Valid JSON padded with spaces up to exactly the limit is accepted; one byte more
    is a 413, not a truncated body that happens to parse (werkzeug alone would accept it)."""
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps(APPLICATION).encode()
    exactly = payload + b" " * (limit - len(payload))
    before = state(app)
    assert_problem(chunked_post(app, token, exactly + b" "), 413)
    assert state(app) == before
    response = chunked_post(app, token, exactly)
    assert response.status_code == 201, response.json
    response = chunked_post(app, token, payload)
    assert response.status_code == 201, response.json


# ---------------------------------------------------------------- rate limits


def test_configuration_names_and_defaults(databases):
    env = config_module.from_environment({})
    assert env["RATELIMIT_ENABLED"] is True
    assert env["RATELIMIT_APPLICATION"] is None  # security.DEFAULT_RATE_LIMIT, see below
    assert env["RATELIMIT_STORAGE_URI"] == "memory://"
    assert env["MAX_CONTENT_LENGTH"] == 64 * 1024
    env = config_module.from_environment({"VOUCHERS_RATE_LIMIT": "10/second;600/minute",
                                          "VOUCHERS_RATE_LIMIT_STORAGE_URL": "redis://127.0.0.1:6379/0",
                                          "VOUCHERS_RATE_LIMIT_ENABLED": "false",
                                          "VOUCHERS_MAX_BODY_BYTES": "1000", "VOUCHERS_HSTS_SECONDS": "0"})
    assert env["RATELIMIT_APPLICATION"] == "10/second;600/minute"
    assert env["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"
    assert env["RATELIMIT_ENABLED"] is False and env["MAX_CONTENT_LENGTH"] == 1000
    assert env["VOUCHERS_HSTS_SECONDS"] == 0

    url = databases.clone()
    try:
        production = create_app(make_config(url, databases.keys_dir) | {"TESTING": False})
        assert production.config["RATELIMIT_APPLICATION"] == security.DEFAULT_RATE_LIMIT == "600 per minute"
        dispose(production)
        testing = create_app(make_config(url, databases.keys_dir))
        assert testing.config["RATELIMIT_APPLICATION"] == security.TESTING_RATE_LIMIT
        dispose(testing)
        with pytest.raises(ValueError, match="VOUCHERS_RATE_LIMIT"):
            create_app(make_config(url, databases.keys_dir) | {"RATELIMIT_APPLICATION": "lots per minute"})
    finally:
        databases.drop(url)


def test_each_token_has_its_own_budget_across_routes(app):
    client = app.test_client()
    first, second = mint(app, "auditor"), mint(app, "auditor")
    paths = ["/api/v1/regions", "/api/v1/catalog", "/api/v1/providers", "/api/v1/vouchers"]
    for i in range(LIMIT):
        response = client.get(paths[i % len(paths)], headers=bearer(first))
        assert response.status_code == 200, (i, response.json)
    refused = client.get("/api/v1/regions/KS", headers=bearer(first))
    body = assert_problem(refused, 429)
    assert f"{LIMIT} per 1 minute" in body["detail"] and "token" in body["detail"]
    retry_after = refused.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, retry_after
    # Another token is not affected.
    assert client.get("/api/v1/regions", headers=bearer(second)).status_code == 200


def test_requests_refused_for_their_token_count_too(app):
    """Unknown tokens count against the bucket of what was presented, unrouted paths too."""
    client = app.test_client()
    unknown = "vt_" + secrets.token_urlsafe(32)
    for _ in range(LIMIT):
        assert client.get("/api/v1/vouchers", headers=bearer(unknown)).status_code == 401
    assert_problem(client.get("/api/v1/vouchers", headers=bearer(unknown)), 429)
    address = {"REMOTE_ADDR": "192.0.2.50"}
    for _ in range(LIMIT):
        assert client.get("/no/such/page", environ_base=address).status_code == 404
    assert_problem(client.get("/no/such/page", environ_base=address), 429)


def test_anonymous_callers_are_counted_by_address(app):
    client = app.test_client()
    first, second = {"REMOTE_ADDR": "192.0.2.10"}, {"REMOTE_ADDR": "192.0.2.11"}
    for _ in range(LIMIT):
        assert client.get("/api/v1/ledger/keys", environ_base=first).status_code == 200
    refused = client.get("/api/v1/ledger/keys", environ_base=first)
    body = assert_problem(refused, 429)
    assert "address" in body["detail"] and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/openapi.json", environ_base=first).status_code == 429  # every route shares the budget
    assert client.get("/api/v1/ledger/keys", environ_base=second).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_are_never_limited(app, path):
    client = app.test_client()
    address = {"REMOTE_ADDR": "192.0.2.20"}
    for _ in range(LIMIT):
        client.get("/api/v1/ledger/keys", environ_base=address)
    assert client.get("/api/v1/ledger/keys", environ_base=address).status_code == 429
    for _ in range(LIMIT + 5):
        assert client.get(path, environ_base=address).status_code == 200


def test_a_rate_limited_write_changes_nothing_and_is_not_remembered(app):
    token = mint(app, "sme", enterprise_id="ent-ks-003")
    client = app.test_client()
    for _ in range(LIMIT):
        client.get("/api/v1/regions", headers=bearer(token))
    before = state(app)
    refused = client.post("/api/v1/applications", json=APPLICATION,
                          headers=bearer(token) | {"Idempotency-Key": "limited-1"})
    assert_problem(refused, 429)
    assert state(app) == before
    app.extensions["vouchers_limiter"].reset()  # the next window
    accepted = client.post("/api/v1/applications", json=APPLICATION,
                           headers=bearer(token) | {"Idempotency-Key": "limited-1"})
    assert accepted.status_code == 201 and "Idempotent-Replayed" not in accepted.headers


def test_the_limiter_never_stores_the_token(app):
    token = mint(app, "auditor")
    app.test_client().get("/api/v1/regions", headers=bearer(token))
    with app.test_request_context(headers=bearer(token)):
        key = security.rate_limit_key()
    assert key.startswith("token:") and token not in key and auth.token_digest(token) not in key
    stored = repr(vars(app.extensions["vouchers_limiter"].storage))
    assert key in stored and token not in stored


def test_the_limiter_can_be_switched_off(databases):
    url = databases.clone()
    try:
        off = create_app(limited_config(databases, url, RATELIMIT_ENABLED=False))
        client = off.test_client()
        address = {"REMOTE_ADDR": "192.0.2.30"}
        assert all(client.get("/api/v1/ledger/keys", environ_base=address).status_code == 200
                   for _ in range(LIMIT + 5))
        dispose(off)
    finally:
        databases.drop(url)


REDIS_URL = os.environ.get("VOUCHERS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        client.close()
        pytest.skip(f"no Redis server at {REDIS_URL}: {exc}")
    yield client
    client.close()


def test_workers_share_one_budget_through_redis(databases, redis_client):
    """Two apps (two gunicorn workers, or two hosts) on one Redis count together."""
    prefix = f"vouchers-test-{uuid.uuid4().hex[:12]}"
    url = databases.clone()
    apps = [create_app(limited_config(databases, url, RATELIMIT_APPLICATION="3 per minute",
                                      RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix))
            for _ in range(2)]
    try:
        token = mint(apps[0], "auditor")
        first, second = (a.test_client() for a in apps)
        assert first.get("/api/v1/regions", headers=bearer(token)).status_code == 200
        assert second.get("/api/v1/regions", headers=bearer(token)).status_code == 200
        assert first.get("/api/v1/regions", headers=bearer(token)).status_code == 200
        refused = second.get("/api/v1/regions", headers=bearer(token))
        assert_problem(refused, 429)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        keys = [k.decode() for k in redis_client.scan_iter(match=f"*{prefix}*")]
        assert keys and all(token not in k and auth.token_digest(token) not in k for k in keys), keys
    finally:
        for key in redis_client.scan_iter(match=f"*{prefix}*"):
            redis_client.delete(key)
        for a in apps:
            storage = a.extensions["vouchers_limiter"].storage
            getattr(storage, "storage", None) and storage.storage.close()
            dispose(a)
        databases.drop(url)


def test_an_unreachable_store_falls_back_to_counting_in_memory(databases):
    """Redis down: the API still answers, and each process still enforces the limit."""
    pytest.importorskip("redis")
    url = databases.clone()
    try:
        app = create_app(limited_config(databases, url, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0"))
        client = app.test_client()
        address = {"REMOTE_ADDR": "192.0.2.60"}
        statuses = [client.get("/api/v1/ledger/keys", environ_base=address).status_code for _ in range(LIMIT + 1)]
        assert statuses == [200] * LIMIT + [429], statuses
        dispose(app)
    finally:
        databases.drop(url)


# ---------------------------------------------------------------- keys and tokens


def test_private_keys_are_encrypted_and_only_the_owner_may_read_them(databases):
    names = os.listdir(databases.keys_dir)
    assert names
    assert stat.S_IMODE(os.stat(databases.keys_dir).st_mode) & 0o077 == 0
    for name in names:
        path = os.path.join(databases.keys_dir, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
        with open(path, "rb") as handle:
            pem = handle.read()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), name
        assert PASSPHRASE.encode() not in pem


def test_the_startup_check_opens_every_active_key_or_says_why(databases, empty_database):
    url = databases.clone()
    try:
        good = create_app(make_config(url, databases.keys_dir))
        assert security.check_signing_keys(good) == 3
        dispose(good)
        wrong = create_app(make_config(url, databases.keys_dir) | {"VOUCHERS_KEY_PASSPHRASE": "not-the-one"})
        with pytest.raises(security.StartupError) as caught:
            security.check_signing_keys(wrong)
        message = str(caught.value)
        assert "\n" not in message and "VOUCHERS_KEY_PASSPHRASE" in message and "not-the-one" not in message
        dispose(wrong)
        missing = create_app(make_config(url, databases.keys_dir) | {"VOUCHERS_KEY_PASSPHRASE": ""})
        with pytest.raises(security.StartupError, match="VOUCHERS_KEY_PASSPHRASE is not set"):
            security.check_signing_keys(missing)
        dispose(missing)
    finally:
        databases.drop(url)
    # Not initialised: nothing to check (/readyz says what to do).
    blank = create_app(make_config(empty_database, databases.keys_dir) | {"VOUCHERS_KEY_PASSPHRASE": "x"})
    assert security.check_signing_keys(blank) == 0
    dispose(blank)


def cli_env(database_url, keys_dir):
    env = server_env(database_url, keys_dir)
    del env["VOUCHERS_KEY_PASSPHRASE"]
    return env


def test_commands_that_do_not_sign_run_without_a_passphrase(app, databases, tmp_path):
    url = app.config["DATABASE_URL"]
    env = cli_env(url, databases.keys_dir)
    run = lambda *args: subprocess.run([os.path.join(BIN, "vouchers"), *args], cwd=REPO, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S)
    created = run("token", "create", "--role", "auditor")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    token_id = re.search(r"token (tok\S+) ", created.stdout).group(1)
    assert app.test_client().get("/api/v1/regions", headers=bearer(token)).status_code == 200
    assert token not in created.stderr

    # The files as served, then verified offline by a process that has no passphrase.
    client = app.test_client()
    files = {"checkpoint": client.get("/api/v1/ledger/checkpoint"),
             "export": client.get("/api/v1/ledger/export", headers=bearer(token)),
             "keys": client.get("/api/v1/ledger/keys")}
    for name, response in files.items():
        assert response.status_code == 200, (name, response.data[:200])
        (tmp_path / name).write_bytes(response.data)
    verified = run("verify", str(tmp_path / "export"), "--checkpoint", str(tmp_path / "checkpoint"),
                   "--keys", str(tmp_path / "keys"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok:"), verified.stdout

    revoked = run("token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/api/v1/regions", headers=bearer(token)).status_code == 401


def test_token_hashes_are_compared_in_constant_time(app, monkeypatch):
    token = mint(app, "auditor")
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    with app.app_context(), Session(get_engine()) as session:
        assert auth.authenticate(session, token) is not None
    assert calls == [(auth.token_digest(token), auth.token_digest(token))]


# ---------------------------------------------------------------- security headers


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


# ---------------------------------------------------------------- logs and metrics


class Logs:
    """Everything logged between start() and text(): structlog's JSON lines (stderr)
    and standard logging records.

    structlog binds its output stream when a logger is first used, and pytest
    replaces capfd's stream between a fixture's setup and the test: start() runs
    in the test, and rebuilds the module's logger on the stream capfd captures."""

    def __init__(self, capfd, caplog, monkeypatch):
        self.capfd, self.caplog, self.monkeypatch = capfd, caplog, monkeypatch
        self.seen = []

    def start(self) -> "Logs":
        observability.configure_logging("json")
        self.monkeypatch.setattr(observability, "log", structlog.get_logger("vouchers"))
        self.capfd.readouterr()
        self.caplog.clear()
        return self

    def text(self) -> str:
        out, err = self.capfd.readouterr()
        self.seen.append(out + err)
        return "".join(self.seen) + self.caplog.text


@pytest.fixture
def logs(capfd, caplog, monkeypatch):
    saved = structlog.get_config()
    yield Logs(capfd, caplog, monkeypatch)
    structlog.configure(**saved)


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append(record)
    return lines


def denied_total(app, status: str, route: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        if family.name == "vouchers_access_denied":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {"status": status, "route": route}:
                    return sample.value
    return 0.0


def route_of(app, method, path):
    return app.url_map.bind("localhost").match(path, method, return_rule=True)[0].rule


def test_every_denial_is_a_warning_line_and_a_count(app, logs):
    client = app.test_client()
    sme = mint(app, "sme", principal_id="usr-denied-sme", enterprise_id="ent-ks-003")
    cases = [  # (method, path, headers, status, principal)
        ("GET", "/api/v1/vouchers", {}, 401, None),
        ("GET", "/api/v1/vouchers", bearer("vt_" + secrets.token_urlsafe(32)), 401, None),
        ("GET", "/api/v1/vouchers", {"Authorization": "Basic dXNlcjpwYXNz"}, 401, None),
        ("GET", "/api/v1/settlements", bearer(sme), 403, "usr-denied-sme"),
        ("POST", "/api/v1/catalog", bearer(sme), 403, "usr-denied-sme"),
    ]
    routes = {(method, path): route_of(app, method, path) for method, path, *_ in cases}
    before = {key: {s: denied_total(app, s, r) for s in ("401", "403")} for key, r in routes.items()}
    logs.start()
    details = []
    for method, path, headers, status, _principal in cases:
        response = client.open(path, method=method, headers=headers, json={} if method == "POST" else None)
        details.append(assert_problem(response, status)["detail"])

    denied = [r for r in json_lines(logs.text()) if r.get("event") == "access denied"]
    assert len(denied) == len(cases), denied
    for record, (method, path, _headers, status, principal), detail in zip(denied, cases, details):
        assert record["level"] == "warning"
        assert record["status"] == status and record["route"] == routes[(method, path)]
        assert record["principal"] == principal and record["reason"] == detail
        assert record["method"] == method and record.get("request_id")
    for (method, path), route in routes.items():
        expected = {s: sum(1 for m, p, _h, st, _ in cases if (m, p) == (method, path) and str(st) == s)
                    for s in ("401", "403")}
        for status_label, count in expected.items():
            assert denied_total(app, status_label, route) == before[(method, path)][status_label] + count


def test_allowed_requests_log_no_denial(app, logs):
    logs.start()
    assert app.test_client().get("/api/v1/regions", headers=bearer(mint(app, "auditor"))).status_code == 200
    records = json_lines(logs.text())
    assert any(r.get("event") == "request" for r in records)
    assert not any(r.get("event") == "access denied" for r in records)


def exercise_with_secrets(request, tokens: dict, *, token_in_query: bool):
    """The same traffic in process and through gunicorn: every way a token travels."""
    sme, auditor, revoked = tokens["sme"], tokens["auditor"], tokens["revoked"]
    unknown = tokens["unknown"]
    calls = [
        ("GET", "/api/v1/regions", bearer(auditor), None),
        ("GET", "/api/v1/vouchers", bearer(sme), None),
        ("POST", "/api/v1/applications", bearer(sme) | {"Idempotency-Key": "secret-1"}, APPLICATION),
        ("POST", "/api/v1/applications", bearer(sme) | {"Idempotency-Key": "secret-1"}, {**APPLICATION,
                                                                                       "amount_fen": 2}),
        ("POST", "/api/v1/applications", bearer(sme), {"amount_fen": "not a number"}),
        ("GET", "/api/v1/settlements", bearer(sme), None),
        ("GET", "/api/v1/vouchers", bearer(revoked), None),
        ("GET", "/api/v1/vouchers", bearer(unknown), None),
        ("GET", "/api/v1/vouchers", {"Authorization": unknown}, None),
        ("GET", "/api/v1/ledger/checkpoint", {}, None),
        ("GET", "/api/v1/ledger/export", bearer(auditor), None),
        ("GET", "/readyz", {}, None),
        ("GET", "/no-such-page", bearer(auditor), None),
    ]
    if token_in_query:
        # A client's mistake; the service logs routes, not URLs. (gunicorn's access
        # log, as gunicorn.conf.py formats it, prints the query string: see the report.)
        calls.append(("GET", "/api/v1/vouchers?access_token=" + unknown, {}, None))
    statuses = []
    for method, path, headers, body in calls:
        statuses.append(request(method, path, headers, body))
    return statuses


def secret_tokens(app) -> dict:
    revoked = mint(app, "sme", enterprise_id="ent-ks-003")
    with app.app_context(), Session(get_engine()) as session:
        row_id = auth.authenticate(session, revoked).token_id
        auth.revoke_token(session, row_id)
        session.commit()
    return {"sme": mint(app, "sme", enterprise_id="ent-ks-003"), "auditor": mint(app, "auditor"),
            "revoked": revoked, "unknown": "vt_" + secrets.token_urlsafe(32)}


def assert_no_secret(text: str, tokens: dict) -> None:
    for name, token in tokens.items():
        assert token not in text, f"the {name} token appears in the logs"
        # Nor any long piece of it (a truncated token is still most of a secret).
        assert token[3:19] not in text, f"part of the {name} token appears in the logs"
    assert PASSPHRASE not in text, "the key passphrase appears in the logs"


def test_no_token_or_passphrase_reaches_the_logs_in_process(databases, logs):
    url = databases.clone()
    app = create_app(limited_config(databases, url))
    logs.start()
    try:
        tokens = secret_tokens(app)
        client = app.test_client()
        statuses = exercise_with_secrets(
            lambda method, path, headers, body: client.open(path, method=method, headers=headers,
                                                             json=body).status_code, tokens, token_in_query=True)
        assert {200, 201, 401, 403, 404, 422} <= set(statuses), statuses
        text = logs.text()
        records = json_lines(text)
        assert sum(r.get("event") == "request" for r in records) == len(statuses), "not every request was logged"
        assert any(r.get("event") == "access denied" for r in records)
        assert_no_secret(text, tokens)
    finally:
        dispose(app)
        databases.drop(url)


@pytest.fixture(scope="module")
def server(databases, tmp_path_factory):
    """A real gunicorn (2 workers) over this module's own clone, with its default rate limit."""
    url = databases.clone()
    log_path = str(tmp_path_factory.mktemp("security-server") / "gunicorn.log")
    srv = Server(url, databases.keys_dir, log_path, workers=2)
    srv.database_url = url
    srv.start()
    yield srv
    srv.stop()
    databases.drop(url)


def server_counts(url):
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return tuple(session.exec(select(func.count()).select_from(model)).one()
                         for model in (LedgerEntry, Application, IdempotencyRecord))
    finally:
        engine.dispose()


def server_token(url, role, **binding) -> str:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            token, _ = auth.create_token(session, role=role, **binding)
            session.commit()
        return token
    finally:
        engine.dispose()


def test_no_token_or_passphrase_reaches_the_logs_of_a_real_server(server):
    url = server.database_url
    tokens = {"sme": server_token(url, "sme", enterprise_id="ent-ks-003"), "auditor": server_token(url, "auditor"),
              "unknown": "vt_" + secrets.token_urlsafe(32)}
    revoked = server_token(url, "sme", enterprise_id="ent-ks-003")
    engine = create_engine(url)
    with Session(engine) as session:
        auth.revoke_token(session, auth.authenticate(session, revoked).token_id)
        session.commit()
    engine.dispose()
    tokens["revoked"] = revoked

    def send(method, path, headers, body):
        return server.request(method, path, body=body, headers=headers)[0]

    statuses = exercise_with_secrets(send, tokens, token_in_query=False)
    assert {200, 201, 401, 403, 404, 422} <= set(statuses), statuses
    server.stop()  # flush and close every worker's output
    with open(server.log_path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    server.start()
    records = json_lines(text)
    assert sum(r.get("event") == "request" for r in records) >= len(statuses), text[-2000:]
    assert any(r.get("event") == "access denied" and r.get("status") == 401 for r in records)
    assert '"GET /api/v1/vouchers HTTP/1.1" 401' in text  # the access log is in there too
    assert_no_secret(text, tokens)


def test_a_real_server_refuses_oversized_bodies_chunked_or_not(server):
    url = server.database_url
    token = server_token(url, "sme", enterprise_id="ent-ks-003")
    limit = 64 * 1024
    body = json.dumps({**APPLICATION, "purpose": "x" * (limit + 4096)}).encode()
    before = server_counts(url)

    def post(chunked: bool):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_S)
        try:
            headers = bearer(token) | {"Content-Type": "application/json", "Idempotency-Key": f"big-{chunked}"}
            if chunked:
                pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))
                connection.request("POST", "/api/v1/applications", body=pieces, headers=headers,
                                   encode_chunked=True)
            else:
                connection.request("POST", "/api/v1/applications", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), json.loads(response.read())
        finally:
            connection.close()

    for chunked in (False, True):
        status, content_type, problem = post(chunked)
        assert status == 413 and content_type.startswith(PROBLEM_JSON), (chunked, status, problem)
        assert problem["status"] == 413
    assert server_counts(url) == before
    # The same request under the limit goes through: the server was refusing the size, nothing else.
    status, created = server.api("POST", "/applications", token=token, body=APPLICATION)
    assert status == 201, created


def test_a_real_server_sends_the_security_headers(server):
    token = server_token(server.database_url, "auditor")
    request = urllib.request.Request(server.base + "/api/v1/regions", headers=bearer(token))
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Security-Policy"] == API_CSP
