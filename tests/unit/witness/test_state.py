"""The witness's state database: the compare-and-store, the timestamps, the evidence and its bounds."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest

from voucher_service.ledger.merkle import EMPTY_ROOT
from voucher_service.witness.state import NEVER, Cosigned, Evidence, State, StateError

ROOT_5, ROOT_9 = hashlib.sha256(b"5").digest(), hashlib.sha256(b"9").digest()
ORIGIN = "vouchers.test/state"


@pytest.fixture
def state(tmp_path):
    made = State(str(tmp_path / "state.sqlite"), max_routine_evidence=3)
    made.create()
    made.create()  # safe to run again
    made.check()
    return made


def store(state, expected, size, root, now_s=1000, follower=None):
    return state.commit(ORIGIN, expected, size=size, root=root, note=f"note {size}\n", now_s=now_s,
                        cosign=lambda timestamp: f"\u2014 w sig-at-{timestamp}\n", follower=follower,
                        follower_size=size if follower is not None else None, updated_at="2026-03-02T08:00:00.000000Z")


def test_a_log_never_cosigned_is_size_zero_with_the_empty_root(state):
    assert state.latest(ORIGIN) == NEVER and NEVER.root == EMPTY_ROOT and NEVER.size == 0


def test_a_checkpoint_is_stored_only_over_the_state_it_was_checked_against(state):
    line, held = store(state, NEVER, 5, ROOT_5)
    assert line == "\u2014 w sig-at-1000\n" and held == state.latest(ORIGIN) == Cosigned(5, ROOT_5, 1000)
    line, found = store(state, NEVER, 9, ROOT_9)  # checked against "never cosigned": stale now
    assert line is None and found == held
    assert state.latest(ORIGIN).size == 5
    line, held = store(state, held, 9, ROOT_9, now_s=2000, follower={"size": 9})
    assert line is not None and state.latest(ORIGIN) == Cosigned(9, ROOT_9, 2000, {"size": 9}, 9)


def test_the_cosignature_time_never_goes_back(state):
    _line, held = store(state, NEVER, 5, ROOT_5, now_s=5000)
    line, held = store(state, held, 5, ROOT_5, now_s=4000)  # the clock went back
    assert line == "\u2014 w sig-at-5000\n" and held.cosigned_at == 5000


def test_plain_mode_leaves_the_follower_where_it_stopped(state):
    _line, held = store(state, NEVER, 5, ROOT_5, follower={"size": 5})
    _line, held = store(state, held, 9, ROOT_9)
    assert (held.follower, held.follower_size) == ({"size": 5}, 5)
    assert state.latest(ORIGIN) == held


def test_a_size_sqlite_cannot_hold_is_refused(state):
    with pytest.raises(StateError):
        store(state, NEVER, 1 << 63, ROOT_5)


def evidence(kind: str, body: bytes) -> Evidence:
    return Evidence(origin=ORIGIN, kind=kind, status=409, reason="why", old_size=0, checkpoint_size=5,
                    note="note\n", body=body, cosigned=NEVER)


def test_evidence_is_kept_once_per_body_and_routine_refusals_are_bounded(state):
    for number in range(5):
        state.keep_evidence(evidence("stale-old-size", b"stale %d" % number), "t")
    state.keep_evidence(evidence("stale-old-size", b"stale 0"), "t2")  # a known body still counts
    for number in range(5):
        state.keep_evidence(evidence("fork", b"fork %d" % number), "t")
    kept = state.evidence(ORIGIN)
    assert [bytes(e["body"]) for e in kept if e["kind"] == "stale-old-size"] == [b"stale 0", b"stale 1", b"stale 2"]
    assert kept[0]["repeats"] == 2 and kept[0]["last_received_at"] == "t2"
    assert len([e for e in kept if e["kind"] == "fork"]) == 5, "signs of misbehaviour are always kept"


def test_check_refuses_what_is_not_a_witness_state(tmp_path):
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()
    with pytest.raises(StateError):
        State(str(other)).check()
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError):
        State(str(tmp_path / "junk.sqlite")).check()
