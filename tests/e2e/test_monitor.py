"""`vouchers monitor` as a real process against a real log served over HTTP
(tests/tlog_fixture.py): consistent growth is followed round after round; a
fork, a rollback and an edited entry each stop it with exit status 1 and the
evidence on disk."""
from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys
import threading

import pytest
from tlog_fixture import TLog, TLogServer

from voucher_service.ledger import SigningKey
from voucher_service.ledger.note import verifier_key

VOUCHERS = os.path.join(os.path.dirname(sys.executable), "vouchers")
TOKEN = "auditor-test-token"
TIMEOUT_S = 60


@pytest.fixture
def log():
    log = TLog()
    log.fund("KS", 100_000)
    log.fund("GZ", 100_000)
    log.issue("KS", "v-1", 20_000)
    log.reserve("KS", "v-1", 5_000)
    log.several(4, "GZ")
    return log


@pytest.fixture
def server(log):
    with TLogServer(log, token=TOKEN) as server:
        yield server


@pytest.fixture
def state(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return tmp_path / "monitor", token_file


def monitor(server, state, *options, token_file=None):
    state_dir, default_token = state
    return subprocess.run([VOUCHERS, "monitor", "--url", server.base_url, "--state", str(state_dir),
                           "--token-file", str(token_file or default_token), "--once", *options],
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def consistent(server, state) -> str:
    done = monitor(server, state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: ") and not done.stderr
    return done.stdout


def evidence(state, what: str, count: int = 1) -> dict[str, str]:
    """The files of the newest evidence folder of this kind, once there are `count` of them."""
    folders = sorted(glob.glob(os.path.join(state[0], "evidence", f"*-{what}")))
    assert len(folders) == count, os.listdir(os.path.join(state[0], "evidence"))
    folder = folders[-1]
    return {name: _read(os.path.join(folder, name)) for name in os.listdir(folder)}


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def kept_state(state) -> dict:
    with open(os.path.join(state[0], "state.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_consistent_growth_is_followed_round_after_round(log, server, state):
    pinned = log.keys_json()
    first = consistent(server, state)
    assert f"size {log.size}," in first and "first checkpoint kept" in first
    size_one = log.size

    log.rotate("KS")                       # custody: learnt from the endorsed entry
    log.issue("KS", "v-2", 1_000)
    log.join("SH")                         # a new region: trusted on first use
    log.fund("SH", 50_000)
    second = consistent(server, state)
    assert f"size {log.size}," in second and f"{log.size - size_one} new entries verified" in second
    assert f"consistent with the kept size {size_one}" in second
    assert f"/api/v1/ledger/export?start={size_one}&end={log.size}" in server.requests

    assert "unchanged" in consistent(server, state)
    log.several(3, "SH")
    consistent(server, state)

    state_dir = state[0]
    with open(state_dir / "keys.json", encoding="utf-8") as handle:
        assert json.load(handle) == pinned, "the keys pinned at the first run are never rewritten"
    assert len(os.listdir(state_dir / "checkpoints")) == 3  # one file per checkpoint seen
    kept = kept_state(state)
    assert kept["checkpoint"] == log.checkpoint() and kept["follower"]["size"] == log.size
    assert not os.listdir(state_dir / "evidence")


@pytest.mark.parametrize("extra", [0, 3], ids=["same-size", "longer"])
def test_a_fork_signed_by_the_same_log_key_exits_1_with_both_checkpoints(log, server, state, extra):
    kept = log.checkpoint()
    consistent(server, state)
    fork = log.fork(log.size - 2)
    fork.issue("GZ", "v-elsewhere", 500)
    fork.issue("GZ", "v-elsewhere-2", 500)
    if extra:
        fork.several(extra, "KS")
    server.log = fork
    done = monitor(server, state)
    assert done.returncode == 1, done.stdout + done.stderr
    what = "fork" if not extra else "inconsistent"
    assert f"FAILED: {what}" in done.stderr
    files = evidence(state, what)
    assert files["kept-checkpoint.txt"] == kept and files["served-checkpoint.txt"] == fork.checkpoint()
    if extra:
        assert json.loads(files["consistency-proof.json"])["first"] == log.size
    assert kept_state(state)["checkpoint"] == kept, "nothing of the fork is kept"


def test_a_rollback_exits_1_with_both_checkpoints(log, server, state):
    kept = log.checkpoint()
    consistent(server, state)
    log.truncate(log.size - 3)
    done = monitor(server, state)
    assert done.returncode == 1 and "FAILED: rollback" in done.stderr, done.stdout + done.stderr
    files = evidence(state, "rollback")
    assert files["kept-checkpoint.txt"] == kept and files["served-checkpoint.txt"] == log.checkpoint()


def test_an_edited_entry_exits_1_naming_its_seq_and_keeps_nothing(log, server, state):
    consistent(server, state)
    size_one = log.size
    log.several(4, "KS")
    edited = size_one + 2

    def double(entry):
        entry["postings"][0]["amount"] *= 2

    log.edit(edited, double)
    for _round in range(2):  # and again: the state did not move past the bad entry
        done = monitor(server, state)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"FAILED: entries: FAILED at seq {edited}:" in done.stderr
    files = evidence(state, "entries", count=2)  # one folder per failure
    assert f"seq {edited}" in files["report.txt"]
    assert files[f"entries-{size_one}-{log.size}.jsonl"].splitlines()[edited - size_one] == log.lines[edited].decode()
    assert kept_state(state)["follower"]["size"] == size_one


def test_valid_entries_that_do_not_hash_to_the_checkpoint_exit_1(log, server, state):
    consistent(server, state)
    log.several(2, "KS")
    other = log.fork(log.size - 1)
    other.issue("KS", "v-other", 10)
    log.replace(log.size - 1, other.lines[-1])  # signed and valid, but not what the tree commits to
    done = monitor(server, state)
    assert done.returncode == 1 and "FAILED: root" in done.stderr, done.stdout + done.stderr
    assert evidence(state, "root")["served-checkpoint.txt"] == log.checkpoint()


def test_a_checkpoint_without_the_log_keys_signature_exits_1(log, server, state):
    consistent(server, state)
    log.several(2, "KS")
    stranger = SigningKey.generate("log")
    server.checkpoint_note = log.checkpoint(log=False, legacy=True,
                                            signers=[(log.origin, stranger.sign, stranger.public_key_raw)])
    done = monitor(server, state)
    assert done.returncode == 1 and "FAILED: signature" in done.stderr, done.stdout + done.stderr
    assert "not signed by the log key" in done.stderr


def test_keys_that_contradict_the_pinned_ones_exit_1(log, server, state):
    consistent(server, state)
    document = log.keys_json()
    swapped = SigningKey.generate("KS").public_key_raw
    record = next(k for k in document["keys"] if k["region"] == "KS")
    record.update(public_key=base64.b64encode(swapped).decode(), note_key=verifier_key(record["note_name"], swapped))
    server.keys_document = document
    done = monitor(server, state)
    assert done.returncode == 1 and "FAILED: keys" in done.stderr and record["key_id"] in done.stderr
    assert json.loads(evidence(state, "keys")["served-keys.json"]) == document


def test_a_wrong_token_is_not_a_verdict_on_the_log(log, server, state, tmp_path):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    done = monitor(server, state, token_file=wrong)
    assert done.returncode == 2 and "not checked" in done.stderr and "401" in done.stderr
    assert not os.listdir(state[0] / "evidence")
    consistent(server, state)


def test_without_once_it_keeps_following_until_the_log_misbehaves(log, server, state):
    state_dir, token_file = state
    process = subprocess.Popen([VOUCHERS, "monitor", "--url", server.base_url, "--state", str(state_dir),
                                "--token-file", str(token_file), "--interval-s", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(TIMEOUT_S, process.kill)  # readline has no timeout of its own
    watchdog.start()
    try:
        assert process.stdout.readline().startswith("ok: ")
        log.several(2, "KS")
        assert "2 new entries verified" in process.stdout.readline()
        log.truncate(3)
        assert process.wait(timeout=TIMEOUT_S) == 1
        assert "FAILED: rollback" in process.stderr.read()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
