"""Memory of an upload: a 10 MiB evidence document through a real gunicorn worker
streams into the database in chunks, so the worker's memory does not grow with it.

    .venv/bin/python bench/bench_upload.py [--large-mib 10] [--repeat 3] [--postgres]

A fresh database (`vouchers init`; SQLite, or PostgreSQL with --postgres), one
sync gunicorn worker. For each upload the worker's peak RSS (VmHWM) is reset
(/proc/PID/clear_refs) and read after the answer; its growth over the RSS
before the request is the figure. The baseline in the same run is a 100 KiB
upload (after a warm-up one): a streamed upload grows the worker by about the
same for 10 MiB as for 100 KiB. The download of the 10 MiB document is
measured the same way, and an upload of a third of the size shows that the
growth does not follow the size. Target: the 10 MiB upload grows the worker by
at most 4 MiB more than the baseline (a held document would cost 10 MiB, and
more with its copies).
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BIN, CACHE_DIR, Gunicorn, Report, build_app, create_pg_database,  # noqa: E402
                     drop_pg_database, rss_mib, service_env)

from voucher_service.cli.client import ApiClient  # noqa: E402

KIB, MIB = 1024, 1024 * 1024


def document(size: int) -> bytes:
    return b"%PDF-1.4\n" + secrets.token_bytes(size - 9)


def prepare(url: str, keys_dir: str, count: int) -> tuple[str, list[str]]:
    """`vouchers init`, then `count` redemptions at prv-sh-001 and the provider's token."""
    from sqlmodel import Session

    from voucher_service.db import get_engine
    from voucher_service.http import auth
    env = service_env(url, keys_dir)
    init = subprocess.run([os.path.join(BIN, "vouchers"), "init"], env=env, capture_output=True, text=True)
    if init.returncode != 0:
        raise SystemExit(f"vouchers init failed: {init.stdout}{init.stderr}")
    app = build_app(url, keys_dir)
    with app.app_context(), Session(get_engine()) as session:
        tokens = {role: auth.create_token(session, role=role, **binding)[0] for role, binding in (
            ("sme", {"enterprise_id": "ent-ks-003"}), ("officer", {"region": "KS"}),
            ("provider", {"provider_id": "prv-sh-001"}))}
        session.commit()
    client = app.test_client()

    def post(path, token, body, status):
        r = client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {tokens[token]}"})
        assert r.status_code == status, (r.status_code, r.get_json())
        return r.get_json()

    application = post("/applications", "sme", {"amount_fen": 1_000_000, "purpose": "upload bench"}, 201)
    voucher = post(f"/applications/{application['id']}/approve", "officer", {}, 200)["voucher_id"]
    rids = [post("/redemptions", "sme", {"voucher_id": voucher, "provider_id": "prv-sh-001", "catalog_code": "TS-01",
                                         "service_fee_fen": 2_000, "amount_fen": 1_000}, 201)["id"]
            for _ in range(count)]
    with app.app_context():
        get_engine().dispose()
    return tokens["provider"], rids


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS


def measured(pid: int, call) -> tuple[float, float, object]:
    """(RSS before, peak growth during `call`, its result), in MiB, of the worker `pid`."""
    time.sleep(0.2)
    _reset_peak(pid)
    before, _peak = rss_mib(pid)
    result = call()
    time.sleep(0.2)
    _current, peak = rss_mib(pid)
    return before, peak - before, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mib", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="uploads of each size; the median is reported")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    report = Report("upload")
    os.makedirs(CACHE_DIR, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="upload-", dir=CACHE_DIR)
    keys_dir = os.path.join(scratch, "keys")
    url = create_pg_database("upload") if args.postgres else f"sqlite:///{os.path.join(scratch, 'upload.db')}"
    large = int(args.large_mib * MIB)
    try:
        token, rids = prepare(url, keys_dir, 3 * args.repeat + 1)
        env = service_env(url, keys_dir, VOUCHERS_RATE_LIMIT_ENABLED="false",
                          VOUCHERS_MAX_DOCUMENT_BYTES=str(max(large, 10 * MIB)))
        server = Gunicorn("wsgi:app", env, 1, os.path.join(scratch, "gunicorn.log")).start()
        try:
            (pid,) = server.workers()
            client = ApiClient(server.base, timeout_s=120)

            def upload(rid, size, kind="contract"):
                content = document(size)
                started = time.perf_counter()
                reply = client.upload(f"/redemptions/{rid}/documents", token, content, fields={"kind": kind})
                assert reply.status == 201, (reply.status, reply.raw[:300])
                return reply.json, time.perf_counter() - started

            upload(rids[0], 100 * KIB)  # warm-up: imports, caches, the first connection
            rows = {}
            sizes = (("baseline", 100 * KIB), ("middle", large // 3), ("large", large))
            for index, (label, size) in enumerate(sizes):
                samples = []
                for n in range(args.repeat):
                    rid = rids[1 + n + index * args.repeat]
                    before, growth, (body, seconds) = measured(pid, lambda: upload(rid, size))
                    samples.append({"rss_before_mib": before, "growth_mib": growth, "seconds": seconds,
                                    "sha256": body["sha256"]})
                rows[label] = {"size_bytes": size, "samples": samples,
                               "growth_mib": statistics.median(s["growth_mib"] for s in samples),
                               "seconds": statistics.median(s["seconds"] for s in samples)}
                report.line(f"   upload {size / MIB:6.2f} MiB: worker peak RSS growth "
                            f"{rows[label]['growth_mib']:5.1f} MiB (median of {args.repeat}; RSS before "
                            f"{samples[-1]['rss_before_mib']:.1f} MiB), {rows[label]['seconds'] * 1000:.0f} ms")
            last = rows["large"]["samples"][-1]
            before, growth, reply = measured(pid, lambda: client.api(
                "GET", f"/redemptions/{rids[-1]}/documents/{last['sha256']}", token, headers={"Accept": "*/*"}))
            assert reply.status == 200 and len(reply.raw) == large, (reply.status, len(reply.raw))
            rows["download"] = {"size_bytes": large, "growth_mib": growth}
            report.line(f"   download {large / MIB:6.2f} MiB: worker peak RSS growth {growth:5.1f} MiB")
        finally:
            server.stop()
        extra = rows["large"]["growth_mib"] - rows["baseline"]["growth_mib"]
        report.line(f"   {large / MIB:.0f} MiB vs 100 KiB: {extra:+.1f} MiB more peak RSS for "
                    f"{large / (100 * KIB):.0f}x the bytes ({'PostgreSQL' if args.postgres else 'SQLite'})")
        # Streamed, the growth is the chunk pipeline (a few 256 KiB buffers: the multipart
        # parser's, the chunker's, the driver's copy) and the database client's cache, the
        # same for any size; held whole, a document costs its size at least once more.
        report.target(f"upload of {large / MIB:.0f} MiB, peak RSS growth beyond the 100 KiB baseline", extra,
                      min(4.0, large / MIB / 2), higher_is_better=False, unit=" MiB")
        report.figure("upload", rows)
        report.save()
    finally:
        if args.postgres:
            drop_pg_database(url)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
