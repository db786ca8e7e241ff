"""A real gunicorn server (several worker processes) on the test database, for
race and crash tests. One per test module: starting one costs about a second."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import PASSPHRASE, REPO, SEEDS

BIN = os.path.dirname(sys.executable)
STARTUP_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str, keys_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERS_", "GUNICORN_", "PROMETHEUS_"))}
    env.update(DATABASE_URL=database_url, VOUCHERS_KEYS_DIR=keys_dir, VOUCHERS_KEY_PASSPHRASE=PASSPHRASE,
               VOUCHERS_SEEDS=SEEDS, VOUCHERS_LOG_FORMAT="json")
    return env


class Server:
    def __init__(self, database_url: str, keys_dir: str, log_path: str, workers: int = 4):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = server_env(database_url, keys_dir)
        self.env.update(GUNICORN_BIND=f"127.0.0.1:{self.port}", GUNICORN_WORKERS=str(workers))
        self.log_path = log_path
        self.process = None

    def start(self) -> "Server":
        with open(self.log_path, "ab") as log:
            # A session of its own, so that a crash test can kill the whole group.
            self.process = subprocess.Popen(
                [os.path.join(BIN, "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=REPO, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready in {STARTUP_TIMEOUT_S} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """kill -9 the master and every worker at once: a power cut, as far as they can tell."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def request(self, method: str, path: str, *, token: str | None = None, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw

    def api(self, method, path, token=None, body=None, headers=None):
        return self.request(method, "/api/v1" + path, token=token, body=body, headers=headers)


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
