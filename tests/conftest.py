"""Shared fixtures: a migrated, seeded database built once per run and copied
per test module (or per test, for tests that need a pristine ledger)."""
from __future__ import annotations

import os
import shutil
import uuid

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(REPO, "seeds")
PASSPHRASE = "test-passphrase"

settings.register_profile("default", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


TEST_DATABASE_URL = os.environ.get("VOUCHERS_TEST_DATABASE_URL", "").strip()


def make_config(database_url: str, keys_dir: str) -> dict:
    if "://" not in database_url:  # a path: an SQLite file
        database_url = f"sqlite:///{database_url}"
    return {"TESTING": True, "DATABASE_URL": database_url, "VOUCHERS_KEYS_DIR": keys_dir,
            "VOUCHERS_KEY_PASSPHRASE": PASSPHRASE, "VOUCHERS_SEEDS": SEEDS}


class Databases:
    """Fresh databases for tests, on SQLite (files) or PostgreSQL (databases).

    `VOUCHERS_TEST_DATABASE_URL` names a PostgreSQL database to connect to for
    administration; tests then run in databases created for them, each a copy
    of one template that `vouchers init` migrated (Alembic) and seeded once.
    Unset, every database is an SQLite file.
    """

    def __init__(self, root: str):
        self.root = root
        self.keys_dir = os.path.join(root, "keys")
        self.admin_url = TEST_DATABASE_URL or None
        self.prefix = f"vt{os.getpid()}_"
        if self.postgres:
            self.sweep()
        self.template_url = self.empty()

    def sweep(self) -> None:
        """Drop the databases of earlier runs whose process is gone (a killed
        or interrupted run leaves its vt<pid>_ databases behind)."""
        engine = create_engine(self.admin_url)
        try:
            with engine.connect() as connection:
                names = connection.exec_driver_sql(
                    r"SELECT datname FROM pg_database WHERE datname ~ '^vt[0-9]+_[0-9a-f]{12}$'").scalars().all()
        finally:
            engine.dispose()
        for name in names:
            pid = int(name[2:name.index("_")])
            if pid != os.getpid() and not _process_alive(pid):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def postgres(self) -> bool:
        return self.admin_url is not None

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def _url_for(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def empty(self) -> str:
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        if self.postgres:
            self._admin(f'CREATE DATABASE "{name}"')
            return self._url_for(name)
        return f"sqlite:///{os.path.join(self.root, name + '.db')}"

    def clone(self) -> str:
        """A copy of the seeded template."""
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}"
        if self.postgres:
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(self.template_url).database}"')
            return self._url_for(name)
        target = os.path.join(self.root, name + ".db")
        shutil.copyfile(make_url(self.template_url).database, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                path = make_url(url).database + suffix
                if os.path.exists(path):
                    os.remove(path)

    def app(self, url: str):
        return create_app(make_config(url, self.keys_dir))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    """One initialised template database and key folder; tests get copies."""
    dbs = Databases(str(tmp_path_factory.mktemp("databases")))
    app = dbs.app(dbs.template_url)
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    dispose(app)
    yield dbs
    if dbs.postgres:
        dbs.drop(dbs.template_url)


def dispose(app):
    with app.app_context():
        get_engine().dispose()


@pytest.fixture(scope="module")
def app(databases):
    url = databases.clone()
    application = databases.app(url)
    yield application
    dispose(application)
    databases.drop(url)


@pytest.fixture
def fresh_app(databases):
    url = databases.clone()
    application = databases.app(url)
    yield application
    dispose(application)
    databases.drop(url)


@pytest.fixture
def empty_database(databases):
    """The URL of a new, empty database (nothing migrated)."""
    url = databases.empty()
    yield url
    databases.drop(url)


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

    def put(self, path, json=None, headers=None, **kw):
        return self.http.put(f"/api/v1{path}", json=json, headers=self._headers(headers), **kw)

    def patch(self, path, json=None, headers=None, **kw):
        return self.http.patch(f"/api/v1{path}", json=json, headers=self._headers(headers), **kw)

    def delete(self, path, headers=None, **kw):
        return self.http.delete(f"/api/v1{path}", headers=self._headers(headers), **kw)


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
