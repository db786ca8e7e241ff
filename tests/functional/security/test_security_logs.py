"""Visible denials, invisible secrets (voucher_service/http/observability.py).

- Every 401/403 is a warning "access denied" line and a count in /metrics.
- Tokens and the passphrase never reach a log line, in process or through a
  real gunicorn server (its structlog lines and its access log).
"""
from __future__ import annotations

import json
import secrets

import pytest
import structlog
from conftest import PASSPHRASE
from prometheus_client.parser import text_string_to_metric_families
from security_support import (APPLICATION, app, assert_problem, bearer, dispose, fresh_limits,  # noqa: F401
                              limited_config, mint, server, server_token)
from sqlalchemy import create_engine
from sqlmodel import Session

from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth, observability


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
        return server.client.request(method, path, body=body, headers=headers).status

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
