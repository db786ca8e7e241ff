"""Rate limits (flask-limiter, voucher_service/http/security.py).

- Per authenticated token across routes, by address without one, health and
  metrics exempt, 429 problem+json with Retry-After, nothing changed, shared
  through Redis when configured (skipped without a Redis server).
- A token that does not authenticate counts against the address: made-up
  tokens get no bucket of their own, and once the address's budget is spent
  they are refused before the token lookup.
"""
from __future__ import annotations

import os
import secrets
import uuid

import pytest
from conftest import make_config
from security_support import (APPLICATION, LIMIT, app, assert_problem, bearer, dispose, fresh_limits,  # noqa: F401
                              limited_config, mint, state)
from sqlmodel import Session

from voucher_service import config as config_module
from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth, security


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
    """Unknown tokens count against the caller's address, unrouted paths too."""
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


def test_made_up_tokens_spend_the_address_budget_and_stop_before_the_lookup(app, monkeypatch):
    lookups = []
    real_authenticate = auth.authenticate

    def counted(session, token, now=None):
        lookups.append(token)
        return real_authenticate(session, token, now)

    monkeypatch.setattr(auth, "authenticate", counted)
    client = app.test_client()
    address, elsewhere = {"REMOTE_ADDR": "192.0.2.70"}, {"REMOTE_ADDR": "192.0.2.71"}
    valid = mint(app, "auditor")
    assert client.get("/api/v1/regions", headers=bearer(valid), environ_base=address).status_code == 200

    statuses = [client.get("/api/v1/vouchers", headers=bearer("vt_" + secrets.token_urlsafe(32)),
                           environ_base=address).status_code for _ in range(200)]
    refused_from = statuses.index(429)
    assert set(statuses[:refused_from]) == {401} and set(statuses[refused_from:]) == {429}, statuses
    assert refused_from <= LIMIT and len(lookups) <= LIMIT + 1, (refused_from, len(lookups))
    # Every made-up token drew on one budget, the address's: anonymous callers there are refused too ...
    body = assert_problem(client.get("/api/v1/ledger/keys", environ_base=address), 429)
    assert "address" in body["detail"]
    # ... while another address, and the token that authenticated, keep theirs.
    assert client.get("/api/v1/ledger/keys", environ_base=elsewhere).status_code == 200
    assert client.get("/api/v1/regions", headers=bearer(valid), environ_base=address).status_code == 200


def test_a_token_that_stops_authenticating_counts_against_the_address(app):
    client = app.test_client()
    address = {"REMOTE_ADDR": "192.0.2.72"}
    token = mint(app, "auditor")
    assert client.get("/api/v1/regions", headers=bearer(token), environ_base=address).status_code == 200
    with app.app_context(), Session(get_engine()) as session:
        auth.revoke_token(session, auth.authenticate(session, token).token_id)
        session.commit()
    for _ in range(LIMIT):
        assert client.get("/api/v1/regions", headers=bearer(token), environ_base=address).status_code in (401, 429)
    assert_problem(client.get("/api/v1/ledger/keys", environ_base=address), 429)


def test_only_authenticated_tokens_get_a_bucket(app):
    client = app.test_client()
    valid, unknown = mint(app, "auditor"), "vt_" + secrets.token_urlsafe(32)
    client.get("/api/v1/regions", headers=bearer(valid))
    client.get("/api/v1/regions", headers=bearer(unknown))
    with app.test_request_context(headers=bearer(valid)):
        valid_key = security.rate_limit_key()
    with app.test_request_context(headers=bearer(unknown)):
        unknown_key = security.rate_limit_key()
    assert valid_key.startswith("token:") and unknown_key.startswith("addr:")
    stored = repr(vars(app.extensions["vouchers_limiter"].storage))
    assert valid_key in stored and security._token_bucket(unknown) not in stored
