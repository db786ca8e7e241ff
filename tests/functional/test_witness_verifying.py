"""The verifying mode (DESIGN §10, beyond the spec): before cosigning, the
witness reads the new entries with the log's auditor token and checks them.
What only it catches is a checkpoint whose log signature and consistency
proof are both valid, over entries that are not: an edited entry, a history
other than the one the log shows its auditors. Real processes: `vouchers
witness serve` and a small real log over HTTP (tests/tlog_fixture.py)."""
from __future__ import annotations

import itertools
import threading

import pytest
from tlog_fixture import TLog, TLogServer
from witness_process import WitnessProcess

from voucher_service.cli.devserver import free_port
from voucher_service.ledger.tlog_witness import request_body

TOKEN = "auditor-token-for-the-witness"
SILENT = "vouchers.test/silent"  # listed with the URL of a port nothing listens on
LOGS = 10
_numbers = itertools.count()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    logs = [TLog(origin=f"vouchers.test/verifying-{n}") for n in range(LOGS)]
    servers = [TLogServer(log, token=TOKEN).start() for log in logs]
    witness = WitnessProcess(tmp_path_factory.mktemp("witness") / "d").init()
    witness.add_log(logs[0].origin, logs[0].log_vkey, servers[0].base_url, TOKEN)  # as its administrator does
    for log, server in zip(logs[1:], servers[1:]):
        witness.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
    silent = TLog(origin=SILENT)
    witness.add_log(silent.origin, silent.log_vkey, f"http://127.0.0.1:{free_port()}", TOKEN, cli=False)
    witness.start()
    try:
        yield witness, list(zip(logs, servers)), silent
    finally:
        witness.stop()
        for server in servers:
            server.stop()


@pytest.fixture
def witness(pool):
    return pool[0]


@pytest.fixture
def served(pool):
    """A log of its own (5 entries so far) and the server its witness reads it from."""
    log, server = pool[1][next(_numbers)]
    log.several(5)
    return log, server


def exports(server) -> list[str]:
    return [path for path in server.requests if "/export" in path]


def test_it_reads_each_new_entry_once_and_cosigns(witness, served):
    log, server = served
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 0))
    assert exports(server) == ["/api/v1/ledger/export?start=0&end=5"]
    log.several(4)
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 5))
    assert exports(server)[1:] == ["/api/v1/ledger/export?start=5&end=9"]
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 9))  # the same again: nothing to read
    assert len(exports(server)) == 2
    held = witness.state.latest(log.origin)
    assert (held.size, held.follower_size, held.follower["size"]) == (9, 9, 9)


def test_an_edited_entry_is_refused_though_signature_and_proof_are_valid(witness, served):
    log, _server = served
    assert witness.add_checkpoint(log, 0).status == 200
    log.several(4)
    edited = log.edit(6, lambda entry: entry["data"].update(face_value_fen=9_000))  # the tree keeps the old leaf
    answer = witness.add_checkpoint(log, 5)
    assert answer.status == 422, answer.text
    assert "seq 6" in answer.text
    assert witness.state.latest(log.origin).size == 5
    [kept] = witness.state.evidence(log.origin)
    assert (kept["kind"], kept["seq"], bytes(kept["entry"])) == ("content", 6, edited)
    assert kept["note"] == log.checkpoint() and "signature" in kept["reason"]


def test_a_checkpoint_of_another_history_is_refused_though_signature_and_proof_are_valid(witness, served):
    """The log signs one history and serves its auditors another: the witness sees both."""
    log, _server = served
    assert witness.add_checkpoint(log, 0).status == 200
    signed = log.fork(5)
    signed.fund("KS", 5_555)
    log.fund("KS", 4_444)  # what the export shows
    assert signed.size == log.size and signed.root() != log.root()
    answer = witness.add_checkpoint(signed, 5)
    assert answer.status == 422 and "root" in answer.text, answer.text
    [kept] = witness.state.evidence(log.origin)
    assert kept["kind"] == "content" and kept["note"] == signed.checkpoint() and kept["seq"] is None
    assert witness.state.latest(log.origin).size == 5
    assert witness.add_checkpoint(log, 5).status == 200, "the history it shows is cosigned"


def test_a_key_rotation_and_a_new_region_are_followed(witness, served):
    log, _server = served
    assert witness.add_checkpoint(log, 0).status == 200
    log.rotate("KS")
    log.several(2, "KS")
    log.join("SH")
    log.fund("SH", 10_000)
    assert witness.add_checkpoint(log, 5).status == 200
    old = log.size
    log.rotate("GZ", endorsed=False)
    answer = witness.add_checkpoint(log, old)
    assert answer.status == 422 and f"seq {old}" in answer.text, answer.text


@pytest.mark.parametrize("published", ["another log key", "no log key", "another origin"])
def test_published_keys_that_hide_the_witnessed_log_key_are_refused(witness, served, published):
    """An auditor without a policy trusts the log key of GET /ledger/keys: a document that
    swaps it, drops it (so the log reads as one from before witnesses) or is another log's
    would make checkpoints no witness saw look valid. The witness refuses and keeps it."""
    log, server = served
    assert witness.add_checkpoint(log, 0).status == 200
    log.several(2)
    document = log.keys_json()
    log_record = next(k for k in document["keys"] if k["purpose"] == "log")
    if published == "another log key":
        other = TLog(origin=log.origin)
        log_record.update(next(k for k in other.keys_json()["keys"] if k["purpose"] == "log"))
    elif published == "no log key":
        document["keys"].remove(log_record)
    else:
        document = TLog(origin="vouchers.test/another-log").keys_json()
    server.keys_document = document
    try:
        answer = witness.add_checkpoint(log, 5)
    finally:
        server.keys_document = None
    assert answer.status == 422, answer.text
    assert ("origin" if published == "another origin" else "log key") in answer.text, answer.text
    assert witness.state.latest(log.origin).size == 5
    [kept] = witness.state.evidence(log.origin)
    assert kept["kind"] == "content" and kept["note"] == log.checkpoint()
    assert witness.add_checkpoint(log, 5).status == 200, "the true keys document again: cosigned"


def test_entries_that_cannot_be_read_are_503_and_nothing_is_cosigned(witness, served):
    log, server = served
    server.token = "the witness's token was revoked"
    answer = witness.add_checkpoint(log, 0)
    assert answer.status == 503 and "401" in answer.text, answer.text
    assert witness.state.latest(log.origin).size == 0 and witness.state.evidence(log.origin) == []
    server.token = TOKEN
    assert witness.add_checkpoint(log, 0).status == 200


def test_concurrent_requests_from_one_size_move_the_log_on_once(witness, served):
    """The check of entries runs outside the write lock; the store re-reads under it."""
    log, _server = served
    assert witness.add_checkpoint(log, 0).status == 200
    log.several(16)
    bodies = [request_body(5, log.consistency(5, new), log.checkpoint(new)) for new in range(6, 22)]
    barrier, statuses = threading.Barrier(len(bodies)), []

    def send(body):
        barrier.wait()
        statuses.append(witness.post(body).status)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [200] + [409] * (len(bodies) - 1), statuses
    held = witness.state.latest(log.origin)
    assert held.follower_size == held.size and held.root == log.root(held.size)


def test_plain_mode_cosigns_what_only_the_content_check_catches(tmp_path):
    """The same edited entry as above, to a plain witness: cosigned. The refusal is the verifying mode's."""
    log = TLog(origin="vouchers.test/plain")
    log.several(5)
    with TLogServer(log, token=TOKEN) as server:
        plain = WitnessProcess(tmp_path / "plain", mode="plain").init()
        plain.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
        plain.start()
        try:
            assert plain.add_checkpoint(log, 0).status == 200
            log.several(4)
            log.edit(6, lambda entry: entry["data"].update(face_value_fen=9_000))
            plain.cosigned_timestamp(log.checkpoint(), plain.add_checkpoint(log, 5))
            assert exports(server) == []
        finally:
            plain.stop()


def test_a_late_verifier_checks_the_history_it_had_cosigned_on_proofs_alone(tmp_path):
    """Cosigned in plain mode up to 8, then run in verifying mode: it reads from
    entry 0 and finds that the log now shows another history than the one it had
    cosigned; shown the right one, it cosigns."""
    log = TLog(origin="vouchers.test/late")
    log.several(8)
    shown = log.fork(3)
    shown.fund("GZ", 3_333)
    shown.several(8)
    with TLogServer(shown, token=TOKEN) as server:
        witness = WitnessProcess(tmp_path / "late", mode="plain").init()
        witness.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
        witness.start()
        assert witness.add_checkpoint(log, 0).status == 200
        witness.stop()
        witness.mode = "verifying"
        witness.start()
        try:
            log.several(3)
            answer = witness.add_checkpoint(log, 8)
            assert answer.status == 422 and "another history" in answer.text, answer.text
            assert exports(server) == ["/api/v1/ledger/export?start=0&end=8"]
            server.log = log
            assert witness.add_checkpoint(log, 8).status == 200
            assert exports(server)[1:] == ["/api/v1/ledger/export?start=0&end=8", "/api/v1/ledger/export?start=8&end=11"]
        finally:
            witness.stop()


def test_a_log_that_does_not_answer_is_503(pool):
    witness, _served, silent = pool
    silent.several(3)
    answer = witness.add_checkpoint(silent, 0)
    assert answer.status == 503 and answer.content_type.startswith("text/plain"), answer.text
    assert witness.state.latest(silent.origin).size == 0
