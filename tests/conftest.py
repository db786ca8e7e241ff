"""Shared fixtures: a migrated, seeded database built once per run and copied
per test module (or per test, for tests that need a pristine ledger)."""
from __future__ import annotations

import os
import shutil
import uuid

import pytest
from hypothesis import HealthCheck, settings
from sqlmodel import Session

from voucher_service import auth, create_app
from voucher_service.db import get_engine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(REPO, "seeds")
PASSPHRASE = "test-passphrase"

settings.register_profile("default", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def make_config(db_path: str, keys_dir: str) -> dict:
    return {"TESTING": True, "DATABASE_URL": f"sqlite:///{db_path}", "VOUCHERS_KEYS_DIR": keys_dir,
            "VOUCHERS_KEY_PASSPHRASE": PASSPHRASE, "VOUCHERS_SEEDS": SEEDS}


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """One initialised database and key folder; tests get copies."""
    root = tmp_path_factory.mktemp("template")
    db_path, keys_dir = str(root / "vouchers.db"), str(root / "keys")
    app = create_app(make_config(db_path, keys_dir))
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    get_engine_dispose(app)
    return db_path, keys_dir


def get_engine_dispose(app):
    with app.app_context():
        get_engine().dispose()


def _app_from_template(template, directory):
    db_path, keys_dir = template
    target = os.path.join(directory, f"vouchers-{uuid.uuid4().hex}.db")
    shutil.copyfile(db_path, target)
    return create_app(make_config(target, keys_dir))


@pytest.fixture(scope="module")
def app(template, tmp_path_factory):
    application = _app_from_template(template, str(tmp_path_factory.mktemp("db")))
    yield application
    get_engine_dispose(application)


@pytest.fixture
def fresh_app(template, tmp_path):
    application = _app_from_template(template, str(tmp_path))
    yield application
    get_engine_dispose(application)


class Client:
    """The test client with a bearer token and JSON helpers."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.http = app.test_client()
        self.token = token

    def _headers(self, headers):
        merged = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        merged.update(headers or {})
        return merged

    def get(self, path, headers=None, **kw):
        return self.http.get(f"/api/v1{path}", headers=self._headers(headers), **kw)

    def post(self, path, json=None, headers=None, **kw):
        return self.http.post(f"/api/v1{path}", json=json, headers=self._headers(headers), **kw)

    def patch(self, path, json=None, headers=None, **kw):
        return self.http.patch(f"/api/v1{path}", json=json, headers=self._headers(headers), **kw)


class Actors:
    """Mints principals of every role, bound as asked."""

    def __init__(self, app):
        self.app = app

    def token(self, role, **binding) -> str:
        with self.app.app_context():
            with Session(get_engine()) as session:
                token, _row = auth.create_token(session, role=role, **binding)
                session.commit()
        return token

    def client(self, role, **binding) -> Client:
        return Client(self.app, self.token(role, **binding))

    def sme(self, enterprise_id):
        return self.client("sme", enterprise_id=enterprise_id)

    def provider(self, provider_id):
        return self.client("provider", provider_id=provider_id)

    def officer(self, region):
        return self.client("officer", region=region)

    def finance(self, region):
        return self.client("finance", region=region)

    def auditor(self):
        return self.client("auditor")

    def anonymous(self):
        return Client(self.app, None)


@pytest.fixture(scope="module")
def actors(app):
    return Actors(app)


@pytest.fixture
def fresh_actors(fresh_app):
    return Actors(fresh_app)
