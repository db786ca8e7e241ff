"""End-to-end writes: reservations per second through gunicorn, against a bare
Flask endpoint doing one INSERT and COMMIT, on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_writes.py [--quick] [--duration 15] [--workers 5]
        [--connections 16] [--databases sqlite,postgres] [--no-rate-limit]

Needs `wrk` (Debian: apt-get install wrk); without it, says so and exits 0.

For each database: the service is initialised (`vouchers init`) and given
enterprises with vouchers with available balance and SME tokens, through the
domain layer; the bare app (bench/bare_app.py) gets an empty table. Both run
under the project's gunicorn.conf.py with the same worker count; the same wrk
client (bench/wrk/load.lua: 127.0.0.1 only, bounded by time and by a request
count) first measures its own ceiling against GET /hello of the bare app, then
the bare INSERT + COMMIT, then POST /api/v1/redemptions of the service (each
request a new reservation holding 5 CNY of one of the vouchers). Reported:
requests per second, latency p50/p99 (wrk's), and each gunicorn worker's RSS
sampled under load; then the ratio service / bare and the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    BENCH_DIR,
    CACHE_DIR,
    CpuSplit,
    ForeignCpu,
    Gunicorn,
    Report,
    build_app,
    create_pg_database,
    drop_pg_database,
    foreign_note,
    postgres_available,
    pss_mib,
    rss_mib,
    service_env,
    wait_until_quiet,
)

LUA = os.path.join(BENCH_DIR, "wrk", "load.lua")
RESERVATION_FEN = 500            # 5 CNY each: a 50,000 CNY voucher takes 10,000 reservations
VOUCHER_FEN = 5_000_000
SMES_PER_REGION = 60             # 120 SMEs, one voucher and one token each
PROVIDERS = {"SH": "prv-sh-001", "KS": "prv-ks-002"}  # both accredited for testing (TS-01)


def uscc_for(number: int, division: str) -> str:
    from voucher_service.providers.uscc import _org_check_char, uscc_check_char
    org8 = f"{number:08d}"
    first17 = "91" + division + org8 + _org_check_char(org8)
    return first17 + uscc_check_char(first17)


def prepare_service(url: str, keys_dir: str) -> list[tuple[str, str]]:
    """`vouchers init`, then SMEs with a voucher and a token each, through the domain layer."""
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.enterprises import service as enterprises
    from voucher_service.http import auth
    from voucher_service.process import applications
    from voucher_service.programme.context import Context

    app = build_app(url, keys_dir)
    result = app.test_cli_runner().invoke(args=["init"])
    if result.exit_code != 0:
        raise RuntimeError(f"vouchers init failed: {result.output}")
    items = []
    with app.app_context():
        engine = get_engine()
        with Session(engine, expire_on_commit=False) as session:
            keyring = app.extensions["vouchers_keyring"]
            number = 0
            for region, division in (("SH", "310115"), ("KS", "320583")):
                for _ in range(SMES_PER_REGION):
                    number += 1
                    officer = Context(session=session, signer=keyring.signer_for(session),
                                      actor=f"bench:officer:{region}")
                    enterprise = enterprises.register_enterprise(officer, name=f"基准测试企业 {number:04d}",
                                                              uscc=uscc_for(number, division), region=region,
                                                              kind="enterprise")
                    sme = Context(session=session, signer=keyring.signer_for(session), actor=f"bench:sme:{number}")
                    application = applications.submit_application(sme, enterprise_id=enterprise.id,
                                                              amount_fen=VOUCHER_FEN, purpose="benchmark")
                    _application, voucher = applications.approve_application(officer, application.id)
                    token, _row = auth.create_token(session, role="sme", enterprise_id=enterprise.id)
                    body = {"voucher_id": voucher.id, "provider_id": PROVIDERS["SH" if number % 2 else "KS"],
                            "catalog_code": "TS-01", "service_fee_fen": 2 * RESERVATION_FEN,
                            "amount_fen": RESERVATION_FEN}
                    items.append((token, json.dumps(body)))
            session.commit()
        engine.dispose()
    return items


def count_redemptions(url: str, keys_dir: str) -> tuple[int, int]:
    from sqlmodel import Session, text

    from voucher_service.db import get_engine
    app = build_app(url, keys_dir)
    with app.app_context():
        engine = get_engine()
        with Session(engine) as session:
            redemptions = session.exec(text("SELECT count(*) FROM redemption")).one()[0]
            size = session.exec(text("SELECT size FROM ledger_head")).one()[0]
        engine.dispose()
    return redemptions, size


def count_bare(url: str) -> int:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as db:
            return db.execute("SELECT count(*) FROM bare_reservation").fetchone()[0]
    import psycopg
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
        return db.execute("SELECT count(*) FROM bare_reservation").fetchone()[0]


def prepare_bare(url: str) -> None:
    sys.path.insert(0, BENCH_DIR)
    from bare_app import TABLE
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(TABLE)
    else:
        import psycopg
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
            db.execute(TABLE)


class RssSampler(threading.Thread):
    """Every worker's RSS, twice a second, while the load runs."""

    def __init__(self, server: Gunicorn):
        super().__init__(daemon=True)
        self.server, self.samples, self.pss, self.stopped = server, {}, {}, threading.Event()

    def run(self):
        while not self.stopped.wait(0.5):
            for pid in self.server.workers():
                current, _peak = rss_mib(pid)
                if current == current:  # not NaN: the worker is alive
                    self.samples.setdefault(pid, []).append(current)
                    self.pss.setdefault(pid, []).append(pss_mib(pid))

    def summary(self) -> dict:
        self.stopped.set()
        self.join()
        per_worker = {pid: max(values) for pid, values in self.samples.items() if values}
        peaks = sorted(per_worker.values())
        pss = sorted(max(values) for values in self.pss.values() if values)
        return {"workers": len(peaks), "max_mib": peaks[-1] if peaks else float("nan"),
                "median_worker_peak_mib": peaks[len(peaks) // 2] if peaks else float("nan"),
                "total_peak_mib": sum(peaks), "max_pss_mib": pss[-1] if pss else float("nan")}


def run_wrk(base: str, *, method: str, path: str, items_file: str | None, duration: float, connections: int,
            threads: int, max_requests: int) -> dict:
    env = dict(os.environ, WRK_METHOD=method, WRK_PATH=path, WRK_MAX_REQUESTS=str(max_requests))
    if items_file:
        env["WRK_ITEMS"] = items_file
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
            "-s", LUA, base]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no result: {done.stdout}\n{done.stderr}")


def measure(server: Gunicorn, label: str, report: Report, args, quiet_wait_s: float = 120, **request) -> dict:
    # Warm-up: every worker imports lazily, opens its connection, fills caches.
    run_wrk(server.base, duration=2, connections=args.connections, threads=args.threads,
            max_requests=args.max_requests, **request)
    wait_until_quiet(report, max_wait_s=quiet_wait_s)
    sampler = RssSampler(server)
    sampler.start()
    foreign = ForeignCpu().start()
    cpu = CpuSplit(server.process.pid).start()
    result = run_wrk(server.base, duration=args.duration, connections=args.connections, threads=args.threads,
                     max_requests=args.max_requests, **request)
    result["cpu"] = cpu.stop(result["requests"])
    result["foreign_cpu"] = foreign.stop()
    result["rss"] = sampler.summary()
    errors = result["non2xx"] + result["connect_errors"] + result["read_errors"] + result["write_errors"] \
        + result["timeouts"]
    result["errors"] = errors
    report.line(f"   {label:<34} {result['rate']:>8,.0f} req/s   p50 {result['p50_us'] / 1000:6.2f} ms   "
                f"p99 {result['p99_us'] / 1000:7.2f} ms   worker peak RSS {result['rss']['max_mib']:.0f} MiB "
                f"(PSS {result['rss']['max_pss_mib']:.0f} MiB)   "
                f"statuses {result['statuses']}{'   ERRORS ' + str(errors) if errors else ''}")
    split = result["cpu"]
    total_ms = sum(split.values())
    report.line(f"      CPU per request: server {split['server_ms_per_request']:.2f} ms, database "
                f"{split['database_ms_per_request']:.2f} ms, client {split['client_ms_per_request']:.2f} ms"
                f" = {total_ms:.2f} ms: {os.cpu_count()} cores allow at most {os.cpu_count() * 1000 / total_ms:,.0f}/s")
    if result["foreign_cpu"]["cores"] >= 0.1:
        report.line(f"      {foreign_note(result['foreign_cpu'])}")
    return result


def bench_database(kind: str, args, report: Report, scratch: str) -> dict:
    if kind == "sqlite":
        service_url = f"sqlite:///{os.path.join(scratch, 'service.db')}"
        bare_url = f"sqlite:///{os.path.join(scratch, 'bare.db')}"
    else:
        service_url, bare_url = create_pg_database("writes_service"), create_pg_database("writes_bare")
    keys_dir = os.path.join(scratch, f"keys-{kind}")
    try:
        started = time.perf_counter()
        items = prepare_service(service_url, keys_dir)
        prepare_bare(bare_url)
        items_file = os.path.join(scratch, f"items-{kind}.tsv")
        with open(items_file, "w") as handle:
            handle.writelines(f"{token}\t{body}\n" for token, body in items)
        read_items = os.path.join(scratch, f"read-items-{kind}.tsv")
        with open(read_items, "w") as handle:
            handle.writelines(f"{token}\t\t/api/v1/vouchers/{json.loads(body)['voucher_id']}\n"
                              for token, body in items)
        bare_items = os.path.join(scratch, f"bare-items-{kind}.tsv")
        with open(bare_items, "w") as handle:
            handle.writelines(f"\t{body}\n" for _token, body in items)
        _before, size_before = count_redemptions(service_url, keys_dir)
        report.line(f"[{kind}] prepared {len(items)} SMEs with a {VOUCHER_FEN // 100:,} CNY voucher each "
                    f"({time.perf_counter() - started:.1f} s); {args.workers} sync workers, wrk -t{args.threads} "
                    f"-c{args.connections} -d{args.duration:g}s")
        results = {}
        bare_env = dict(os.environ, BARE_DATABASE_URL=bare_url, GUNICORN_ACCESS_LOG=args.access_log)
        bare = Gunicorn("bare_app:app", bare_env, args.workers, os.path.join(scratch, f"bare-{kind}.log"),
                        cwd=BENCH_DIR).start()
        try:
            results["client_ceiling"] = measure(bare, "client ceiling (bare GET /hello)", report, args,
                                                method="GET", path="/hello", items_file=None)
            results["bare"] = measure(bare, "bare INSERT + COMMIT", report, args,
                                      method="POST", path="/reserve", items_file=bare_items)
        finally:
            bare.stop()
        extra = {"GUNICORN_ACCESS_LOG": args.access_log}
        if args.no_rate_limit:
            extra["VOUCHERS_RATE_LIMIT_ENABLED"] = "false"
        service = Gunicorn("wsgi:app", service_env(service_url, keys_dir, **extra), args.workers,
                           os.path.join(scratch, f"service-{kind}.log")).start()
        try:
            results["service_read"] = measure(service, "service GET /vouchers/{id} (no lock)", report, args,
                                              method="GET", path="/api/v1/vouchers", items_file=read_items)
            results["service"] = measure(service, "service POST /redemptions", report, args,
                                         method="POST", path="/api/v1/redemptions", items_file=items_file)
        finally:
            service.stop()
        redemptions, size_after = count_redemptions(service_url, keys_dir)
        created = results["service"]["statuses"].get("201", 0)
        report.line(f"   check: {redemptions:,} redemptions and {size_after - size_before:,} new ledger entries in "
                    f"the database (warm-up included); the bare table has {count_bare(bare_url):,} rows")
        report.line(f"   the service's own ceiling for any authenticated request on this machine (the voucher GET, "
                    f"no ledger lock): {results['service_read']['rate'] / results['bare']['rate']:.2f}x the bare "
                    f"INSERT endpoint")
        ratio = results["service"]["rate"] / results["bare"]["rate"]
        client = results["client_ceiling"]["rate"] / results["bare"]["rate"]
        report.line(f"   service / bare = {ratio:.2f}x   (client ceiling is {client:.1f}x the bare rate)")
        results["ratio"] = ratio
        results["created_201"] = created
        report.figure(kind, results)
        return results
    finally:
        if kind == "postgres":
            drop_pg_database(service_url)
            drop_pg_database(bare_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s runs")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of measured load per run")
    parser.add_argument("--workers", type=int, default=5, help="gunicorn workers, both sides (conf default: 2*cores+1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per wrk thread, per run")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--no-rate-limit", action="store_true", help="VOUCHERS_RATE_LIMIT_ENABLED=false")
    parser.add_argument("--access-log", default="-", help="GUNICORN_ACCESS_LOG for both sides ('-': stdout, "
                                                        "as the conf's default; the log goes to a file)")
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 5.0)
    report = Report("writes")
    if shutil.which("wrk") is None:
        report.line("SKIPPED: wrk is not installed (Debian: apt-get install -y wrk)")
        return
    report.figure("settings", {k: v for k, v in vars(args).items()})
    os.makedirs(CACHE_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="writes-", dir=CACHE_DIR)
    try:
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            if kind == "postgres" and not postgres_available():
                report.line("[postgres] SKIPPED: no PostgreSQL answers at VOUCHERS_BENCH_POSTGRES_URL")
                continue
            results = bench_database(kind, args, report, scratch)
            if kind == "postgres":
                report.target("PostgreSQL reservations/s", results["service"]["rate"], 1000, unit="/s")
            report.target(f"{kind} service/bare", results["ratio"], 0.5, unit="x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.save()


if __name__ == "__main__":
    main()
