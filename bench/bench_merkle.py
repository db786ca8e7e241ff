"""Merkle tree: the RFC 9162 root over 1M ledger entries, by the service's code
against raw hashlib over the same leaves and against pymerkle; and inclusion
and consistency proof latency at 1M entries, from the stored nodes of a real
ledger (SQLite, and PostgreSQL when it answers).

    .venv/bin/python bench/bench_merkle.py [--quick] [--leaves 1000000] [--proofs 2000]
        [--no-postgres] [--no-pymerkle]

Leaves are the canonical bytes of the entries of the cached benchmark ledger
(bench/ledger_data.py), so every implementation hashes the same data:

- service: merkle.leaf_hash for each entry, then merkle.root_from_leaves (the
  in-memory root the tests and tools use) and, separately, the offline
  verifier's running tree (verify.replay.RunningTree: append leaf by leaf);
- raw hashlib: the shortest Python loop that computes the same root (leaf
  hashes, then pairs level by level, an odd node carried up);
- pymerkle: InmemoryTree(sha256) with its RFC 9162 prefixes, append_entry for
  each entry, then get_root.

All three roots must be equal. Proofs: tree.inclusion_proof and
tree.consistency_proof (what the API calls) on random indexes/sizes of the 1M
tree, with a session of the service's own engine, and the same through the
HTTP endpoints (Flask test client in-process, no network), each proof
verified. A benchmark, not a test: nothing asserts a target.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ForeignCpu, Report, build_app, foreign_note, percentile, postgres_available, wait_until_quiet  # noqa: E402
from ledger_data import ensure_ledger, ensure_postgres_ledger, keys_dir, ledger_url  # noqa: E402

from voucher_service.ledger import merkle


def load_entries(size: int, leaves: int) -> list[bytes]:
    path = ensure_ledger(size)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT canonical FROM ledger_entry WHERE seq < ? ORDER BY seq", (leaves,)).fetchall()
    return [bytes(r[0]) for r in rows]


def raw_root(entries: list[bytes]) -> bytes:
    sha = hashlib.sha256
    level = [sha(b"\x00" + e).digest() for e in entries]
    while len(level) > 1:
        paired = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def service_root(entries: list[bytes]) -> bytes:
    return merkle.root_from_leaves([merkle.leaf_hash(e) for e in entries])


def verifier_root(entries: list[bytes]) -> bytes:
    from voucher_service.ledger.verify.replay import RunningTree
    tree = RunningTree()
    for e in entries:
        tree.append(merkle.leaf_hash(e))
    return tree.root()


def pymerkle_root(entries: list[bytes]) -> bytes:
    from pymerkle import InmemoryTree
    tree = InmemoryTree(algorithm="sha256")
    for e in entries:
        tree.append_entry(e)
    return tree.get_root()


def timed(function, *args, repeat: int = 1):
    """The value and the best time of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - started)
    return value, best


def proofs(report: Report, label: str, url: str, size: int, count: int, leaves_for_check: list[bytes] | None):
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.journal import tree
    app = build_app(url, keys_dir())
    rng = random.Random(7)
    figures = {}
    with app.app_context():
        engine = get_engine()
        with Session(engine) as session:
            root = tree.root_at(session, size)
            inclusion, consistency = [], []
            wait_until_quiet(report)
            foreign = ForeignCpu().start()
            for _ in range(count):
                index = rng.randrange(size)
                started = time.perf_counter()
                proof = tree.inclusion_proof(session, index, size)
                inclusion.append((time.perf_counter() - started) * 1000)
                if leaves_for_check is not None and index < len(leaves_for_check):
                    assert merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves_for_check[index]), proof, root)
                first = rng.randrange(1, size)
                started = time.perf_counter()
                proof = tree.consistency_proof(session, first, size)
                consistency.append((time.perf_counter() - started) * 1000)
                assert merkle.verify_consistency(first, size, tree.root_at(session, first), root, proof)
            usage = foreign.stop()
        # Through the endpoints, in-process: the view, its schema, the session per request.
        client = app.test_client()
        http = {"inclusion": [], "consistency": []}
        for _ in range(count):
            index, first = rng.randrange(size), rng.randrange(1, size)
            for name, path in (("inclusion", f"/api/v1/ledger/proofs/inclusion?index={index}&tree_size={size}"),
                               ("consistency", f"/api/v1/ledger/proofs/consistency?first={first}&second={size}")):
                started = time.perf_counter()
                response = client.get(path)
                http[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.get_data(as_text=True)
        engine.dispose()
    for name, samples in (("inclusion", inclusion), ("consistency", consistency),
                          ("inclusion over HTTP", http["inclusion"]), ("consistency over HTTP", http["consistency"])):
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        figures[name] = {"p50_ms": p50, "p99_ms": p99, "max_ms": max(samples), "count": len(samples)}
        report.line(f"   {label} {name:<22} at {size:,} entries: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
                    f"(max {max(samples):.2f} ms, {len(samples)} proofs)")
        report.target(f"{label} {name} p99", p99, 5.0, higher_is_better=False, unit=" ms")
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k leaves, 300 proofs")
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-pymerkle", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.leaves, args.proofs = min(args.leaves, 100_000), min(args.proofs, 300)
    size = 1_000_000 if args.leaves > 300_000 else (300_000 if args.leaves > 100_000 else 100_000)
    report = Report("merkle")
    entries = load_entries(size, args.leaves)
    n = len(entries)
    report.line(f"root over {n:,} ledger entries, best of 3 runs, pymerkle 1 run "
                f"({sum(map(len, entries)) / n:.0f} bytes each on average)")
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    expected, raw_s = timed(raw_root, entries, repeat=3)
    root, service_s = timed(service_root, entries, repeat=3)
    running, verifier_s = timed(verifier_root, entries, repeat=3)
    assert root == expected == running, "the roots differ"
    figures = {"leaves": n, "raw_hashlib_s": raw_s, "service_root_from_leaves_s": service_s,
               "verifier_running_tree_s": verifier_s}
    report.line(f"   raw hashlib                       {raw_s:7.2f} s  ({n / raw_s:,.0f} leaves/s)")
    report.line(f"   service merkle.root_from_leaves   {service_s:7.2f} s  ({n / service_s:,.0f} leaves/s)  "
                f"raw/service = {raw_s / service_s:.2f}x")
    report.line(f"   verifier RunningTree              {verifier_s:7.2f} s  ({n / verifier_s:,.0f} leaves/s)  "
                f"raw/verifier = {raw_s / verifier_s:.2f}x")
    if not args.no_pymerkle:
        other, pymerkle_s = timed(pymerkle_root, entries)
        assert other == root, "pymerkle's root differs"
        figures["pymerkle_s"] = pymerkle_s
        report.line(f"   pymerkle InmemoryTree             {pymerkle_s:7.2f} s  ({n / pymerkle_s:,.0f} leaves/s)  "
                    f"pymerkle/service = {pymerkle_s / service_s:.1f}x")
    usage = foreign.stop()
    figures["foreign_cpu"] = usage
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    report.target("root: service speed / raw hashlib speed", raw_s / service_s, 0.5, unit="x")
    report.target("root: verifier running tree / raw hashlib", raw_s / verifier_s, 0.5, unit="x")
    if "pymerkle_s" in figures:
        report.target("root: service speed / pymerkle speed", figures["pymerkle_s"] / service_s, 5.0, unit="x")
    report.figure("root", figures)
    del entries
    gc.collect()

    check_entries = load_entries(size, size) if args.proofs else None
    report.line(f"proofs from stored nodes at {size:,} entries")
    report.figure("proofs_sqlite", proofs(report, "SQLite", ledger_url(size), size, args.proofs, check_entries))
    if not args.no_postgres and postgres_available():
        url = ensure_postgres_ledger(size)
        report.figure("proofs_postgres", proofs(report, "PostgreSQL", url, size, args.proofs, check_entries))
    report.save()


if __name__ == "__main__":
    main()
