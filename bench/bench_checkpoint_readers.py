"""Readers of the published checkpoint during write load: 50 anonymous pollers
of GET /api/v1/ledger/checkpoint against the reservation writes of
bench_writes.py, on SQLite and on PostgreSQL (DESIGN §10, issue 15).

    .venv/bin/python bench/bench_checkpoint_readers.py [--quick] [--duration 10] [--repeat 2]
        [--pollers 50] [--poll-interval 1] [--poll-path PATH] [--intervals default,1]
        [--databases sqlite,postgres] [--proxies nginx,none] [--quiet-wait-s 120]

Needs `wrk` (Debian: apt-get install wrk); without it, says so and exits 0.

For each database one service database is prepared as bench_writes.py
prepares it (`vouchers init`, 120 SMEs with a voucher and a token each), then
served by gunicorn once per publisher interval: the default
(VOUCHERS_CHECKPOINT_INTERVAL_S unset, 10 s) and 1 s. In each, the same wrk
reservation writes as bench_writes.py (its `measure`: 2 s of warm-up, then
--duration s) run alone and with the pollers, in the order alone, pollers,
pollers, alone (--repeat 2), so that a drift of this VM during the runs
weighs on both sides alike. Before them the pollers run alone for 5 s: the
CPU one GET costs the server and the database, and so the share of the two
cores the pollers take from the writes.

A poller is a thread of this process with a loopback address of its own
(127.0.1.1, 127.0.1.2, ...): 50 callers without a token are 50 addresses to
the rate limiter, which counts them by address; from one address together
they would be refused with 429 beyond 600 a minute. Each sends no token and
polls every --poll-interval s (0: back to back, as fast as it can), starting
at a random phase. A poller keeps every note it is served. `--poll-path
/healthz` is a control: the same load on the service's cheapest request.

--proxies: where the pollers send their GETs. `nginx` is the deployment of
docs/deployment.md, which production requires: nginx configured with that
page's snippet in front of the same gunicorn, answering the checkpoint from
its 1 s cache; `none` is gunicorn directly (each GET a worker's). The writes
go to gunicorn directly in both, so that their figures compare with
bench_writes.py's. Without nginx installed, `nginx` is skipped with a line.

Around every run the ledger_checkpoint rows (size, note, created_at) are
read: a row that existed before and is gone or has another note afterwards is
a change; added rows are counted against the publisher's rounds: about
(seconds of writes) / interval, since a round adds a row only when the tree
grew, and never more than floor(window / interval) + 1. Every note a poller
was served must be a stored row's note, byte for byte. Reported: writes/s and
p50/p99 alone and with pollers, their ratio, the pollers' own rate and
latency, and the rows.
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    CACHE_DIR,
    CpuSplit,
    ForeignCpu,
    Gunicorn,
    Report,
    create_pg_database,
    drop_pg_database,
    foreign_note,
    percentile,
    postgres_available,
    service_env,
    wait_until_quiet,
)
from voucher_service.cli.devserver import NGINX, NginxProcess  # noqa: E402
from bench_writes import measure, prepare_service  # noqa: E402

CHECKPOINT_PATH = "/api/v1/ledger/checkpoint"
POLL_TIMEOUT_S = 10
POLLERS_ALONE_S = 5.0
WARM_UP_S = 2.0  # bench_writes.measure's warm-up run
DEFAULT_INTERVAL_S = 10.0  # voucher_service/config.py's default, used when the setting is unset


def poller_address(number: int) -> str:
    """127.0.1.1 and on: loopback addresses every Linux host answers from, none of them 127.0.0.1."""
    return f"127.0.{1 + number // 250}.{1 + number % 250}"


class Pollers:
    """`count` anonymous callers of GET /ledger/checkpoint, each from its own address."""

    def __init__(self, base: str, count: int, interval_s: float, path: str = CHECKPOINT_PATH):
        host_port = base.split("://", 1)[1]
        self.host, self.port = host_port.rsplit(":", 1)
        self.count, self.interval_s, self.path = count, interval_s, path
        self.stopping = threading.Event()
        self.results: list[dict] = []
        self.lock = threading.Lock()

    def start(self) -> "Pollers":
        self.started = time.monotonic()
        self.cpu_before = _self_cpu_s()
        self.threads = [threading.Thread(target=self._poll, args=(poller_address(n),), daemon=True)
                        for n in range(self.count)]
        for thread in self.threads:
            thread.start()
        return self

    def _poll(self, address: str) -> None:
        latencies, statuses, notes = [], {}, set()
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=POLL_TIMEOUT_S,
                                                source_address=(address, 0))
        next_at = time.monotonic() + random.uniform(0, self.interval_s)
        while not self.stopping.is_set():
            if self.interval_s and self.stopping.wait(max(0.0, next_at - time.monotonic())):
                break
            started = time.perf_counter()
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body, status = response.read(), str(response.status)
            except (OSError, http.client.HTTPException):
                body, status = b"", "error"
                connection.close()
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200" and self.path == CHECKPOINT_PATH:
                notes.add(body.decode("utf-8", "replace"))
            # A late poll does not make the next ones come sooner: a poller
            # never bursts to catch up.
            next_at = max(next_at + self.interval_s, time.monotonic())
        connection.close()
        with self.lock:
            self.results.append({"latencies": latencies, "statuses": statuses, "notes": notes})

    def stop(self) -> dict:
        self.stopping.set()
        for thread in self.threads:
            thread.join(POLL_TIMEOUT_S + 5)
        elapsed_s = time.monotonic() - self.started
        latencies = [s for r in self.results for s in r["latencies"]]
        statuses: dict[str, int] = {}
        for result in self.results:
            for status, n in result["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        notes = set().union(*(r["notes"] for r in self.results)) if self.results else set()
        return {"pollers": self.count, "interval_s": self.interval_s, "requests": len(latencies),
                "elapsed_s": round(elapsed_s, 2), "rate": len(latencies) / elapsed_s,
                "p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
                "statuses": statuses, "notes": notes,
                # This process's CPU meanwhile: the pollers' (the main thread only waits on wrk).
                "client_cpu_ms_per_poll": (_self_cpu_s() - self.cpu_before) * 1000 / max(len(latencies), 1)}


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the stored checkpoints --------------------------------------------------------

def checkpoint_rows(url: str) -> dict[int, tuple[str, str]]:
    """{size: (note, created_at)} of every stored checkpoint."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT size, note, created_at FROM ledger_checkpoint")).all()
    finally:
        engine.dispose()
    return {int(size): (note, created_at) for size, note, created_at in rows}


def compare_rows(before: dict, after: dict, window_s: float, writing_s: float, interval_s: float) -> dict:
    """What changed between two readings `window_s` apart, of which the ledger
    grew for `writing_s`: the publisher adds a row only in a round that finds
    the tree grown, so the rows added follow `writing_s / interval_s`; no
    timer of that interval fires more than floor(window_s / interval_s) + 1
    times in the window, whatever else happened in it."""
    changed = sorted(size for size, (note, _at) in before.items() if after.get(size, (None,))[0] != note)
    added = sorted(set(after) - set(before))
    moments = sorted(datetime.fromisoformat(after[size][1]) for size in added)
    gaps_s = [(b - a).total_seconds() for a, b in zip(moments, moments[1:])]
    max_rounds = int(window_s // interval_s) + 1
    return {"rows_before": len(before), "rows_after": len(after), "changed": changed, "added": len(added),
            "window_s": round(window_s, 2), "writing_s": round(writing_s, 2),
            "rounds_writing": round(writing_s / interval_s, 2), "max_rounds": max_rounds,
            "beyond_rounds": max(0, len(added) - max_rounds),
            "median_gap_s": round(percentile(gaps_s, 0.5), 2) if gaps_s else None,
            "sizes_added": [added[0], added[-1]] if added else []}


# --- runs --------------------------------------------------------------------------

def one_run(service: Gunicorn, polled_base: str, url: str, label: str, with_pollers: bool, interval_s: float,
            report: Report, args, items_file: str) -> dict:
    before, started = checkpoint_rows(url), time.monotonic()
    pollers = Pollers(polled_base, args.pollers, args.poll_interval, args.poll_path).start() if with_pollers \
        else None
    try:
        result = measure(service, label, report, args, quiet_wait_s=args.quiet_wait_s, method="POST",
                         path="/api/v1/redemptions", items_file=items_file)
    finally:
        polled = pollers.stop() if pollers else None
    after = checkpoint_rows(url)
    # measure()'s warm-up writes for WARM_UP_S, then the measured run for its duration.
    writing_s = WARM_UP_S + result["duration_us"] / 1e6
    result["rows"] = compare_rows(before, after, time.monotonic() - started, writing_s, interval_s)
    rows = result["rows"]
    line = (f"      ledger_checkpoint: {rows['rows_before']} rows -> {rows['rows_after']}: "
            f"{rows['added']} added; the publisher's rounds of {interval_s:g} s while writes ran "
            f"{rows['rounds_writing']:.1f}, in the whole {rows['window_s']:.0f} s window at most {rows['max_rounds']}"
            + (f", median {rows['median_gap_s']:.2f} s apart" if rows["median_gap_s"] is not None else "")
            + f"; notes of earlier rows changed: {len(rows['changed'])}")
    report.line(line)
    if polled is not None:
        stored = {note for note, _at in after.values()}
        polled["unstored_notes"] = sum(note not in stored for note in polled["notes"])
        polled["distinct_notes"] = len(polled.pop("notes"))
        report.line(f"      pollers: {polled['pollers']} x every {args.poll_interval:g} s: {polled['requests']:,} "
                    f"GETs, {polled['rate']:,.1f}/s, p50 {polled['p50_ms']:.2f} ms, p99 {polled['p99_ms']:.2f} ms, "
                    f"statuses {polled['statuses']}; {polled['distinct_notes']} distinct notes served, "
                    f"{polled['unstored_notes']} not a stored row's; client CPU "
                    f"{polled['client_cpu_ms_per_poll']:.2f} ms per poll")
        result["pollers"] = polled
    return result


def pollers_alone(service: Gunicorn, nginx: NginxProcess | None, args, report: Report) -> dict:
    """What the polls cost by themselves: the CPU of the server (gunicorn, and
    nginx in front when there is one) and the database per GET, and so the
    share of the two cores they take from the writes."""
    base = f"http://127.0.0.1:{nginx.port}" if nginx else service.base
    # Unmeasured first: a fresh worker's first requests import lazily and connect.
    warm = Pollers(base, args.pollers, min(args.poll_interval, 0.2), args.poll_path).start()
    time.sleep(1)
    warm.stop()
    wait_until_quiet(report, max_wait_s=args.quiet_wait_s)
    foreign, cpu = ForeignCpu().start(), CpuSplit(service.process.pid).start()
    proxy_cpu = CpuSplit(nginx.process.pid).start() if nginx else None
    pollers = Pollers(base, args.pollers, args.poll_interval, args.poll_path).start()
    time.sleep(min(args.duration, POLLERS_ALONE_S))
    polled = pollers.stop()
    polled.pop("notes")
    split = cpu.stop(polled["requests"])
    polled["foreign_cpu"] = foreign.stop()
    polled["proxy_ms_per_poll"] = proxy_cpu.stop(polled["requests"])["server_ms_per_request"] if nginx else 0.0
    polled["server_ms_per_poll"] = split["server_ms_per_request"] + polled["proxy_ms_per_poll"]
    polled["database_ms_per_poll"] = split["database_ms_per_request"]
    polled["cores"] = polled["rate"] * (polled["server_ms_per_poll"] + polled["database_ms_per_poll"]
                                        + polled["client_cpu_ms_per_poll"]) / 1000
    report.line(f"   {args.pollers} pollers alone: {polled['rate']:,.1f} GETs/s, p50 {polled['p50_ms']:.2f} ms, "
                f"p99 {polled['p99_ms']:.2f} ms, statuses {polled['statuses']}; CPU per GET: server "
                f"{polled['server_ms_per_poll']:.2f} ms (of it nginx {polled['proxy_ms_per_poll']:.2f}), database {polled['database_ms_per_poll']:.2f} ms, "
                f"client {polled['client_cpu_ms_per_poll']:.2f} ms: {polled['cores']:.3f} of "
                f"{os.cpu_count()} cores")
    if polled["foreign_cpu"]["cores"] >= 0.1:
        report.line(f"      {foreign_note(polled['foreign_cpu'])}")
    return polled


def summarise(runs: list[dict]) -> dict:
    requests = sum(r["requests"] for r in runs)
    duration_s = sum(r["duration_us"] for r in runs) / 1e6
    return {"rate": requests / duration_s, "requests": requests,
            "p50_ms": sum(r["p50_us"] for r in runs) / len(runs) / 1000,
            "p99_ms": sum(r["p99_us"] for r in runs) / len(runs) / 1000,
            "errors": sum(r["errors"] for r in runs),
            "server_cpu_ms": sum(r["cpu"]["server_ms_per_request"] for r in runs) / len(runs),
            "rows_added": sum(r["rows"]["added"] for r in runs),
            "rows_beyond_rounds": sum(r["rows"]["beyond_rounds"] for r in runs),
            "rows_changed": sum(len(r["rows"]["changed"]) for r in runs)}


def bench_interval(kind: str, url: str, keys_dir: str, items_file: str, interval: str, proxy: str, args,
                   report: Report, scratch: str) -> dict:
    extra = {"GUNICORN_ACCESS_LOG": args.access_log}
    if interval != "default":
        extra["VOUCHERS_CHECKPOINT_INTERVAL_S"] = interval
    interval_s = DEFAULT_INTERVAL_S if interval == "default" else float(interval)
    label = f"{interval_s:g} s" + (" (default)" if interval == "default" else "")
    report.line(f"[{kind}] publisher every {label}; pollers " +
                ("through nginx (docs/deployment.md)" if proxy == "nginx" else "straight to gunicorn"))
    service = Gunicorn("wsgi:app", service_env(url, keys_dir, **extra), args.workers,
                       os.path.join(scratch, f"service-{kind}-{interval}-{proxy}.log")).start()
    nginx = None
    # alone, pollers, pollers, alone, ...: each side gets early and late runs alike.
    order = [bool(i % 2) != bool((i // 2) % 2) for i in range(2 * args.repeat)]
    runs = {False: [], True: []}
    try:
        if proxy == "nginx":
            nginx = NginxProcess(os.path.join(scratch, f"nginx-{kind}-{interval}"), service.port).start()
        polled_base = f"http://127.0.0.1:{nginx.port}" if nginx else service.base
        only_polls = pollers_alone(service, nginx, args, report)
        for with_pollers in order:
            name = f"writes + {args.pollers} pollers" if with_pollers else "writes alone"
            runs[with_pollers].append(one_run(service, polled_base, url, name, with_pollers, interval_s, report,
                                              args, items_file))
    finally:
        if nginx:
            nginx.stop()
        service.stop()
    alone, polled = summarise(runs[False]), summarise(runs[True])
    ratio = polled["rate"] / alone["rate"]
    poll_rate = sum(r["pollers"]["requests"] for r in runs[True]) / sum(r["pollers"]["elapsed_s"] for r in runs[True])
    unstored = sum(r["pollers"]["unstored_notes"] for r in runs[True])
    report.line(f"   writes alone {alone['rate']:,.0f}/s (p50 {alone['p50_ms']:.1f} ms, p99 {alone['p99_ms']:.1f} ms); "
                f"with pollers {polled['rate']:,.0f}/s (p50 {polled['p50_ms']:.1f} ms, p99 {polled['p99_ms']:.1f} ms)"
                f": {ratio:.2f}x; pollers {poll_rate:,.1f} GETs/s")
    report.line(f"   rows added: {alone['rows_added']} alone, {polled['rows_added']} with pollers "
                f"({polled['rows_beyond_rounds']} beyond the publisher's rounds, {polled['rows_changed']} earlier "
                f"rows changed, {unstored} served notes not stored)")
    return {"interval_s": interval_s, "proxy": proxy, "pollers_alone": only_polls, "alone": alone, "with_pollers": polled,
            "ratio": ratio, "poll_rate": poll_rate, "unstored_notes": unstored, "runs_alone": runs[False],
            "runs_with_pollers": runs[True]}


def bench_database(kind: str, args, report: Report, scratch: str) -> dict:
    url = (f"sqlite:///{os.path.join(scratch, 'service.db')}" if kind == "sqlite"
           else create_pg_database("checkpoint_readers"))
    keys_dir = os.path.join(scratch, f"keys-{kind}")
    try:
        started = time.perf_counter()
        items = prepare_service(url, keys_dir)
        items_file = os.path.join(scratch, f"items-{kind}.tsv")
        with open(items_file, "w") as handle:
            handle.writelines(f"{token}\t{body}\n" for token, body in items)
        report.line(f"[{kind}] prepared {len(items)} SMEs ({time.perf_counter() - started:.1f} s); "
                    f"{args.workers} sync workers, wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s; "
                    f"{args.pollers} pollers of {args.poll_path} every {args.poll_interval:g} s")
        results = {}
        for proxy in args.proxies:
            for interval in args.intervals:
                results[f"{interval}/{proxy}"] = bench_interval(kind, url, keys_dir, items_file, interval, proxy,
                                                                args, report, scratch)
        report.figure(kind, results)
        return results
    finally:
        if kind == "postgres":
            drop_pg_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, the 1 s publisher only, no repeat")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured writes per run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side per interval (ABBA order)")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="seconds between one poller's GETs (0: back to back)")
    parser.add_argument("--poll-path", default=CHECKPOINT_PATH,
                        help="what the pollers GET (another path, /healthz say, is a control: the cost of any "
                             "request)")
    parser.add_argument("--intervals", default="default,1",
                        help="publisher intervals, comma-separated: 'default' (unset: 10 s) or seconds")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections of the writes")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per wrk thread, per run")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--access-log", default="-")
    parser.add_argument("--proxies", default="nginx,none",
                        help="where the pollers GET, comma-separated: 'nginx' (docs/deployment.md's proxy, its "
                             "1 s checkpoint cache) and/or 'none' (gunicorn directly)")
    parser.add_argument("--quiet-wait-s", type=float, default=120.0,
                        help="longest wait for a quiet machine before each run (--quick: 10)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat = min(args.duration, 3.0), 1
        args.quiet_wait_s = min(args.quiet_wait_s, 10.0)
        if args.intervals == parser.get_default("intervals"):
            args.intervals = "1"
    args.intervals = [i.strip() for i in args.intervals.split(",") if i.strip()]
    args.proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    if not set(args.proxies) <= {"nginx", "none"}:
        parser.error("--proxies: nginx and/or none")
    if not 0 < args.pollers <= 250 * 250:
        parser.error("--pollers: 1 to 62,500 (one loopback address each)")
    report = Report("checkpoint_readers")
    if shutil.which("wrk") is None:
        report.line("SKIPPED: wrk is not installed (Debian: apt-get install -y wrk)")
        return
    if "nginx" in args.proxies and NGINX is None:
        report.line("nginx is not installed (Debian: apt-get install -y nginx): the runs through it are skipped")
        args.proxies = [p for p in args.proxies if p != "nginx"]
    report.figure("settings", vars(args))
    os.makedirs(CACHE_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="checkpoint-readers-", dir=CACHE_DIR)
    try:
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            if kind == "postgres" and not postgres_available():
                report.line("[postgres] SKIPPED: no PostgreSQL answers at VOUCHERS_BENCH_POSTGRES_URL")
                continue
            for interval, result in bench_database(kind, args, report, scratch).items():
                label = (f"{kind}, publisher {result['interval_s']:g} s, pollers "
                         + ("through nginx" if result["proxy"] == "nginx" else "straight to gunicorn"))
                report.target(f"{label}: writes with / without pollers", result["ratio"], 0.9, unit="x")
                rows = result["with_pollers"]
                report.target(f"{label}: rows changed, rows beyond the publisher's rounds, served notes not stored",
                              rows["rows_changed"] + rows["rows_beyond_rounds"] + result["unstored_notes"], 0,
                              higher_is_better=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.save()


if __name__ == "__main__":
    main()
