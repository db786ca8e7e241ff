"""Where a reservation's time goes: N reservations through the service's app in
this process (Flask test client, no network, no gunicorn, one at a time), on a
fresh SQLite or PostgreSQL database prepared as bench_writes.py does.

    .venv/bin/python bench/profile_reserve.py [--database postgres] [--requests 1000]
        [--profiler none|pyinstrument|py-spy] 2>/dev/null

Prints wall and CPU milliseconds per reservation (or voucher read, --read), the number of SQL statements
each sends (and how many of them run while the ledger lock is held), and with a
profiler the profile (also saved under bench/.cache/results/). The service
logs one line per request to stderr: send stderr elsewhere.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BIN, CACHE_DIR, RESULTS_DIR, build_app, create_pg_database, drop_pg_database,  # noqa: E402
                     postgres_available)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--profiler", choices=("none", "pyinstrument", "py-spy"), default="none")
    parser.add_argument("--quick", action="store_true", help="300 requests")
    parser.add_argument("--read", action="store_true", help="profile GET /vouchers/{id} instead (no ledger lock): "
                                                           "the fixed cost of any authenticated request")
    parser.add_argument("--rate-limit", action="store_true", help="keep flask-limiter on (the default service "
                                                                  "config; off here unless asked)")
    args = parser.parse_args()
    if args.quick:
        args.requests = min(args.requests, 300)
    import bench_writes
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    os.makedirs(RESULTS_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="profile-", dir=CACHE_DIR)
    if args.database == "postgres":
        if not postgres_available():
            print("SKIPPED: no PostgreSQL")
            return
        url = create_pg_database("profile")
    else:
        url = f"sqlite:///{scratch}/service.db"
    keys = os.path.join(scratch, "keys")
    try:
        items = bench_writes.prepare_service(url, keys)
        app = build_app(url, keys, RATELIMIT_ENABLED=args.rate_limit)
        client = app.test_client()
        counts = {"statements": 0, "locked": 0, "locked_now": False, "locked_at": None, "held_s": 0.0}
        with app.app_context():
            from voucher_service.db import get_engine
            engine = get_engine()

        @event.listens_for(engine, "before_cursor_execute")
        def _count(_conn, _cursor, statement, *_rest):
            counts["statements"] += 1
            if ("ledger_head" in statement and "FOR UPDATE" in statement.upper()) or \
                    statement.startswith("BEGIN IMMEDIATE"):  # PostgreSQL's row lock; SQLite's write lock
                counts["locked_now"] = True
                counts["locked_at"] = time.perf_counter()
            if counts["locked_now"]:
                counts["locked"] += 1

        @event.listens_for(engine, "commit")
        def _committed(_conn):
            counts["locked_now"] = False

        @event.listens_for(Session, "after_commit")
        def _released(_session):
            # After the database's COMMIT returned: the lock is free for the next writer.
            if counts["locked_at"] is not None:
                counts["held_s"] += time.perf_counter() - counts["locked_at"]
                counts["locked_at"] = None

        def reserve(n: int) -> None:
            for i in range(n):
                token, body = items[i % len(items)]
                if args.read:
                    response = client.get(f"/api/v1/vouchers/{json.loads(body)['voucher_id']}",
                                          headers={"Authorization": f"Bearer {token}"})
                    expected = 200
                else:
                    response = client.post("/api/v1/redemptions", data=body, headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                    expected = 201
                if response.status_code != expected:
                    raise RuntimeError(response.get_data(as_text=True))

        reserve(50)  # warm caches (compiled statements, keys)
        counts.update(statements=0, locked=0, held_s=0.0)
        profiler = None
        if args.profiler == "pyinstrument":
            from pyinstrument import Profiler
            profiler = Profiler(interval=0.0005)
            profiler.start()
        spy = None
        if args.profiler == "py-spy":
            raw = os.path.join(RESULTS_DIR, f"profile-{'read' if args.read else 'reserve'}-{args.database}.stacks")
            spy = subprocess.Popen([os.path.join(BIN, "py-spy"), "record", "--pid", str(os.getpid()), "--rate", "500",
                                    "--format", "raw", "--output", raw, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        wall, cpu = time.perf_counter(), time.process_time()
        reserve(args.requests)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        what = "voucher reads" if args.read else "reservations"
        print(f"{args.database}: {args.requests} {what} in-process: {args.requests / wall:,.0f}/s; per request "
              f"{wall / args.requests * 1000:.2f} ms wall, {cpu / args.requests * 1000:.2f} ms CPU of this process; "
              f"{counts['statements'] / args.requests:.1f} SQL statements, {counts['locked'] / args.requests:.1f} of "
              f"them under the ledger lock")
        if not args.read:
            held_ms = counts["held_s"] / args.requests * 1000
            print(f"ledger lock held {held_ms:.2f} ms per reservation (lock statement to COMMIT done): however "
                  f"many cores, writers queue on it, so at most {1000 / held_ms:,.0f} reservations/s")
        if profiler is not None:
            profiler.stop()
            text = profiler.output_text(unicode=False, color=False)
            path = os.path.join(RESULTS_DIR, f"profile-{'read' if args.read else 'reserve'}-{args.database}.txt")
            with open(path, "w") as handle:
                handle.write(text)
            print(text)
            print(f"(saved in {path})")
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
            from _stacks import summarise
            print(summarise(raw, top=40))
        with app.app_context():
            get_engine().dispose()
    finally:
        if args.database == "postgres":
            drop_pg_database(url)
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
