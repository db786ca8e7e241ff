"""The audit trail's filters: GET /ledger/entries?kind=&region=&ref=&from=&to= on a
large ledger, with the indexes of migration 0006 and without them, on SQLite and
on PostgreSQL.

    .venv/bin/python bench/bench_entries.py [--quick] [--entries 1000000] [--repeat 30]
        [--no-postgres]

On a scratch copy of the cached benchmark ledger (bench/ledger_data.py), each
filter's first page (limit 100) is read through the service's own query code
(journal.api: EntriesArgs, filtered_entries, page_of_entries) `--repeat` times,
twice: with the ledger_entry indexes before migration 0006 (single-column kind
and region) and with those the models declare now ((kind, seq), (region, seq),
(ts, seq)). Reported: p50 and p99 of each, their ratio, and the ratio to the
baseline measured in the same run, the unfiltered first page (the least any
page costs: it reads, parses and returns 100 entries). Then the whole endpoint
through the Flask test client (auth, access filter, JSON) with the new
indexes, for an auditor and for an SME (whose visibility filter joins
ledger_ref). Target: every filtered page p99 <= 20 ms with the new indexes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (CACHE_DIR, ForeignCpu, Report, _pg_admin, build_app, drop_pg_database,  # noqa: E402
                     foreign_note, percentile, pg_url, postgres_available, wait_until_quiet)
from ledger_data import auditor_token, ensure_ledger, ensure_postgres_ledger, keys_dir, postgres_ledger_url  # noqa: E402

TARGET_P99_S = 0.020
PAGE = 100
# The ledger_entry indexes as migration 0005 left them, and as 0006 makes them.
OLD_INDEXES = {"ix_ledger_entry_kind": "(kind)", "ix_ledger_entry_region": "(region)"}
NEW_INDEXES = {"ix_ledger_entry_kind_seq": "(kind, seq)", "ix_ledger_entry_region_seq": "(region, seq)",
               "ix_ledger_entry_ts_seq": "(ts, seq)"}


def use_indexes(engine, wanted: dict, unwanted: dict) -> None:
    with engine.begin() as connection:
        for name in unwanted:
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        for name, columns in wanted.items():
            connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON ledger_entry {columns}")
        connection.exec_driver_sql("ANALYZE")


def filter_cases(engine) -> dict[str, dict]:
    """Filters an auditor would use, with values taken from the ledger itself."""
    from sqlalchemy import text
    local = ZoneInfo("Asia/Shanghai")
    with engine.connect() as connection:
        size = connection.execute(text("SELECT count(*) FROM ledger_entry")).scalar_one()

        def at(fraction: float, column: str):
            return connection.execute(text(f"SELECT {column} FROM ledger_entry WHERE seq = :s"),
                                      {"s": int(size * fraction)}).scalar_one()

        rare_kind = connection.execute(text(
            "SELECT kind FROM ledger_entry GROUP BY kind HAVING count(*) >= 2 ORDER BY count(*), kind")).first()[0]
        mid_ts = datetime.fromisoformat(at(0.6, "ts").replace("Z", "+00:00")).astimezone(local)
        voucher = connection.execute(text(
            "SELECT r.ref FROM ledger_ref r JOIN ledger_entry e ON e.seq = r.seq "
            "WHERE e.kind = 'voucher.issued' AND r.ref LIKE 'vch%' AND e.seq >= :s ORDER BY e.seq LIMIT 1"),
            {"s": size // 2}).scalar_one()
        enterprise = connection.execute(text(
            "SELECT r.ref FROM ledger_ref r JOIN ledger_entry e ON e.seq = r.seq "
            "WHERE e.kind = 'enterprise.registered' AND e.seq >= :s ORDER BY e.seq LIMIT 1"),
            {"s": size // 3}).scalar()
        if enterprise is None:
            # Past some size every enterprise registered before the first third
            # (at 1M: all in the first third): then the enterprise the first
            # entry of the second third names.
            enterprise = connection.execute(text(
                "SELECT ref FROM ledger_ref WHERE ref LIKE 'ent%' AND seq >= :s ORDER BY seq LIMIT 1"),
                {"s": size // 3}).scalar_one()
        late_ts = at(0.9, "ts")
    day = mid_ts.date()
    return {
        "unfiltered (baseline)": {},
        "kind common (redemption.reserved)": {"kind": "redemption.reserved"},
        f"kind rare ({rare_kind})": {"kind": rare_kind},
        "region WJ": {"region": "WJ"},
        "ref voucher:ID": {"ref": f"voucher:{voucher}"},
        "ref enterprise:ID": {"ref": f"enterprise:{enterprise}"},
        "from..to one day (60% in)": {"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()},
        "from (last 10%)": {"from": late_ts},
        "kind + region + from": {"kind": "redemption.redeemed", "region": "SH", "from": mid_ts.isoformat()},
        "ref + kind": {"ref": f"enterprise:{enterprise}", "kind": "redemption.redeemed"},
    }


def time_pages(app, cases: dict, repeat: int) -> dict[str, dict]:
    from sqlmodel import Session, select

    from voucher_service.db import get_engine
    from voucher_service.journal.api import EntriesArgs, filtered_entries, page_of_entries
    from voucher_service.models import LedgerEntry
    figures = {}
    with app.app_context(), Session(get_engine()) as session:
        for name, query in cases.items():
            samples, items = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                args = EntriesArgs().load({**query, "limit": PAGE})
                page = page_of_entries(session, filtered_entries(session, select(LedgerEntry), args), args)
                samples.append(time.perf_counter() - started)
                items = len(page["items"])
                session.rollback()
            figures[name] = {"p50_s": percentile(samples, 0.5), "p99_s": percentile(samples, 0.99), "items": items}
    return figures


def time_endpoint(app, cases: dict, repeat: int, sme: str) -> dict[str, dict]:
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.http import auth
    client = app.test_client()
    with app.app_context(), Session(get_engine()) as session:
        sme_token, _row = auth.create_token(session, role="sme", principal_id=f"bench:{sme}", enterprise_id=sme)
        session.commit()
    tokens = {"auditor": auditor_token(app), f"sme {sme}": sme_token}
    figures = {}
    for who, token in tokens.items():
        for name, query in cases.items():
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(f"/api/v1/ledger/entries?{urlencode({**query, 'limit': PAGE})}",
                                      headers={"Authorization": f"Bearer {token}"})
                samples.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{who} {name}: {response.status_code} {response.get_data(as_text=True)}")
            figures[f"{who}: {name}"] = {"p50_s": percentile(samples, 0.5), "p99_s": percentile(samples, 0.99),
                                         "items": len(response.get_json()["items"])}
    return figures


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def bench_database(label: str, url: str, args, report: Report) -> dict:
    from sqlalchemy import create_engine
    engine = create_engine(url)
    cases = filter_cases(engine)
    app = build_app(url, keys_dir())
    report.line(f"[{label}] first page ({PAGE}) of each filter, {args.repeat} runs; before 0006 -> after")
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    use_indexes(engine, OLD_INDEXES, NEW_INDEXES)
    before = time_pages(app, cases, args.repeat)
    use_indexes(engine, NEW_INDEXES, OLD_INDEXES)
    after = time_pages(app, cases, args.repeat)
    floor = after["unfiltered (baseline)"]["p50_s"]
    for name in cases:
        old, new = before[name], after[name]
        report.line(f"   {name:<36} p50 {ms(old['p50_s'])} -> {ms(new['p50_s'])}  p99 {ms(old['p99_s'])} -> "
                    f"{ms(new['p99_s'])}  ({old['p99_s'] / new['p99_s']:6.1f}x faster at p99; "
                    f"{new['p50_s'] / floor:4.1f}x the unfiltered page; {new['items']} items)")
    sme = filter_cases_sme(engine)
    endpoint = time_endpoint(app, cases, max(5, args.repeat // 3), sme)
    report.line("   the endpoint (test client, auth and access filter included), after 0006:")
    for name, figure in endpoint.items():
        report.line(f"     {name:<56} p50 {ms(figure['p50_s'])}  p99 {ms(figure['p99_s'])}  ({figure['items']} items)")
    usage = foreign.stop()
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    worst = max(v["p99_s"] for k, v in after.items())
    report.target(f"{label} worst filtered page p99 with the 0006 indexes", worst * 1000, TARGET_P99_S * 1000,
                  higher_is_better=False, unit=" ms")
    engine.dispose()
    from voucher_service.db import get_engine
    with app.app_context():
        get_engine().dispose()
    return {"before_0006": before, "after_0006": after, "endpoint_after_0006": endpoint}


def filter_cases_sme(engine) -> str:
    """The enterprise with the most entries: the SME whose visibility filter reads the most refs."""
    from sqlalchemy import text
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT ref FROM ledger_ref WHERE ref LIKE 'ent%' GROUP BY ref ORDER BY count(*) DESC LIMIT 1")).scalar_one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries, 10 runs")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries, args.repeat = 100_000, 10
    report = Report("entries")
    report.figure("entries", args.entries)
    # Scratch copies: the cached ledgers keep the schema other benchmarks built them with.
    source = ensure_ledger(args.entries)
    scratch = os.path.join(CACHE_DIR, f"entries-scratch-{os.getpid()}.db")
    shutil.copyfile(source, scratch)
    try:
        report.figure("sqlite", bench_database("SQLite", f"sqlite:///{scratch}", args, report))
    finally:
        for path in (scratch, scratch + "-wal", scratch + "-shm"):
            if os.path.exists(path):
                os.remove(path)
    if not args.no_postgres and postgres_available():
        cached = postgres_ledger_url(args.entries)
        ensure_postgres_ledger(args.entries)
        name = f"vbench_entries_{os.getpid()}"
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{cached.rsplit("/", 1)[1]}"')
        url = pg_url(name)
        try:
            report.figure("postgres", bench_database("PostgreSQL", url, args, report))
        finally:
            drop_pg_database(url)
    report.save()


if __name__ == "__main__":
    main()
