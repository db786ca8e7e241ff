"""--jobs N: the per-line checks (UTF-8, canonical form, shape, key validity,
signature, leaf hash) in N worker processes over chunks of the file cut at
line boundaries, while this process replays seq order, balances and the
running tree from their compact results, chunk by chunk in file order: the
same checks, the same first failing seq and message, a bounded number of
chunks in flight.

The workers find `_init_worker` and `_check_chunk` by this module's name,
which is the same however the verifier was started (`python -m`, or the
`ledger` folder copied and run alone), whatever the start method.
"""
from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import BinaryIO, Iterator

from .. import merkle
from ..policy import Policy
from .common import MAX_LINE_BYTES, VerificationError
from .entries import check_line, posting_tuples
from .keys import KeySet
from .replay import Replay, Summary

CHUNK_BYTES = 4 << 20             # the export is checked in pieces of about this size

_sha256 = hashlib.sha256


def export_chunks(handle: BinaryIO, chunk_bytes: int, *, with_data: bool) -> Iterator[tuple]:
    """(first index, offset, length, lines, data or None) of consecutive pieces of the file of about
    `chunk_bytes`, each ending after a newline (the last one may not). `data` is the piece itself when
    `with_data` (standard input), else None (the worker reads it from the file).

    As files.read_lines: a line longer than an entry may be ends the export there; it is
    sent cut at the same length, for the worker to refuse it at its seq.
    """
    offset = index = 0
    buffer = b""
    eof = False
    while True:
        while not eof and len(buffer) < chunk_bytes:
            more = handle.read(chunk_bytes - len(buffer))
            eof = not more
            buffer += more
        if not buffer:
            return
        cut = buffer.rfind(b"\n") + 1
        if cut == 0:
            if len(buffer) > MAX_LINE_BYTES + 1:
                yield index, offset, MAX_LINE_BYTES + 2, 1, buffer[:MAX_LINE_BYTES + 2]
                return
            if not eof:  # one line longer than a chunk: read on to its end
                more = handle.read(chunk_bytes)
                eof = not more
                buffer += more
                continue
            cut = len(buffer)  # the last line, without a newline
        count = buffer.count(b"\n", 0, cut) + (buffer[cut - 1] != 10)  # 10: b"\n"
        yield index, offset, cut, count, buffer[:cut] if with_data else None
        index += count
        offset += cut
        buffer = buffer[cut:]


_WORKER: dict = {}


def _init_worker(keys: KeySet, wanted: set, path: str | None, stop) -> None:
    _WORKER.update(keys=keys, wanted=wanted, path=path, handle=None, stop=stop)


def _check_chunk(task: tuple) -> tuple:
    """In a worker: check_entry on every line of one chunk, and leaf hashes. Returns
    (first index, leaf hashes end to end, [(index, postings)], {size: ts}, failure or None), the
    failure as (why, seq, where) of the first bad line; lines after it are not looked at.
    Once the parent has found a failure (`stop`), chunks still queued are skipped."""
    first, offset, length, count, data = task
    keys, wanted, stop = _WORKER["keys"], _WORKER["wanted"], _WORKER["stop"]
    if stop.is_set():
        return first, b"", [], {}, None
    if data is None:
        if _WORKER["handle"] is None:
            _WORKER["handle"] = open(_WORKER["path"], "rb")
        handle = _WORKER["handle"]
        handle.seek(offset)
        data = handle.read(length)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if len(data) != length or len(lines) != count:
        return first, b"", [], {}, ("the export changed while it was being verified", None, "export")
    leaves, postings, ts_at = [], [], {}
    for index, line in enumerate(lines, first):
        try:
            entry = check_line(line, index, keys)
        except VerificationError as exc:
            return first, b"".join(leaves), postings, ts_at, (exc.why, exc.seq, exc.where)
        leaves.append(_sha256(merkle.LEAF_PREFIX + line).digest())
        if entry["postings"]:
            postings.append((index, posting_tuples(entry)))
        if index + 1 in wanted:
            ts_at[index + 1] = entry["ts"]
    return first, b"".join(leaves), postings, ts_at, None


def _pool_context(start_method: str | None):
    """fork where it is safe and available (Linux, no other thread yet: it starts fastest), else spawn."""
    if start_method:
        return multiprocessing.get_context(start_method)
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


# The checks are CPU-bound: beyond a few processes a CPU, more only cost memory
# (about 80 MiB each). A reviewer's `--jobs 100000` ran a 24 GiB machine out of it.
MAX_JOBS_PER_CPU = 4


def cpu_jobs(jobs: int) -> int:
    """--jobs: 0 means one per CPU this process may use; at most MAX_JOBS_PER_CPU a CPU."""
    if jobs < 0:
        raise ValueError("--jobs must be 0 (one per CPU) or more")
    try:
        cpus = len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(jobs, MAX_JOBS_PER_CPU * cpus) if jobs else cpus


def verify_export_parallel(handle: BinaryIO, path: str | None, checkpoint_note: str, keys: KeySet,
                           previous_checkpoint_note: str | None = None, *, jobs: int = 2,
                           chunk_bytes: int = CHUNK_BYTES, start_method: str | None = None,
                           policy: Policy | None = None) -> Summary:
    """verify_export, with the per-line checks in `jobs` worker processes.

    `handle` is read here, once, to cut the export into chunks at line
    boundaries; the workers read their chunk from `path` (or get it in the
    task when `path` is None, as for standard input). At most 2 × jobs chunks
    are in flight, and their results are replayed in file order. A worker's
    failure is reported only once every chunk before it has been replayed
    without one, so the first bad seq is the one a single process reports.
    After a failure no new chunk is sent and the workers skip the ones already
    sent. A worker that dies (killed, out of memory) breaks the pool, which
    `concurrent.futures` notices whatever the worker was doing: the command
    says so and stops, it never waits for ever.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    replay = Replay(checkpoint_note, keys, previous_checkpoint_note, policy)
    context = _pool_context(start_method)
    stop_workers = context.Event()
    failure: VerificationError | None = None
    chunks = export_chunks(handle, chunk_bytes, with_data=path is None)
    in_flight: collections.deque = collections.deque()
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                   initargs=(keys, replay.wanted, path, stop_workers))
    try:
        while True:
            while failure is None and len(in_flight) < 2 * jobs:
                task = next(chunks, None)
                if task is None:
                    break
                in_flight.append(executor.submit(_check_chunk, task))
            if not in_flight:
                break
            first, leaves, postings, ts_at, bad = in_flight.popleft().result()
            if failure is not None:
                continue  # draining the chunks in flight after a failure
            try:
                replay.chunk(first, leaves, postings, ts_at)
                if bad is not None:
                    why, seq, where = bad
                    raise VerificationError(why, seq=seq, where=where if seq is None else None)
            except VerificationError as exc:
                failure = exc
                stop_workers.set()
    except BrokenProcessPool:
        raise ChildProcessError("a worker process ended unexpectedly: the export was not verified") from None
    finally:
        stop_workers.set()
        executor.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    return replay.finish()
