"""What an administrator gets from `vouchers` when a setting or a file is wrong:
one line on stderr and exit 1, never a Python traceback (found by a reviewer
probing the command line). Real processes, as a shell runs them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from voucher_service.cli.devserver import free_port

VOUCHERS = os.path.join(os.path.dirname(sys.executable), "vouchers")


def run(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VOUCHERS_", "DATABASE_URL"))}
    base.update({"VOUCHERS_KEY_PASSPHRASE": "a passphrase", "VOUCHERS_KEYS_DIR": str(tmp_path / "keys"),
                 "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}"}, **env)
    return subprocess.run([VOUCHERS, *args], env=base, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def one_line_failure(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert all(word in done.stderr for word in words), done.stderr


def test_a_database_url_that_does_not_parse(tmp_path):
    one_line_failure(run(tmp_path, "checkpoint", "publish", DATABASE_URL="notaurl"), "database URL")


def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "garbage.db").write_bytes(os.urandom(4096))
    one_line_failure(run(tmp_path, "token", "create", "--role", "auditor",
                         DATABASE_URL=f"sqlite:///{tmp_path / 'garbage.db'}"), "not a database")


def test_init_without_its_seeds(tmp_path):
    one_line_failure(run(tmp_path, "init", VOUCHERS_SEEDS=str(tmp_path / "no-seeds")), "regions.json")


def test_a_region_file_that_is_not_text(tmp_path):
    (tmp_path / "region.json").write_bytes(b"\xb6\x00\xff" * 100)
    one_line_failure(run(tmp_path, "regions", "add", "region.json"), "UTF-8")


@pytest.mark.parametrize("target", ["no/such/folder/out.beancount"])
def test_an_export_into_a_folder_that_is_not_there(tmp_path, target):
    seeds = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "seeds")
    assert run(tmp_path, "init", VOUCHERS_SEEDS=seeds).returncode == 0
    one_line_failure(run(tmp_path, "export", "beancount", "-o", target), "No such file or directory")


def test_a_witness_whose_state_is_not_a_database(tmp_path):
    directory = tmp_path / "witness"
    env = {"VOUCHERS_WITNESS_PASSPHRASE": "the witness's passphrase"}
    assert run(tmp_path, "witness", "init", "--dir", str(directory), "--name", "witness.test/w", **env).returncode == 0
    (directory / "state.sqlite").write_bytes(os.urandom(4096))
    bind = f"127.0.0.1:{free_port()}"
    one_line_failure(run(tmp_path, "witness", "serve", "--dir", str(directory), "--bind", bind, **env),
                     "not a database")
