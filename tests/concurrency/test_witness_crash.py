"""kill -9 of `vouchers witness serve` (master and worker at once) while it
works, then a restart on the same directory: its state is the old or the new
checkpoint, whole (size, root and follower agree), and it resumes: the next
request with the right old size is cosigned, an inconsistent one refused."""
from __future__ import annotations

import random
import threading
import time

import pytest
from tlog_fixture import TLog, TLogServer
from witness_process import WitnessProcess

from voucher_service.ledger.tlog_witness import request_body
from voucher_service.ledger.verify.follow import Follower

TOKEN = "auditor-token-for-the-crash-test"
KILLS = 3


class GatedLines(list):
    """The log's export lines; while the gate is shut, reading entries blocks (a
    slow log), so the witness can be killed in the middle of its fetch."""

    def __init__(self, lines):
        super().__init__(lines)
        self.open, self.entered = threading.Event(), threading.Event()
        self.open.set()

    def __getitem__(self, index):
        if isinstance(index, slice):
            self.entered.set()
            self.open.wait(timeout=120)
        return super().__getitem__(index)


def assert_whole(witness: WitnessProcess, log: TLog, allowed_sizes) -> int:
    """The stored state after a crash: one of the allowed sizes, the log's root at it,
    and (verifying mode) a follower at exactly that size and root."""
    witness.state.check()  # SQLite: not damaged
    held = witness.state.latest(log.origin)
    assert held.size in allowed_sizes, (held.size, allowed_sizes)
    assert held.root == log.root(held.size)
    if held.size:
        follower = Follower.from_state(held.follower)
        assert (follower.size, follower.root(), held.follower_size) == (held.size, held.root, held.size)
    return held.size


def test_kill_9_in_a_tight_loop_of_requests(tmp_path):
    log = TLog(origin="vouchers.test/crash-loop")
    log.several(400)
    with TLogServer(log, token=TOKEN) as server:
        witness = WitnessProcess(tmp_path / "d").init()
        witness.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
        witness.start()
        rng = random.Random(15)
        acknowledged = 0
        try:
            for kill in range(KILLS):
                if log.size - acknowledged < 100:
                    log.several(400)  # a fast machine cosigns all of it within a few kills: never run dry
                progress = {"acknowledged": acknowledged, "in_flight": None}
                stop = threading.Event()

                def publisher():
                    current = progress["acknowledged"]
                    while not stop.is_set() and current < log.size:
                        new = min(log.size, current + rng.randint(1, 6))
                        progress["in_flight"] = new
                        try:
                            answer = witness.add_checkpoint(log, current, new)
                        except OSError:
                            return  # killed under it: this one may or may not have been stored
                        assert answer.status == 200, answer.text
                        progress["acknowledged"] = current = new
                        progress["in_flight"] = None

                def noise():  # stale and wrong requests: evidence written at the same time
                    stale = request_body(0, [], log.checkpoint(log.size))
                    while not stop.is_set():
                        try:
                            witness.post(stale, timeout_s=10)
                        except OSError:
                            return

                threads = [threading.Thread(target=publisher), *[threading.Thread(target=noise) for _ in range(3)]]
                for thread in threads:
                    thread.start()
                time.sleep(0.8 + rng.random())
                witness.kill()
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
                assert progress["acknowledged"] > acknowledged, "nothing was cosigned before the kill"
                allowed = {progress["acknowledged"]} | ({progress["in_flight"]} - {None})
                acknowledged = assert_whole(witness, log, allowed)

                witness.start()
                # An inconsistent request is refused, the right one cosigned.
                if acknowledged < log.size:
                    wrong = [b"\x07" * 32] * len(log.consistency(acknowledged, log.size))
                    assert witness.add_checkpoint(log, acknowledged, log.size, proof=wrong).status == 422
                    nxt = acknowledged + 1
                    witness.cosigned_timestamp(log.checkpoint(nxt), witness.add_checkpoint(log, acknowledged, nxt))
                    acknowledged = nxt
        finally:
            witness.stop()


def test_kill_9_while_it_reads_the_entries_cosigns_nothing_and_resumes(tmp_path):
    log = TLog(origin="vouchers.test/crash-fetch")
    log.several(5)
    with TLogServer(log, token=TOKEN) as server:
        witness = WitnessProcess(tmp_path / "d").init()
        witness.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
        witness.start()
        try:
            assert witness.add_checkpoint(log, 0).status == 200
            log.several(5)
            log.lines = gated = GatedLines(log.lines)
            gated.open.clear()
            outcome = []
            sender = threading.Thread(target=lambda: outcome.append(_post_or_error(witness, log, 5)))
            sender.start()
            assert gated.entered.wait(timeout=60), "the witness never read the entries"
            witness.kill()
            gated.open.set()
            sender.join(timeout=60)
            assert outcome and isinstance(outcome[0], OSError), outcome
            assert_whole(witness, log, {5})

            witness.start()
            seen = len(server.requests)
            witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, 5))
            assert [p for p in server.requests[seen:] if "/export" in p] == ["/api/v1/ledger/export?start=5&end=10"]
            assert_whole(witness, log, {10})
            log.several(3)
            log.edit(11, lambda entry: entry["data"].update(face_value_fen=1))
            answer = witness.add_checkpoint(log, 10)
            assert answer.status == 422 and "seq 11" in answer.text
            assert_whole(witness, log, {10})
        finally:
            witness.stop()


def _post_or_error(witness, log, old):
    try:
        return witness.add_checkpoint(log, old)
    except OSError as exc:
        return exc


@pytest.mark.parametrize("stop", ["graceful", "kill -9"])
def test_a_restart_mid_stream_resumes_without_cosigning_anything_inconsistent(tmp_path, stop):
    log = TLog(origin="vouchers.test/restart")
    with TLogServer(log, token=TOKEN) as server:
        witness = WitnessProcess(tmp_path / "d").init()
        witness.add_log(log.origin, log.log_vkey, server.base_url, TOKEN, cli=False)
        witness.start()
        try:
            cosigned = 0
            for _ in range(3):
                log.several(4)
                assert witness.add_checkpoint(log, cosigned).status == 200
                cosigned = log.size
            witness.stop() if stop == "graceful" else witness.kill()
            witness.start()
            seen = len(server.requests)
            # Another history from before the cosigned size, signed by the log key: its own proof is valid
            # for it, not from the root this witness holds.
            other = log.fork(cosigned - 3)
            other.fund("GZ", 1_234)
            other.several(6)
            assert witness.add_checkpoint(other, cosigned).status == 422
            # At the cosigned size itself: 409, a fork.
            assert witness.add_checkpoint(other, cosigned, cosigned, proof=[]).status == 409
            log.several(2)
            witness.cosigned_timestamp(log.checkpoint(), witness.add_checkpoint(log, cosigned))
            assert [p for p in server.requests[seen:] if "/export" in p] == [
                f"/api/v1/ledger/export?start={cosigned}&end={log.size}"], "it did not resume where it was"
            assert_whole(witness, log, {log.size})
            assert {e["kind"] for e in witness.state.evidence(log.origin)} == {"bad-proof", "fork"}
        finally:
            witness.stop()
