"""Integrity checks (journal/integrity_scan.py): what /readyz and a
reconciliation statement pay, on a ledger of 1M entries, on SQLite and on
PostgreSQL.

    .venv/bin/python bench/bench_integrity.py [--quick] [--entries 1000000] [--probes 200]
        [--repeat 3] [--no-postgres]

Readiness: GET /readyz through the Flask test client, in-process, --probes
times, each probe's window placed at a random point of the log (a probe's
cost depends on its window, not on where the rolling cursor happens to be);
and the probe's scan alone (ReadinessScan.probe). Baselines measured in the
same run: /readyz without the integrity scan (what it did before: SELECT 1
and the active keys), and one read of a window's entry bytes (SELECT seq,
canonical of window_entries rows: the least any check of a window reads).

Statement: build_statement in the API's snapshot session, for every region and
two periods (the last full month of the ledger and its quarter), with its
integrity checks and without them (the statement before this change, the
baseline), medians of --repeat runs; the checks' scan alone; the same range
scanned with every entry's rows compared, not only the region's (what parsing
every entry would cost, docs/decisions.md); one read of the period's entry
bytes.

Targets: /readyz p99 <= 50 ms ("tens of ms" for a probe every few seconds);
the statement with its checks <= 2 s (section 4's target, unchanged).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ForeignCpu, Report, build_app, foreign_note, percentile, postgres_available, wait_until_quiet  # noqa: E402,I001
from bench_reconciliation import periods_of  # noqa: E402
from ledger_data import ensure_ledger, ensure_postgres_ledger, keys_dir, ledger_url  # noqa: E402


class NoScan:
    """/readyz as it was before the integrity scan: nothing found, nothing covered."""

    def probe(self, _session):
        from voucher_service.journal.integrity_scan import Scan
        return Scan(), {}


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def bench_readiness(label: str, app, args, report: Report) -> dict:
    from sqlmodel import text

    from voucher_service.db import get_session
    from voucher_service.http.health import INTEGRITY_SCAN
    from voucher_service.journal.integrity_scan import ReadinessScan
    scan = ReadinessScan()
    window = scan.window_entries
    client = app.test_client()
    with app.test_request_context():
        size = get_session().exec(text("SELECT size FROM ledger_head")).one()[0]
    rng = random.Random(15)
    starts = [rng.randrange(0, size // window) * window for _ in range(args.probes)]
    assert client.get("/readyz").status_code == 200  # warm: keys decrypted, statements cached

    def probes(install) -> list[float]:
        samples = []
        for start in starts:
            install(start)
            samples.append(timed(lambda: client.get("/readyz")))
        return samples

    def with_scan(start):
        scan.next_start = start
        app.extensions[INTEGRITY_SCAN] = scan

    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    before = probes(lambda _start: app.extensions.__setitem__(INTEGRITY_SCAN, NoScan()))
    after = probes(with_scan)
    response = client.get("/readyz")
    if response.status_code != 200:
        raise SystemExit(f"{label}: /readyz {response.status_code}: {response.get_data(as_text=True)}")
    alone, read = [], []
    with app.test_request_context():
        session = get_session()
        for start in starts:
            scan.next_start = start
            alone.append(timed(lambda: scan.probe(session)))
            read.append(timed(lambda: session.connection().exec_driver_sql(
                f"SELECT seq, canonical FROM ledger_entry WHERE seq >= {start} AND seq < {start + window}").all()))
        session.rollback()
    usage = foreign.stop()
    figures = {
        "entries": size, "window_entries": window, "newest_entries": scan.newest_entries,
        "full_pass_probes": -(-size // window), "probes": args.probes,
        "readyz_before_p50_s": percentile(before, 0.5), "readyz_before_p99_s": percentile(before, 0.99),
        "readyz_p50_s": percentile(after, 0.5), "readyz_p99_s": percentile(after, 0.99),
        "scan_p50_s": percentile(alone, 0.5), "scan_p99_s": percentile(alone, 0.99),
        "window_read_p50_s": percentile(read, 0.5), "foreign_cores": usage["cores"],
    }
    report.line(f"[{label}] readiness at {size:,} entries: window {window}, newest {scan.newest_entries}; a whole "
                f"pass takes {figures['full_pass_probes']:,} probes")
    report.line(f"   GET /readyz p50 {ms(figures['readyz_p50_s'])}, p99 {ms(figures['readyz_p99_s'])}; without the "
                f"scan (baseline) p50 {ms(figures['readyz_before_p50_s'])}, p99 {ms(figures['readyz_before_p99_s'])}: "
                f"{figures['readyz_p50_s'] / figures['readyz_before_p50_s']:.1f}x at p50")
    report.line(f"   the scan alone p50 {ms(figures['scan_p50_s'])}, p99 {ms(figures['scan_p99_s'])}; one read of a "
                f"window's bytes (baseline) p50 {ms(figures['window_read_p50_s'])}: "
                f"{figures['scan_p50_s'] / figures['window_read_p50_s']:.1f}x")
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    report.target(f"{label} /readyz p99 at {size:,} entries", figures["readyz_p99_s"] * 1000, 50,
                  higher_is_better=False, unit=" ms")
    return figures


def bench_statements(label: str, app, args, report: Report) -> dict:
    from sqlmodel import text

    from voucher_service.db import get_session
    from voucher_service.journal import integrity_scan
    from voucher_service.payout.api.reconciliation import snapshot
    from voucher_service.payout.periods import parse_period
    from voucher_service.payout.reconciliation import build_statement
    with app.test_request_context():
        session = get_session()
        periods = periods_of(session)
        regions = [r for (r,) in session.exec(text("SELECT code FROM region ORDER BY code"))]
        session.rollback()
    real_scan = integrity_scan.statement_scan

    def statement(region, period, checked: bool) -> dict:
        integrity_scan.statement_scan = real_scan if checked else (lambda *_a, **_k: (integrity_scan.Scan(), None))
        try:
            with app.test_request_context(), snapshot() as session:
                return build_statement(session, region, period)
        finally:
            integrity_scan.statement_scan = real_scan

    figures = {}
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    for period in periods:
        start, end = parse_period(period).bounds_utc()
        for region in regions:
            without, with_checks, scans, reads, every = [], [], [], [], []
            for _ in range(args.repeat):
                without.append(timed(lambda: statement(region, period, False)))
                result = {}
                with_checks.append(timed(lambda: result.update(statement(region, period, True))))
                bad = [c["name"] for c in result["checks"] if not c["ok"]]
                if bad:
                    raise SystemExit(f"{label} {region} {period}: failing checks {bad}")
                with app.test_request_context(), snapshot() as session:
                    window = integrity_scan.period_window(session, start, end)
                    scans.append(timed(lambda: real_scan(session, region, start, end, None)))
                    reads.append(timed(lambda: session.connection().exec_driver_sql(
                        f"SELECT seq, canonical FROM ledger_entry WHERE seq >= {window[0]} "
                        f"AND seq < {window[1]}").all()))
                    every.append(timed(lambda: integrity_scan.scan_range(
                        session, *window, integrity_scan.signed_root(session, integrity_scan.Scan()),
                        integrity_scan.Scan())))
            key = f"{region} {period}"
            figures[key] = {"entries_in_period": window[1] - window[0],
                            "statement_without_checks_s": statistics.median(without),
                            "statement_s": statistics.median(with_checks), "scan_s": statistics.median(scans),
                            "bytes_read_s": statistics.median(reads)}
            line = (f"   {region} {period:<8} {window[1] - window[0]:>7,} entries: statement "
                    f"{figures[key]['statement_s']:.3f} s, without the checks (baseline) "
                    f"{figures[key]['statement_without_checks_s']:.3f} s: "
                    f"{figures[key]['statement_s'] / figures[key]['statement_without_checks_s']:.2f}x; the checks' "
                    f"scan {figures[key]['scan_s']:.3f} s, one read of the bytes {figures[key]['bytes_read_s']:.3f} s "
                    f"({figures[key]['scan_s'] / figures[key]['bytes_read_s']:.1f}x)")
            figures[key]["scan_every_entry_s"] = statistics.median(every)
            line += f"; every entry's rows compared {figures[key]['scan_every_entry_s']:.3f} s"
            report.line(line)
    usage = foreign.stop()
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    worst = max(v["statement_s"] for v in figures.values())
    report.target(f"{label} statement with its integrity checks (worst median)", worst, 2.0,
                  higher_is_better=False, unit=" s")
    return figures


def bench_database(label: str, url: str, args, report: Report) -> dict:
    from voucher_service.db import get_engine
    app = build_app(url, keys_dir())
    figures = {"readiness": bench_readiness(label, app, args, report),
               "statements": bench_statements(label, app, args, report)}
    with app.app_context():
        get_engine().dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries, 50 probes, 1 repeat")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.probes, args.repeat = 100_000, 50, 1
    report = Report("integrity")
    ensure_ledger(args.entries)
    report.figure("sqlite", bench_database("SQLite", ledger_url(args.entries), args, report))
    if not args.no_postgres and postgres_available():
        report.figure("postgres", bench_database("PostgreSQL", ensure_postgres_ledger(args.entries), args, report))
    report.save()


if __name__ == "__main__":
    main()
