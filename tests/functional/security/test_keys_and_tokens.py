"""Signing keys and tokens at rest (voucher_service/http/security.py, http/auth.py).

- Signing keys: encrypted at rest, 0600; a wrong passphrase is refused at
  start-up (the gunicorn side is tests/concurrency/test_startup.py); commands
  that do not sign run without one.
- Token hashes are compared in constant time.
"""
from __future__ import annotations

import hmac
import os
import re
import stat
import subprocess

import pytest
from conftest import PASSPHRASE, REPO, make_config
from security_support import app, bearer, dispose, fresh_limits, mint  # noqa: F401
from server import BIN, REQUEST_TIMEOUT_S, server_env
from sqlmodel import Session

from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.http import auth, security


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
        assert security.check_signing_keys(good) == 4  # three regions' keys and the log key
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
