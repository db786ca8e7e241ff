"""C2SP tlog-witness, status code by status code, against a real `vouchers
witness serve` (plain mode: the spec alone; tests/functional/
test_witness_verifying.py adds the entries check). Each test has a log of
its own (tests/tlog_fixture.py), all listed in the one witness's D/logs."""
from __future__ import annotations

import base64
import hashlib
import itertools
import random
import threading
import time

import pytest
from tlog_fixture import TLog
from witness_process import WitnessProcess

from voucher_service.ledger.note import Checkpoint, sign_note
from voucher_service.ledger.signing import SigningKey
from voucher_service.ledger.tlog_witness import MAX_BODY_BYTES, SIZE_MEDIA_TYPE, parse_size_body, request_body

LOGS = 32
_numbers = itertools.count()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    logs = [TLog(origin=f"vouchers.test/protocol-{n}") for n in range(LOGS)]
    witness = WitnessProcess(tmp_path_factory.mktemp("witness") / "d", mode="plain").init()
    witness.add_log(logs[0].origin, logs[0].log_vkey)  # as an administrator does; the rest at once
    witness.list_logs(logs[1:])
    witness.start()
    try:
        yield witness, logs
    finally:
        witness.stop()


@pytest.fixture
def witness(pool):
    return pool[0]


@pytest.fixture
def log(pool):
    """A log of its own, with 5 entries, that the witness has never seen."""
    chosen = pool[1][next(_numbers)]
    chosen.several(5)
    return chosen


def test_a_first_checkpoint_is_cosigned_with_a_verifying_cosignature(witness, log):
    before = int(time.time())
    answer = witness.add_checkpoint(log, 0)
    timestamp = witness.cosigned_timestamp(log.checkpoint(), answer)
    assert before <= timestamp <= int(time.time()) + 1
    assert answer.body.count(b"\n") == 1 and answer.text.startswith(f"\u2014 {witness.name} ")
    held = witness.state.latest(log.origin)
    assert (held.size, held.root, held.cosigned_at) == (log.size, log.root(), timestamp)


def test_the_next_checkpoint_with_the_right_old_size_and_proof_is_cosigned(witness, log):
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 0))
    old = log.size
    log.several(6)
    first = witness.state.latest(log.origin).cosigned_at
    second = witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, old))
    assert second >= first
    assert witness.state.latest(log.origin).size == log.size == old + 6


def test_the_same_checkpoint_again_is_cosigned_again(witness, log):
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 0))
    witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, log.size))


def test_an_unknown_origin_is_404(witness):
    stranger = TLog(origin="vouchers.test/not-witnessed")
    stranger.several(2)
    answer = witness.add_checkpoint(stranger, 0)
    assert answer.status == 404 and "vouchers.test/not-witnessed" in answer.text
    assert witness.state.evidence("vouchers.test/not-witnessed") == []


def test_no_valid_signature_by_the_log_key_is_403(witness, log):
    text = Checkpoint(log.origin, log.size, log.root()).text()
    impostor = SigningKey.generate("log")
    by_another_key = sign_note(text, [(log.origin, impostor.sign, impostor.public_key_raw)])
    assert witness.add_checkpoint(log, 0, note=by_another_key).status == 403
    # The log's real signature, moved onto another tree size: a known key that does not verify.
    moved = log.checkpoint(log.size - 1).replace(f"\n{log.size - 1}\n", f"\n{log.size}\n", 1)
    assert witness.add_checkpoint(log, 0, note=moved).status == 403
    assert witness.state.latest(log.origin).size == 0
    assert witness.state.evidence(log.origin) == [], "what the log did not sign proves nothing against it"


def test_the_first_line_by_the_log_key_decides_as_in_go_note_open(witness, log):
    """Two lines by the log's key: the first is checked, a repeat is dropped (Go's
    sumdb/note does the same, so the witness and stock verifiers agree on a note)."""
    note = log.checkpoint()
    body, line = note.rstrip("\n").rsplit("\n", 1)
    name, blob = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01  # the same key's hash, a signature that does not verify
    broken = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    assert witness.add_checkpoint(log, 0, note=f"{body}\n{broken}\n{line}\n").status == 403
    assert witness.state.latest(log.origin).size == 0
    witness.cosigned_timestamp(note, witness.add_checkpoint(log, 0, note=f"{body}\n{line}\n{broken}\n"))


def test_signatures_by_unknown_keys_are_ignored(witness, log):
    stranger = SigningKey.generate("stranger")
    note = log.checkpoint(signers=[("someone.else", stranger.sign, stranger.public_key_raw)])
    witness.cosigned_timestamp(note, witness.add_checkpoint(log, 0, note=note))


def test_an_old_size_above_the_checkpoint_size_is_400_and_kept(witness, log):
    answer = witness.add_checkpoint(log, log.size + 1, proof=[])
    assert answer.status == 400, answer.text
    assert [e["kind"] for e in witness.state.evidence(log.origin)] == ["old-beyond-size"]


def _body(log, first_line: str, proof_lines: list[str]) -> bytes:
    return (first_line + "\n" + "".join(p + "\n" for p in proof_lines) + "\n" + log.checkpoint()).encode()


@pytest.mark.parametrize("malformed", ["leading zero", "no blank line", "64 proof lines", "short hash", "not utf-8",
                                       "unsigned", "no final newline"])
def test_malformed_bodies_are_400(witness, log, malformed):
    hash_line = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    body = {
        "leading zero": lambda: _body(log, "old 00", []),
        "no blank line": lambda: ("old 0\n" + log.checkpoint()).encode(),
        "64 proof lines": lambda: _body(log, "old 1", [hash_line] * 64),
        "short hash": lambda: _body(log, "old 1", [base64.b64encode(b"\1" * 31).decode()]),
        "not utf-8": lambda: _body(log, "old 0", []).replace(b"\xe2\x80\x94", b"\xe2\x80"),
        "unsigned": lambda: f"old 0\n\n{log.checkpoint().split(chr(10) * 2)[0]}\n\n".encode(),
        "no final newline": lambda: _body(log, "old 0", [])[:-1],
    }[malformed]()
    answer = witness.post(body)
    assert answer.status == 400, answer.text
    assert answer.content_type.startswith("text/plain")
    assert witness.state.latest(log.origin).size == 0


def test_a_body_larger_than_any_request_is_refused_unread(witness):
    answer = witness.post(b"old 0\n" + b"A" * (MAX_BODY_BYTES + 1))
    assert answer.status == 413 and answer.content_type.startswith("text/plain")


def test_a_wrong_old_size_is_409_with_the_cosigned_size(witness, log):
    assert witness.add_checkpoint(log, 0).status == 200
    cosigned = log.size
    log.several(4)
    for old in (0, cosigned - 1, cosigned + 1):
        answer = witness.add_checkpoint(log, old)
        assert answer.status == 409, (old, answer.text)
        assert answer.content_type == SIZE_MEDIA_TYPE
        assert answer.body == f"{cosigned}\n".encode() and parse_size_body(answer.body) == cosigned
    # What a publisher does with it: retry from that size.
    assert witness.add_checkpoint(log, cosigned).status == 200


def test_the_same_size_with_another_root_is_409_and_kept_as_a_fork(witness, log):
    fork = log.fork(2)
    fork.fund("KS", 777)
    fork.several(2)  # as many entries as the log, another history after entry 2
    assert fork.size == log.size and fork.root() != log.root()
    assert witness.add_checkpoint(log, 0).status == 200
    answer = witness.add_checkpoint(fork, fork.size, proof=[])
    assert answer.status == 409 and answer.content_type != SIZE_MEDIA_TYPE, answer
    assert witness.state.latest(log.origin).root == log.root()
    [kept] = witness.state.evidence(log.origin)
    assert kept["kind"] == "fork" and kept["note"] == fork.checkpoint() and kept["status"] == 409


def test_a_consistency_proof_that_does_not_verify_is_422(witness, log):
    assert witness.add_checkpoint(log, 0).status == 200
    old = log.size
    log.several(5)
    proof = log.consistency(old, log.size)
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    for bad in (flipped, proof[:-1], [*proof, proof[0]], []):
        assert witness.add_checkpoint(log, old, proof=bad).status == 422
    fork = log.fork(old - 2)
    fork.fund("GZ", 999)
    fork.several(6)
    assert witness.add_checkpoint(fork, old).status == 422, "a fork's own proof does not reach the cosigned root"
    assert witness.state.latest(log.origin).size == old
    assert witness.add_checkpoint(log, old, proof=proof).status == 200


def test_a_proof_for_old_size_zero_must_be_empty(witness, log):
    assert witness.add_checkpoint(log, 0, proof=[hashlib.sha256(b"x").digest()]).status == 422


def test_refused_requests_the_log_signed_are_kept_as_evidence(witness, log):
    assert witness.add_checkpoint(log, 0).status == 200
    cosigned = log.size
    log.several(3)
    stale = request_body(0, [], log.checkpoint())
    assert witness.post(stale).status == 409
    assert witness.post(stale).status == 409  # the same body again: counted, not stored twice
    bad_proof = request_body(cosigned, [hashlib.sha256(b"wrong").digest()], log.checkpoint())
    assert witness.post(bad_proof).status == 422
    beyond = request_body(log.size + 5, [], log.checkpoint())
    assert witness.post(beyond).status == 400
    assert witness.post(b"old 0\n\nnot a checkpoint\n").status == 400  # unsigned: nothing to keep
    kept = witness.state.evidence(log.origin)
    assert [(e["kind"], e["status"], e["repeats"]) for e in kept] == [
        ("stale-old-size", 409, 2), ("bad-proof", 422, 1), ("old-beyond-size", 400, 1)]
    assert [bytes(e["body"]) for e in kept] == [stale, bad_proof, beyond]
    assert all(e["note"] == log.checkpoint() and e["cosigned_size"] == cosigned for e in kept)
    assert all(e["cosigned_root"] == log.root(cosigned) for e in kept)


def test_health_and_other_methods(witness):
    assert witness.request("GET", "/healthz").status == 200
    answer = witness.request("GET", "/add-checkpoint")
    assert answer.status == 405 and answer.content_type.startswith("text/plain")
    assert witness.request("POST", "/no-such-path", b"x").status == 404


def test_competing_requests_never_roll_the_witness_back_nor_cosign_two_roots_at_a_size(witness, pool):
    """The spec's race, many times over: each round, 24 threads at once send a
    request that is valid for the witness's current state (old = the size it
    holds; two histories that share 8 entries and the log key): what the
    witness accepts is one chain of sizes in one history."""
    log = pool[1][next(_numbers)]
    log.several(8)
    fork = log.fork(8)
    log.several(60)
    fork.fund("GZ", 4242)
    fork.several(59)
    sizes = list(range(8, log.size + 1, 2))
    step = 6  # a request moves the log on by at most this many sizes
    bodies = {}
    for history in (log, fork):
        for old in [0, *sizes]:
            for new in [s for s in sizes if s >= old][:step]:
                bodies[(id(history), old, new)] = request_body(old, history.consistency(old, new),
                                                               history.checkpoint(new))
    accepted, statuses, observed, lock = [], [], [], threading.Lock()
    rounds, threads_count = 15, 24
    barrier = threading.Barrier(threads_count, timeout=120)

    def client(number: int) -> None:
        rng = random.Random(number)
        for _round in range(rounds):
            barrier.wait()
            current = witness.state.latest(log.origin).size
            if number == 0:
                observed.append(current)
            barrier.wait()
            history = rng.choice((log, fork))
            new = rng.choice([s for s in sizes if s >= current][:step])
            answer = witness.post(bodies[(id(history), current, new)])
            with lock:
                statuses.append(answer.status)
                if answer.status == 200:
                    accepted.append((history, current, new))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(statuses) == rounds * threads_count
    assert set(statuses) <= {200, 409, 422}, statuses
    assert statuses.count(409) > rounds, "the requests did not compete"
    assert observed == sorted(observed), f"the stored size went backwards: {observed}"
    roots_at = {}
    for history, _old, new in accepted:
        roots_at.setdefault(new, set()).add(history.root(new))
    assert all(len(roots) == 1 for roots in roots_at.values()), "two roots cosigned at one size"
    assert len({id(h) for h, _old, new in accepted if new > 8}) <= 1, "both histories cosigned past their fork"
    growth = sorted((old, new) for _h, old, new in accepted if new > old)
    assert len({old for old, _new in growth}) == len(growth), "two requests from one size both moved the log on"
    assert growth[0][0] == 0 and all(new == next_old for (_o, new), (next_old, _n) in zip(growth, growth[1:])), \
        f"the accepted requests are not one chain: {growth}"
    held = witness.state.latest(log.origin)
    assert held.size == growth[-1][1] and roots_at[held.size] == {held.root}
