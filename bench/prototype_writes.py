"""What-if for the write path: how fast reservations can be written when the
ledger lock is held only for a few short statements (the patch proposed in
docs/performance.md), prototyped here without HTTP (bench/ only; the service
is not changed).

    .venv/bin/python bench/prototype_writes.py [--quick] [--seconds 10] [--processes 5]
        [--databases sqlite,postgres] [--batch N]

`--batch N` writes N reservations per transaction (one lock, one COMMIT):
what group commit would give. PostgreSQL's own CPU is sampled meanwhile.

On a database prepared exactly as bench_writes.py prepares the service's (the
same SMEs and vouchers), each of `--processes` worker processes loops for
`--seconds`, every iteration one reservation written as the proposed lean
path would write it, with the service's own ledger code (Entry, Posting,
sign_entry, leaf_hash, merkle.nodes_for_append) and its tables, in one
transaction:

    UPDATE ledger_head SET size = size + 1 ... RETURNING size - 1  (the lock, and the seq)
    UPDATE voucher SET available_fen = available_fen - a, held_fen = held_fen + a
        WHERE id = v AND status = 'active' AND available_fen >= a RETURNING ...
    INSERT redemption; INSERT ledger_entry; INSERT ledger_node (1 or more rows);
    INSERT ledger_ref (4 rows); INSERT ledger_posting;
    UPDATE account SET balance_fen = balance_fen + CASE name ... END WHERE name IN (...) RETURNING
        (both accounts at once; an INSERT for an account's first posting)
    COMMIT

Provider, catalogue item, policy and the region's active key are read once per
process (the proposal keeps them in a per-process cache checked against a
version read with the lock). Reported: reservations per second, the time the
lock is held (from the head UPDATE to the end of COMMIT), process CPU per
reservation; then the service's invariant checks (signatures, seq, Merkle
nodes, balances) run over the result, so the rows are the service's rows.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    _TICK,
    CACHE_DIR,
    PASSPHRASE,
    ForeignCpu,
    Report,
    _proc_table,
    build_app,
    create_pg_database,
    drop_pg_database,
    foreign_note,
    is_database_process,
    postgres_available,
    wait_until_quiet,
)


def connect(url: str):
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split("///", 1)[1], timeout=30, isolation_level=None)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=30000"):
            db.execute(f"PRAGMA {pragma}")
        return db, "?"
    import psycopg
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")), "%s"


class DatabaseCpu(threading.Thread):
    """CPU time of PostgreSQL's processes while the writers run. Sampled, since a
    backend's time leaves /proc with it when its writer disconnects."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopped, self.seen = threading.Event(), {}

    def _sample(self):
        for pid, (_ppid, comm, cpu) in _proc_table().items():
            if is_database_process(comm):
                self.seen[pid] = cpu

    def start(self) -> "DatabaseCpu":
        self._sample()
        self.before = dict(self.seen)
        super().start()
        return self

    def run(self):
        while not self.stopped.wait(0.1):
            self._sample()

    def stop(self) -> float:
        self.stopped.set()
        self.join()
        self._sample()
        return sum(cpu - self.before.get(pid, 0) for pid, cpu in self.seen.items()) / _TICK


def worker(url: str, keys_dir: str, items: list, seconds: float, number: int, out, pipelined: bool,
           batch: int = 1) -> None:
    from voucher_service.clock import new_id, rfc3339, utc_now
    from voucher_service.journal.keys import KeyRing
    from voucher_service.ledger import Entry, Posting, leaf_hash, merkle, sign_entry

    db, p = connect(url)
    sqlite = url.startswith("sqlite")
    keyring = KeyRing(keys_dir, PASSPHRASE)
    keys = {region: keyring.load(key_id) for key_id, region in
            db.execute("SELECT key_id, region FROM signing_key WHERE valid_until IS NULL").fetchall()}
    if not sqlite:
        db.commit()
    done, held, cpu = 0, 0.0, time.process_time()
    deadline = time.monotonic() + seconds
    index = number * 7919
    while time.monotonic() < deadline:
        if sqlite:
            db.execute("BEGIN IMMEDIATE")
        locked = None
        # --batch: group commit, modelled as one transaction (one lock, one COMMIT) for `batch` reservations
        for _ in range(batch):
            index += 1
            body = items[index % len(items)]
            voucher_id, amount = body["voucher_id"], body["amount_fen"]
            (seq,) = db.execute("UPDATE ledger_head SET size = size + 1 WHERE id = 1 RETURNING size - 1").fetchone()
            if locked is None:
                locked = time.perf_counter()  # the lock is ours from here (PostgreSQL) or from BEGIN IMMEDIATE (SQLite)
            row = db.execute(f"UPDATE voucher SET available_fen = available_fen - {p}, held_fen = held_fen + {p} "
                             f"WHERE id = {p} AND status = 'active' AND available_fen >= {p} "
                             f"RETURNING region, enterprise_id", (amount, amount, voucher_id, amount)).fetchone()
            region, enterprise_id = row
            now = rfc3339(utc_now())
            rid = new_id("rdm")
            refs = {"redemption": rid, "voucher": voucher_id, "enterprise": enterprise_id,
                    "provider": body["provider_id"]}
            postings = (Posting(f"voucher:{voucher_id}", f"voucher:{voucher_id}:held", amount),)
            entry = Entry(seq=seq, ts=now, kind="redemption.reserved", region=region, actor=f"bench:{enterprise_id}",
                          refs=refs, postings=postings,
                          data={"catalog_code": body["catalog_code"], "service_fee_fen": body["service_fee_fen"],
                                "amount_fen": amount})
            key = keys[region]
            signed = sign_entry(entry, key)
            leaf = leaf_hash(signed)

            def read(nodes):
                ids = [merkle.node_key(n) for n in nodes]
                found = dict(db.execute(f"SELECT id, hash FROM ledger_node WHERE id IN ({','.join([p] * len(ids))})",
                                        ids).fetchall())
                return [bytes(found[i]) for i in ids]

            nodes = merkle.nodes_for_append(seq, leaf, read)
            # PostgreSQL: the rest in one round trip (psycopg pipeline mode); SQLite has no round trips.
            pipeline = db.pipeline() if not sqlite and pipelined else contextlib.nullcontext()
            with pipeline:
                balances = write_rows(db, p, rid, voucher_id, enterprise_id, body, region, amount, now, seq, entry, key,
                                      signed, leaf, nodes, refs, postings, merkle)
            if any(balance < 0 for _name, balance in balances):
                raise RuntimeError("a balance went negative")
        if sqlite:
            db.execute("COMMIT")
        else:
            db.commit()
        held += time.perf_counter() - locked
        done += batch
    out.put({"done": done, "held_s": held, "cpu_s": time.process_time() - cpu})


def write_rows(db, p, rid, voucher_id, enterprise_id, body, region, amount, now, seq, entry, key, signed, leaf, nodes,
               refs, postings, merkle):
    if True:
        db.execute(f"INSERT INTO redemption (id, voucher_id, enterprise_id, provider_id, region, catalog_code, "
                   f"service_fee_fen, amount_fen, status, reserved_at) VALUES ({', '.join([p] * 10)})",
                   (rid, voucher_id, enterprise_id, body["provider_id"], region, body["catalog_code"],
                    body["service_fee_fen"], amount, "reserved", now))
        db.execute(f"INSERT INTO ledger_entry (seq, ts, kind, region, actor, key_id, canonical, leaf_hash) "
                   f"VALUES ({', '.join([p] * 8)})",
                   (seq, now, "redemption.reserved", region, entry.actor, key.key_id, signed, leaf))
        db.execute(f"INSERT INTO ledger_node (id, hash) VALUES {', '.join([f'({p}, {p})'] * len(nodes))}",
                   [v for node, value in nodes for v in (merkle.node_key(node), value)])
        ref_values = sorted(set(refs.values()))
        db.execute(f"INSERT INTO ledger_ref (seq, ref) VALUES {', '.join([f'({p}, {p})'] * len(ref_values))}",
                   [v for ref in ref_values for v in (seq, ref)])
        db.execute(f"INSERT INTO ledger_posting (seq, position, ts, kind, region, source, destination, amount_fen) "
                   f"VALUES ({', '.join([p] * 8)})",
                   (seq, 0, now, "redemption.reserved", region, postings[0].source, postings[0].destination, amount))
        deltas = {postings[0].source: -amount, postings[0].destination: amount}
        names = list(deltas)
        cursor = db.execute(
            f"UPDATE account SET balance_fen = balance_fen + CASE name WHEN {p} THEN {p} WHEN {p} THEN {p} END "
            f"WHERE name IN ({p}, {p}) RETURNING name, balance_fen",
            (names[0], deltas[names[0]], names[1], deltas[names[1]], names[0], names[1]))
        if hasattr(db, "pipeline") and db._pipeline is not None:
            db._pipeline.sync()  # the RETURNING rows are needed now: one round trip for everything so far
        balances = cursor.fetchall()
        missing = set(names) - {name for name, _balance in balances}
        for name in missing:  # an account's first posting (the held account of a fresh voucher)
            db.execute(f"INSERT INTO account (name, balance_fen) VALUES ({p}, {p})", (name, deltas[name]))
        return balances


def run(kind: str, args, report: Report, scratch: str) -> dict:
    import bench_writes
    url = (f"sqlite:///{os.path.join(scratch, 'lean.db')}" if kind == "sqlite"
           else create_pg_database("lean"))
    keys_dir = os.path.join(scratch, f"keys-{kind}")
    try:
        items = [json.loads(body) for _token, body in bench_writes.prepare_service(url, keys_dir)]
        _count, size_before = bench_writes.count_redemptions(url, keys_dir)
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        wait_until_quiet(report)
        foreign = ForeignCpu().start()
        database_cpu = DatabaseCpu().start()
        started = time.perf_counter()
        processes = [context.Process(target=worker, args=(url, keys_dir, items, args.seconds, n, out,
                                                                    not args.no_pipeline, args.batch))
                     for n in range(args.processes)]
        for process in processes:
            process.start()
        results = [out.get(timeout=args.seconds + 120) for _ in processes]
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - started
        usage = foreign.stop()
        done = sum(r["done"] for r in results)
        database_ms = database_cpu.stop() * 1000 / done
        held_ms = sum(r["held_s"] for r in results) / done * 1000
        cpu_ms = sum(r["cpu_s"] for r in results) / done * 1000
        rate = done / elapsed
        batched = f", {args.batch} per transaction" if args.batch > 1 else ""
        report.line(f"   [{kind}] lean write path, {args.processes} processes{batched}, no HTTP: {rate:,.0f} "
                    f"reservations/s; lock held {held_ms:.2f} ms per reservation on average (so at most {1000 / held_ms:,.0f}/s); "
                    f"{cpu_ms:.2f} ms CPU per reservation in the writer")
        if kind == "postgres":
            report.line(f"      PostgreSQL's own CPU per reservation: {database_ms:.2f} ms (writers and PostgreSQL "
                        f"together: {cpu_ms + database_ms:.2f} ms, so {os.cpu_count()} cores allow at most "
                        f"{os.cpu_count() * 1000 / (cpu_ms + database_ms):,.0f}/s)")
        if usage["cores"] >= 0.1:
            report.line(f"      {foreign_note(usage)}")
        from sqlmodel import Session

        from voucher_service.db import get_engine
        from voucher_service.journal.integrity import check_all
        app = build_app(url, keys_dir)
        with app.app_context(), Session(get_engine()) as session:
            problems = check_all(session)
            get_engine().dispose()
        _count, size_after = bench_writes.count_redemptions(url, keys_dir)
        report.line(f"      invariants.check_all over the {size_after:,} entries: "
                    f"{'no problems' if not problems else problems[:3]}; {size_after - size_before:,} written")
        return {"rate": rate, "lock_held_ms": held_ms, "cpu_ms": cpu_ms, "database_cpu_ms": database_ms if kind == "postgres" else None, "problems": len(problems)}
    finally:
        if kind == "postgres":
            drop_pg_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per database")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--no-pipeline", action="store_true", help="PostgreSQL: one round trip per statement")
    parser.add_argument("--batch", type=int, default=1, help="reservations per transaction (group commit: one lock "
                                                             "and one COMMIT for the batch)")
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 5)
    report = Report("prototype_writes")
    os.makedirs(CACHE_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="lean-", dir=CACHE_DIR)
    try:
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            if kind == "postgres" and not postgres_available():
                report.line("[postgres] SKIPPED: no PostgreSQL")
                continue
            report.figure(kind, run(kind, args, report, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.save()


if __name__ == "__main__":
    main()
