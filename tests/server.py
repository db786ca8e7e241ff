"""A real gunicorn server (several worker processes) on the test database, for
race and crash tests. One per test module: starting one costs about a second."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import PASSPHRASE, REPO

from voucher_service.cli.client import ApiClient
from voucher_service.cli.devserver import GunicornProcess, free_port, service_env  # noqa: F401 (free_port: for the e2e tests)

BIN = os.path.dirname(sys.executable)
STARTUP_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 60


def server_env(database_url: str, keys_dir: str, **settings) -> dict:
    from helpers import TEST_CHECKPOINT_INTERVAL_S
    settings.setdefault("VOUCHERS_CHECKPOINT_INTERVAL_S", TEST_CHECKPOINT_INTERVAL_S)
    return service_env(database_url, keys_dir, PASSPHRASE, **settings)


class Server(GunicornProcess):
    def __init__(self, database_url: str, keys_dir: str, log_path: str, workers: int = 4, **settings):
        super().__init__("wsgi:app", server_env(database_url, keys_dir, **settings), workers, log_path, bin_dir=BIN)
        self.client = ApiClient(self.base, timeout_s=REQUEST_TIMEOUT_S)

    def start(self, ready_path: str = "/readyz") -> "Server":
        return super().start(ready_path=ready_path, timeout_s=STARTUP_TIMEOUT_S)


def fresh_server(databases, directory, workers: int = 2) -> Server:
    """A server over a new, empty database that `vouchers init` sets up, as a user would."""
    database_url = databases.empty()
    keys_dir = os.path.join(str(directory), "keys")
    env = server_env(database_url, keys_dir)
    init = subprocess.run([os.path.join(BIN, "vouchers"), "init"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=REQUEST_TIMEOUT_S)
    if init.returncode != 0:
        databases.drop(database_url)
        raise RuntimeError(f"vouchers init failed: {init.stdout}{init.stderr}")
    server = Server(database_url, keys_dir, os.path.join(str(directory), "gunicorn.log"), workers=workers)
    server.database_url = database_url
    return server.start()


@pytest.fixture(scope="module")
def seeded_server(databases, tmp_path_factory):
    """A gunicorn server (4 workers) over a copy of the seeded test database, with
    `app` (an app on the same database, for direct reads) and `actors` (tokens)."""
    from conftest import Actors

    from voucher_service.db import get_engine
    url = databases.clone()
    app = databases.app(url)
    srv = Server(url, databases.keys_dir, str(tmp_path_factory.mktemp("gunicorn") / "server.log")).start()
    srv.app = app
    srv.actors = Actors(app)
    try:
        yield srv
    finally:
        srv.stop()
        with app.app_context():
            get_engine().dispose()
        databases.drop(url)


@pytest.fixture(scope="module")
def gunicorn_server(databases, tmp_path_factory):
    """A gunicorn server (2 workers) over a new database that `vouchers init` set up
    (SQLite, or PostgreSQL under VOUCHERS_TEST_DATABASE_URL): its URL and environment.
    Test modules import it under the name they use."""
    srv = fresh_server(databases, tmp_path_factory.mktemp("e2e"), workers=2)
    try:
        yield srv.base, srv.env
    finally:
        srv.stop()
        databases.drop(srv.database_url)
