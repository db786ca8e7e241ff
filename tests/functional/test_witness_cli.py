"""`vouchers witness init | add-log | serve | status` as a region's administrator runs them."""
from __future__ import annotations

import os
import re
import socket
import stat
import time
from datetime import datetime, timezone

import pytest
from tlog_fixture import TLog
from witness_process import PASSPHRASE, WitnessProcess, vouchers

from voucher_service.ledger.cosignature import Cosigner
from voucher_service.ledger.signing import SigningKey


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "d"
    done = vouchers("witness", "init", "--dir", str(directory), "--name", "witness.example.org/ks")
    assert done.returncode == 0, done.stderr
    return directory, done


def test_init_makes_a_private_directory_an_encrypted_key_and_prints_the_vkey(initialised):
    directory, done = initialised
    assert mode_of(directory) == 0o700
    assert mode_of(directory / "witness.key") == 0o600
    pem = (directory / "witness.key").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    SigningKey.from_encrypted_pem("w", pem, PASSPHRASE)  # the passphrase of the environment opens it
    with pytest.raises(ValueError):
        SigningKey.from_encrypted_pem("w", pem, "another passphrase")
    cosigner = Cosigner.parse(done.stdout.strip().splitlines()[-1])
    assert cosigner.name == "witness.example.org/ks"
    assert cosigner.public_key_raw == SigningKey.from_encrypted_pem("w", pem, PASSPHRASE).public_key_raw
    assert (directory / "state.sqlite").exists()
    assert [line for line in (directory / "logs").read_text().splitlines() if not line.startswith("#")] == []


def test_init_never_replaces_a_key(initialised):
    directory, _done = initialised
    key = (directory / "witness.key").read_bytes()
    done = vouchers("witness", "init", "--dir", str(directory), "--name", "another.name")
    assert done.returncode != 0 and "refusing to replace" in done.stderr
    assert (directory / "witness.key").read_bytes() == key


@pytest.mark.parametrize("passphrase", [None, ""])
def test_init_needs_a_passphrase(tmp_path, passphrase):
    done = vouchers("witness", "init", "--dir", str(tmp_path / "d"), "--name", "w", passphrase=passphrase)
    assert done.returncode != 0 and "VOUCHERS_WITNESS_PASSPHRASE" in done.stderr
    assert not (tmp_path / "d" / "witness.key").exists()


def test_init_refuses_a_name_that_is_not_a_key_name(tmp_path):
    done = vouchers("witness", "init", "--dir", str(tmp_path / "d"), "--name", "a name+with plus")
    assert done.returncode != 0 and "name" in done.stderr and "Traceback" not in done.stderr


def test_add_log_appends_the_line_and_keeps_the_token_private(initialised, tmp_path):
    directory, _done = initialised
    log = TLog(origin="vouchers.example/cli")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-auditor-token\n")
    done = vouchers("witness", "add-log", "--dir", str(directory), "--origin", log.origin, "--vkey", log.log_vkey,
                    "--url", "http://127.0.0.1:8000/", "--token-file", str(token_file))
    assert done.returncode == 0, done.stderr
    assert f"{log.origin} {log.log_vkey} http://127.0.0.1:8000\n" in (directory / "logs").read_text()
    [kept] = list((directory / "tokens").iterdir())
    assert kept.read_text().strip() == "s3cret-auditor-token" and mode_of(kept) == 0o600
    assert mode_of(directory / "tokens") == 0o700
    again = vouchers("witness", "add-log", "--dir", str(directory), "--origin", log.origin, "--vkey", log.log_vkey)
    assert again.returncode != 0 and "already" in again.stderr


@pytest.mark.parametrize("case", ["witness vkey", "garbage vkey", "token without url", "bad url", "not initialised",
                                  "another log's key", "url with spaces"])
def test_add_log_refuses(initialised, tmp_path, case):
    directory, done = initialised
    log = TLog(origin=f"vouchers.example/refused-{case.replace(' ', '-')}")
    token_file = tmp_path / "token"
    token_file.write_text("t\n")
    args = {"witness vkey": ["--vkey", done.stdout.strip().splitlines()[-1]],
            "garbage vkey": ["--vkey", "not+a+key"],
            "token without url": ["--vkey", log.log_vkey, "--token-file", str(token_file)],
            "bad url": ["--vkey", log.log_vkey, "--url", "ftp://example.org"],
            "not initialised": ["--vkey", log.log_vkey],
            "another log's key": ["--vkey", TLog(origin="vouchers.example/another").log_vkey],
            "url with spaces": ["--vkey", log.log_vkey, "--url", "not a url"]}[case]
    target = tmp_path / "empty" if case == "not initialised" else directory
    before = (directory / "logs").read_text()
    refused = vouchers("witness", "add-log", "--dir", str(target), "--origin", log.origin, *args)
    assert refused.returncode != 0 and refused.stderr.startswith("Error: ") and "Traceback" not in refused.stderr
    assert {"another log's key": "not after the origin", "url with spaces": "the URL 'not a url'"}.get(
        case, "") in refused.stderr, refused.stderr
    assert (directory / "logs").read_text() == before


@pytest.mark.parametrize("passphrase", ["the wrong passphrase", None])
def test_serve_stops_at_once_without_the_right_passphrase(initialised, passphrase):
    directory, _done = initialised
    witness = WitnessProcess(directory)
    process = witness.launch(passphrase=passphrase)
    assert process.wait(timeout=60) != 0
    assert "VOUCHERS_WITNESS_PASSPHRASE" in witness.output() and "Traceback" not in witness.output()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", witness.port)) != 0, "it listened without its key"


def test_status_says_what_it_holds(tmp_path):
    log = TLog(origin="vouchers.example/status")
    log.several(3)
    witness = WitnessProcess(tmp_path / "d", mode="plain").init()
    witness.add_log(log.origin, log.log_vkey, cli=False)
    witness.start()
    try:
        assert witness.add_checkpoint(log, 0).status == 200
        assert witness.add_checkpoint(log, 0).status == 409
    finally:
        witness.stop()
    done = vouchers("witness", "status", "--dir", witness.directory)
    assert done.returncode == 0, done.stderr
    assert "stale-old-size 1" in done.stdout
    at = re.search(rf"{re.escape(log.origin)}: size 3 cosigned at (\S+) \((\d+)\)", done.stdout)
    assert at, done.stdout
    shown, unix_s = datetime.strptime(at[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc), int(at[2])
    assert shown.timestamp() == unix_s and abs(time.time() - unix_s) < 600
