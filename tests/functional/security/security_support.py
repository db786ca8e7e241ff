"""What the security tests share: an app with a rate limit low enough to reach,
tokens, what a refused request must not change, and a real gunicorn server.

Test modules import the fixtures here by name (pytest finds a fixture in a
module's namespace). A conftest.py in this folder would not do: it would take
the module name `conftest`, under which the tests import tests/conftest.py.

These tests build apps with a low rate limit of their own; apps built with
TESTING and no limit configured (every other test module) get one no test reaches.
"""
from __future__ import annotations

import json

import pytest
from conftest import make_config
from server import Server
from sqlalchemy import create_engine
from sqlmodel import Session, func, select

from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth
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


def oversized_application(app) -> bytes:
    filler = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1024)
    return json.dumps({**APPLICATION, "purpose": filler}).encode()


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
