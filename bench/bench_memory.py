"""Memory: the export and the offline verification of a growing ledger (100k,
300k, 1M entries) run in constant memory.

    .venv/bin/python bench/bench_memory.py [--quick] [--sizes 100000,300000,1000000] [--no-postgres]

For each size of the cached benchmark ledger (bench/ledger_data.py):

- export: a fresh process builds the service's app and streams GET
  /api/v1/ledger/export (Flask test client, unbuffered: the endpoint's
  generator reads 1,000 rows at a time) to a file, as an auditor's download
  would; its peak RSS (wait4's ru_maxrss) and its RSS before the export
  started (the app alone) are reported. On SQLite, and on PostgreSQL for the
  sizes already loaded there (bench/ledger_data.py --postgres);
- verification: `python -m voucher_service.ledger.verify export FILE
  --checkpoint ... --keys ... --jobs 1` on that file (one process: the figure
  held to the target), peak RSS likewise; `--verify-jobs 1,2` also runs it
  with --jobs 2 and reports the command's process and its workers apart.

The baseline in the same run is the smallest size: a flat curve has the
same peak at 1M as at 100k. Target: growth from the smallest to the largest
size below 10% of the smallest peak (and under 20 MiB), for both.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BIN, Report, peak_rss_mib_self, postgres_available, run_measured  # noqa: E402
from ledger_data import (download_export, ensure_export, ensure_ledger, export_paths,  # noqa: E402
                         postgres_ledger_url)

HERE = os.path.abspath(__file__)


def export_child(size: int, out: str, url: str | None) -> None:
    """In a process of its own: the app, then the streamed export; prints one JSON line."""
    before = None

    import ledger_data
    original = ledger_data.auditor_token

    def token_then_measure(app):
        nonlocal before
        value = original(app)
        before = peak_rss_mib_self()
        return value

    ledger_data.auditor_token = token_then_measure
    result = download_export(size, out_path=out, url=url)
    result["rss_before_export_mib"] = before
    result["peak_mib_self"] = peak_rss_mib_self()
    print("EXPORT_JSON " + json.dumps(result))


def measure_export(size: int, url: str | None, out: str) -> dict:
    argv = [os.path.join(BIN, "python"), HERE, "--export-child", str(size), "--out", out]
    if url:
        argv += ["--url", url]
    code, elapsed, peak, err = run_measured(argv)
    if code != 0:
        raise SystemExit(f"export of {size} failed: {err[-2000:]}")
    # run_measured discards stdout: read the result the child printed via a second channel
    with open(out + ".json") as handle:
        result = json.load(handle)
    os.remove(out + ".json")
    result.update(peak_mib=peak, wall_s=elapsed)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k and 300k only")
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--verify-jobs", default="1", help="--jobs values of the verifier runs, e.g. 1,2 "
                                                           "(the target is held to --jobs 1)")
    parser.add_argument("--export-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        import io
        import contextlib
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            export_child(args.export_child, args.out, args.url)
        line = [l for l in buffer.getvalue().splitlines() if l.startswith("EXPORT_JSON ")][-1]
        with open(args.out + ".json", "w") as handle:
            handle.write(line[len("EXPORT_JSON "):])
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 300_000] or sizes[:2]
    report = Report("memory")
    rows = {"sqlite_export": {}, "postgres_export": {}, "verify": {}}
    verify_jobs = [int(j) for j in args.verify_jobs.split(",")]
    for jobs in verify_jobs:
        if jobs != 1:
            rows[f"verify_jobs_{jobs}"] = {}
    with_postgres = not args.no_postgres and postgres_available()
    for size in sizes:
        ensure_ledger(size)
        paths = export_paths(size)
        result = measure_export(size, None, paths["export"])
        rows["sqlite_export"][size] = result
        report.line(f"   export {result['tree_size']:>9,} entries (SQLite):     peak RSS {result['peak_mib']:6.1f} MiB "
                    f"(app alone {result['rss_before_export_mib']:.1f} MiB), {result['bytes'] / 2**20:,.0f} MiB "
                    f"streamed in {result['seconds']:.1f} s ({result['tree_size'] / result['seconds']:,.0f} entries/s)")
        if with_postgres:
            import psycopg
            url = postgres_ledger_url(size)
            try:
                with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
                    db.execute("SELECT 1 FROM vbench_loaded")
                loaded = True
            except psycopg.Error:
                loaded = False
            if loaded:
                result = measure_export(size, url, paths["export"] + ".pg")
                os.remove(paths["export"] + ".pg")
                rows["postgres_export"][size] = result
                report.line(f"   export {result['tree_size']:>9,} entries (PostgreSQL): peak RSS "
                            f"{result['peak_mib']:6.1f} MiB (app alone {result['rss_before_export_mib']:.1f} MiB), "
                            f"streamed in {result['seconds']:.1f} s")
        ensure_export(size)
        for jobs in verify_jobs:
            argv = [os.path.join(BIN, "python"), "-m", "voucher_service.ledger.verify", "export", paths["export"],
                    "--checkpoint", paths["checkpoint"], "--keys", paths["keys"], "--jobs", str(jobs)]
            if jobs == 1:
                code, elapsed, peak, err = run_measured(argv)
                workers = None
            else:
                from bench_verify import run_measured_tree
                code, elapsed, peak, workers, err = run_measured_tree(argv)
            if code != 0:
                raise SystemExit(f"verification of {size} (--jobs {jobs}) failed: {err}")
            rows["verify" if jobs == 1 else f"verify_jobs_{jobs}"][size] = {"peak_mib": peak, "seconds": elapsed,
                                                                           "workers_peak_mib": workers}
            report.line(f"   verify {size:>9,} entries, --jobs {jobs}:    peak RSS {peak:6.1f} MiB"
                        + (f" (+ workers {workers:.1f} MiB)" if workers is not None else "")
                        + f", {elapsed:.1f} s ({size / elapsed:,.0f} entries/s)")
    for name, label in (("sqlite_export", "export (SQLite)"), ("postgres_export", "export (PostgreSQL)"),
                        ("verify", "verification (--jobs 1)"),
                        *((f"verify_jobs_{j}", f"verification (--jobs {j}), its command's process")
                          for j in verify_jobs if j != 1)):
        measured = rows[name]
        if len(measured) < 2:
            continue
        small, large = min(measured), max(measured)
        growth = measured[large]["peak_mib"] - measured[small]["peak_mib"]
        limit = min(0.10 * measured[small]["peak_mib"], 20.0)
        report.line(f"   {label}: peak RSS {measured[small]['peak_mib']:.1f} MiB at {small:,} -> "
                    f"{measured[large]['peak_mib']:.1f} MiB at {large:,} entries ({growth:+.1f} MiB for "
                    f"{large / small:.0f}x the entries)")
        report.target(f"{label} peak RSS growth {small:,} -> {large:,} entries", growth, limit,
                      higher_is_better=False, unit=" MiB")
    report.figure("memory", {k: {str(s): v for s, v in rows[k].items()} for k in rows})
    report.save()


if __name__ == "__main__":
    main()
