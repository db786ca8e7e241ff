"""Reconciliation: a region's signed statement for a period, on a ledger of 1M
entries, on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_reconciliation.py [--quick] [--entries 1000000] [--repeat 3]
        [--no-postgres] [--profile]

On the cached benchmark ledger (bench/ledger_data.py: three regions, about 17
months of activity), for every region and two periods (the last full month
of the ledger and the quarter it is in): the statement as the API builds it
(reconciliation.build_statement in the API's snapshot session) and the whole
endpoint (GET /regions/{code}/reconciliation through the Flask test client,
in-process: auth, snapshot, statement, signature, JSON). Each is timed
`--repeat` times; reported: best and median, every check of the statement
must be ok. The baseline measured in the same run is the cost of reading
the region's postings once (SELECT count(*), sum(amount_fen) over its rows of
ledger_posting), the least any statement over all time must do.
Target: <= 2 s at 1M entries.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import REPO, RESULTS_DIR, ForeignCpu, Report, build_app, foreign_note, postgres_available, wait_until_quiet  # noqa: E402
from ledger_data import auditor_token, ensure_ledger, ensure_postgres_ledger, keys_dir, ledger_url  # noqa: E402


def periods_of(session) -> list[str]:
    from sqlmodel import text
    last = session.exec(text("SELECT max(ts) FROM ledger_entry")).one()[0]
    moment = datetime.fromisoformat(last.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return [f"{year}-{month:02d}", f"{year}-Q{(month - 1) // 3 + 1}"]


def bench_database(label: str, url: str, args, report: Report) -> dict:
    from sqlmodel import text

    from voucher_service.db import get_engine, get_session
    from voucher_service.payout.api.reconciliation import snapshot
    from voucher_service.payout.reconciliation import build_statement
    app = build_app(url, keys_dir())
    token = auditor_token(app)
    client = app.test_client()
    figures = {}
    with app.test_request_context():
        session = get_session()
        size = session.exec(text("SELECT size FROM ledger_head")).one()[0]
        periods = periods_of(session)
        regions = [r for (r,) in session.exec(text("SELECT code FROM region ORDER BY code"))]
        baseline = {}
        for region in regions:
            started = time.perf_counter()
            session.exec(text("SELECT count(*), sum(amount_fen) FROM ledger_posting WHERE region = :r")
                         .bindparams(r=region)).one()
            baseline[region] = time.perf_counter() - started
        session.rollback()
    report.line(f"[{label}] ledger of {size:,} entries; periods {', '.join(periods)}")
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    for period in periods:
        for region in regions:
            domain, endpoint, counts = [], [], {}
            for _ in range(args.repeat):
                with app.test_request_context():
                    started = time.perf_counter()
                    with snapshot() as session:
                        statement = build_statement(session, region, period)
                    domain.append(time.perf_counter() - started)
                bad = [c["name"] for c in statement["checks"] if not c["ok"]]
                if bad:
                    raise SystemExit(f"{label} {region} {period}: failing checks {bad}")
                started = time.perf_counter()
                response = client.get(f"/api/v1/regions/{region}/reconciliation?period={period}",
                                      headers={"Authorization": f"Bearer {token}"})
                endpoint.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{label} {region} {period}: {response.status_code} {response.get_data()}")
                counts = {"redeemed_fen": statement["totals"]["redeemed_fen"]}
            with app.test_request_context():
                session = get_session()
                postings = session.exec(text("SELECT count(*) FROM ledger_posting WHERE region = :r")
                                        .bindparams(r=region)).one()[0]
                session.rollback()
            key = f"{region} {period}"
            figures[key] = {"statement_best_s": min(domain), "statement_median_s": statistics.median(domain),
                            "endpoint_best_s": min(endpoint), "endpoint_median_s": statistics.median(endpoint),
                            "region_postings": postings, "baseline_scan_s": baseline[region], **counts}
            report.line(f"   {region} {period:<8} statement best {min(domain):6.3f} s, median "
                        f"{statistics.median(domain):6.3f} s; endpoint median {statistics.median(endpoint):6.3f} s; "
                        f"{postings:,} postings of {region} (one scan of them: {baseline[region]:.3f} s, "
                        f"{statistics.median(domain) / baseline[region]:.1f}x); all {len(statement['checks'])} "
                        f"checks ok")
    usage = foreign.stop()
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    worst = max(v["endpoint_median_s"] for v in figures.values())
    report.target(f"{label} statement at {size:,} entries (worst endpoint median)", worst, 2.0,
                  higher_is_better=False, unit=" s")
    if args.profile:
        from pyinstrument import Profiler
        region, period = max(figures, key=lambda k: figures[k]["statement_median_s"]).split()
        profiler = Profiler(interval=0.001)
        with app.test_request_context():
            profiler.start()
            with snapshot() as session:
                build_statement(session, region, period)
            profiler.stop()
        path = os.path.join(RESULTS_DIR, f"profile-reconciliation-{label.lower()}.txt")
        with open(path, "w") as handle:
            handle.write(profiler.output_text(unicode=False, color=False))
        report.line(f"   profile of {region} {period}: {os.path.relpath(path, REPO)}")
    with app.app_context():
        get_engine().dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries, 1 repeat")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.repeat = 100_000, 1
    report = Report("reconciliation")
    ensure_ledger(args.entries)
    report.figure("sqlite", bench_database("SQLite", ledger_url(args.entries), args, report))
    if not args.no_postgres and postgres_available():
        report.figure("postgres", bench_database("PostgreSQL", ensure_postgres_ledger(args.entries), args, report))
    report.save()


if __name__ == "__main__":
    main()
