"""Start-up of the real server (gunicorn -c gunicorn.conf.py wsgi:app).

With an initialised database every active region signing key must open with
VOUCHERS_KEY_PASSPHRASE, or the server stops at once, non-zero, with one line
that says what is wrong (and never the passphrase). Over a database not yet
initialised it starts and /readyz says what to do.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import PASSPHRASE
from server import Server

# Workers decrypt the keys (scrypt) and exit: the master follows at once. Generous for slow CI.
EXIT_TIMEOUT_S = 60
HEALTH_TIMEOUT_S = 5
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def initialised(databases):
    url = databases.clone()
    yield url
    databases.drop(url)


def run_until_exit(server: Server) -> tuple[int, str, float]:
    """Start gunicorn and wait for it to stop by itself."""
    started = time.monotonic()
    server.launch()
    try:
        code = server.process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.stop()
        pytest.fail(f"gunicorn still running after {EXIT_TIMEOUT_S} s with unusable keys; see {server.log_path}")
    with open(server.log_path, encoding="utf-8", errors="replace") as handle:
        return code, handle.read(), time.monotonic() - started


@pytest.mark.parametrize("passphrase, reason", [
    ("not-the-right-passphrase", "cannot decrypt private key"),
    ("", "VOUCHERS_KEY_PASSPHRASE is not set"),
], ids=["wrong", "missing"])
def test_a_server_whose_keys_do_not_open_stops_with_one_clear_line(initialised, databases, tmp_path, passphrase,
                                                                     reason):
    server = Server(initialised, databases.keys_dir, str(tmp_path / "gunicorn.log"), workers=2)
    server.env["VOUCHERS_KEY_PASSPHRASE"] = passphrase
    code, log, elapsed = run_until_exit(server)
    assert code != 0, log
    assert elapsed < EXIT_TIMEOUT_S
    lines = [line for line in log.splitlines() if line.startswith("vouchers: cannot start:")]
    assert lines, log
    assert all(reason in line and "VOUCHERS_KEY_PASSPHRASE" in line for line in lines), lines
    # The master checks the keys before forking (gunicorn.conf.py on_starting), so
    # no worker boots and nothing but our one line explains the stop.
    assert len(lines) == 1, log
    assert "Booting worker" not in log, log
    assert "Traceback" not in log, log
    assert PASSPHRASE not in log
    if passphrase:
        assert passphrase not in log


def test_a_server_whose_keys_open_starts(initialised, databases, tmp_path):
    server = Server(initialised, databases.keys_dir, str(tmp_path / "gunicorn.log"), workers=2).start()
    try:
        ready = server.client.request("GET", "/readyz")
        assert ready.status == 200 and ready.json["signing_keys"] == 4, ready.raw  # three regions and the log key
    finally:
        server.stop()
    with open(server.log_path, encoding="utf-8", errors="replace") as handle:
        log = handle.read()
    assert "cannot start" not in log and PASSPHRASE not in log


def test_a_server_over_an_uninitialised_database_starts_and_is_not_ready(empty_database, databases, tmp_path):
    server = Server(empty_database, str(tmp_path / "keys"), str(tmp_path / "gunicorn.log"), workers=1)
    server.env["VOUCHERS_KEY_PASSPHRASE"] = "anything"
    server.launch()
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while True:
            assert server.process.poll() is None, f"gunicorn exited with {server.process.returncode}"
            try:
                if server.client.request("GET", "/healthz", timeout_s=HEALTH_TIMEOUT_S).status == 200:
                    break
            except OSError:  # refused until a worker listens
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
            time.sleep(0.2)
        ready = server.client.request("GET", "/readyz")
        assert ready.status == 503, ready.raw
    finally:
        server.stop()


@pytest.mark.parametrize("setting, value, says", [
    ("VOUCHERS_WITNESSES", "{tmp}/witnesses", "line 1: expected NAME VKEY URL"),
    ("VOUCHERS_WITNESSES", "{tmp}/missing", "cannot read"),
    ("VOUCHERS_CHECKPOINT_INTERVAL_S", "abc", "VOUCHERS_CHECKPOINT_INTERVAL_S must be a number of seconds"),
])
def test_an_unusable_witness_setting_stops_the_server_and_the_cli_with_one_line(initialised, databases, tmp_path,
                                                                                setting, value, says):
    (tmp_path / "witnesses").write_text("w1 not-a-vkey\n")
    value = value.format(tmp=tmp_path)
    server = Server(initialised, databases.keys_dir, str(tmp_path / "gunicorn.log"), workers=1, **{setting: value})
    code, log, _elapsed = run_until_exit(server)
    assert code != 0 and says in log and "Traceback" not in log, log
    cli = subprocess.run([os.path.join(BIN, "vouchers"), "checkpoint", "publish"], env=server.env,
                         capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
    assert cli.returncode != 0 and says in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
