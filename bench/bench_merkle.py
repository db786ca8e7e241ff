"""Merkle tree costs at scale: root and proof latency from stored nodes, against
rehashing every leaf (the cost our stored subtree hashes avoid).

    .venv/bin/python bench/bench_merkle.py [--leaves 1000000] [--proofs 2000]

Stores the nodes of N leaves in a real SQLite table shaped like `ledger_node`,
then reads roots and proofs through the same batched reader the service uses.
Prints figures and ratios against a baseline measured in the same run. A
benchmark, not a test: nothing here asserts.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voucher_service.ledger import merkle  # noqa: E402

BATCH = 50_000


def build(db: sqlite3.Connection, leaves: int) -> list[bytes]:
    db.execute("CREATE TABLE ledger_node (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
    # An append only ever reads the latest node of each level (its left siblings).
    latest: dict[int, bytes] = {}
    leaf_hashes, rows = [], []
    for index in range(leaves):
        leaf = merkle.leaf_hash(index.to_bytes(8, "big"))
        leaf_hashes.append(leaf)
        for node, value in merkle.nodes_for_append(index, leaf, lambda nodes: [latest[n[0]] for n in nodes]):
            latest[node[0]] = value
            rows.append((merkle.node_key(node), value))
        if len(rows) >= BATCH:
            db.executemany("INSERT INTO ledger_node VALUES (?, ?)", rows)
            rows.clear()
    db.executemany("INSERT INTO ledger_node VALUES (?, ?)", rows)
    db.commit()
    return leaf_hashes


def reader(db: sqlite3.Connection, counter: list[int]):
    def read(nodes):
        counter[0] += 1
        keys = [merkle.node_key(n) for n in nodes]
        found = dict(db.execute(f"SELECT id, hash FROM ledger_node WHERE id IN ({','.join('?' * len(keys))})", keys))
        return [found[key] for key in keys]
    return read


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "nodes.db"))
        started = time.perf_counter()
        leaves = build(db, args.leaves)
        print(f"stored {args.leaves:,} leaves' nodes in {time.perf_counter() - started:.1f} s")
        reads = [0]
        read = reader(db, reads)

        started = time.perf_counter()
        stored_root = merkle.root(args.leaves, read)
        root_stored_s = time.perf_counter() - started
        started = time.perf_counter()
        rehashed_root = merkle.root_from_leaves(leaves)
        rehash_s = time.perf_counter() - started
        started = time.perf_counter()
        digest = hashlib.sha256
        for leaf in leaves:  # the raw hashing floor: one SHA-256 per node, no bookkeeping
            digest(b"\x01" + leaf + leaf).digest()
        raw_s = time.perf_counter() - started
        assert stored_root == rehashed_root
        print(f"root from stored nodes: {root_stored_s * 1000:.2f} ms ({reads[0]} query)")
        print(f"root by rehashing all leaves: {rehash_s:.2f} s (raw hashlib floor {raw_s:.2f} s); "
              f"rehash/raw = {rehash_s / raw_s:.2f}x, stored is {rehash_s / root_stored_s:,.0f}x faster")

        inclusion_ms, consistency_ms = [], []
        size = args.leaves
        for _ in range(args.proofs):
            index = rng.randrange(size)
            started = time.perf_counter()
            proof = merkle.inclusion_proof(index, size, read)
            inclusion_ms.append((time.perf_counter() - started) * 1000)
            assert merkle.verify_inclusion(index, size, leaves[index], proof, stored_root)
            first = rng.randrange(1, size)
            started = time.perf_counter()
            merkle.consistency_proof(first, size, read)
            consistency_ms.append((time.perf_counter() - started) * 1000)
        for name, samples in (("inclusion", inclusion_ms), ("consistency", consistency_ms)):
            print(f"{name} proof at {size:,} leaves: p50 {statistics.median(samples):.3f} ms, "
                  f"p99 {percentile(samples, 0.99):.3f} ms (target p99 <= 5 ms)")


if __name__ == "__main__":
    main()
