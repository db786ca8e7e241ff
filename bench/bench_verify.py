"""Offline verification of a large export: entries per second of the service's
verifier (`python -m voucher_service.ledger.verify export ...`, signatures
included), against raw `cryptography` Ed25519 verification plus hashlib over
the same data, on one core and on two.

    .venv/bin/python bench/bench_verify.py [--quick] [--entries 300000] [--profile]

The export, checkpoint and keys are those the service serves (GET
/ledger/export, /checkpoint, /keys) for the cached benchmark ledger
(bench/ledger_data.py), downloaded once and cached.

- verifier: the command an auditor runs, as a subprocess (wall time, peak RSS);
- raw, one core: for every line, Ed25519PublicKey.verify(signature, the
  entry's signed bytes) and the RFC 9162 leaf hash, plus the running tree's
  node hashes, all with the key objects built and the signatures and signed
  bytes cut out beforehand (untimed): the cryptographic floor of the job;
- raw, two cores: the same split in two halves over two processes.

Targets: verifier >= 0.8x raw one-core; verifier on two cores >= 1.8x raw
one-core. --profile adds a pyinstrument profile of verify_export over the
first 20,000 lines.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BIN, REPO, RESULTS_DIR, ForeignCpu, Report, foreign_note, run_measured,  # noqa: E402
                     wait_until_quiet)
from ledger_data import ensure_export  # noqa: E402

_WORK = None  # (keys by id, [(key_id, signature, message, line)]) shared with forked workers


def signed_parts(line: bytes) -> tuple[str, bytes, bytes]:
    """(key_id, signature, signed bytes) of one canonical export line.

    RFC 8785 orders an entry's members actor, data, kind, postings, refs, region,
    seq, sig, ts, v: the top-level `sig` is the last `,"sig":` of the line (only ts
    and v follow it), so the signed bytes are the line without that member."""
    start = line.rfind(b',"sig":')
    end = line.index(b"}", start) + 1
    sig = json.loads(line[start + 7:end])
    return sig["key_id"], base64.b64decode(sig["value"]), line[:start] + line[end:]


def prepare(paths: dict, limit: int | None):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    keys = json.load(open(paths["keys"]))
    by_id = {k["key_id"]: Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"])) for k in keys["keys"]}
    work = []
    with open(paths["export"], "rb") as handle:
        for number, raw in enumerate(handle):
            if limit is not None and number >= limit:
                break
            line = raw.rstrip(b"\n")
            key_id, signature, message = signed_parts(line)
            work.append((key_id, signature, message, line))
    return by_id, work


def raw_verify(start: int, stop: int) -> int:
    """Ed25519 verify + leaf hash + running-tree node hashes for work[start:stop]."""
    by_id, work = _WORK
    sha = hashlib.sha256
    stack: list[tuple[int, bytes]] = []
    verified = 0
    for key_id, signature, message, line in work[start:stop]:
        by_id[key_id].verify(signature, message)  # raises InvalidSignature
        verified += 1
        level, node = 0, sha(b"\x00" + line).digest()
        while stack and stack[-1][0] == level:
            node = sha(b"\x01" + stack.pop()[1] + node).digest()
            level += 1
        stack.append((level, node))
    return verified


def raw_rate(n: int, processes: int) -> tuple[float, float]:
    if processes == 1:
        started = time.perf_counter()
        assert raw_verify(0, n) == n
        elapsed = time.perf_counter() - started
    else:
        bounds = [(n * i // processes, n * (i + 1) // processes) for i in range(processes)]
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            pool.starmap(raw_verify, [(0, 0)] * processes)  # the workers exist before the clock starts
            started = time.perf_counter()
            assert sum(pool.starmap(raw_verify, bounds)) == n
            elapsed = time.perf_counter() - started
    return n / elapsed, elapsed


def main() -> None:
    global _WORK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries")
    parser.add_argument("--entries", type=int, default=300_000, help="size of the cached ledger: 100000, 300000 "
                                                                    "or 1000000")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.entries = 100_000
    report = Report("verify")
    paths = ensure_export(args.entries)
    size_mib = os.path.getsize(paths["export"]) / 2**20

    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    argv = [os.path.join(BIN, "python"), "-m", "voucher_service.ledger.verify", "export", paths["export"],
            "--checkpoint", paths["checkpoint"], "--keys", paths["keys"]]
    code, elapsed, peak_mib, err = run_measured(argv)
    usage = foreign.stop()
    if code != 0:
        raise SystemExit(f"the verifier failed: {err}")
    with open(paths["export"], "rb") as handle:
        n = sum(1 for _ in handle)
    verifier_rate = n / elapsed
    report.line(f"export of {n:,} entries ({size_mib:,.0f} MiB)")
    report.line(f"   verifier (python -m voucher_service.ledger.verify export): {elapsed:6.1f} s  "
                f"{verifier_rate:>9,.0f} entries/s   peak RSS {peak_mib:.0f} MiB   (single process)")
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")

    started = time.perf_counter()
    _WORK = prepare(paths, None)
    report.line(f"   (raw baseline inputs cut out of the lines in {time.perf_counter() - started:.1f} s, untimed)")
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    raw1, raw1_s = raw_rate(n, 1)
    raw2, raw2_s = raw_rate(n, 2)
    usage = foreign.stop()
    report.line(f"   raw Ed25519 + hashlib, one core:  {raw1_s:6.1f} s  {raw1:>9,.0f} entries/s")
    report.line(f"   raw Ed25519 + hashlib, two cores: {raw2_s:6.1f} s  {raw2:>9,.0f} entries/s "
                f"({raw2 / raw1:.2f}x one core)")
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    report.line(f"   verifier / raw one core = {verifier_rate / raw1:.2f}x")
    report.line("   the verifier has no parallel mode: on two cores it runs as on one")
    report.figure("verify", {"entries": n, "export_mib": size_mib, "verifier_s": elapsed,
                             "verifier_rate": verifier_rate, "verifier_peak_rss_mib": peak_mib,
                             "raw_one_core_rate": raw1, "raw_two_core_rate": raw2})
    report.target("verifier / raw one-core rate", verifier_rate / raw1, 0.8, unit="x")
    report.target("verifier on two cores / raw one-core rate", verifier_rate / raw1, 1.8, unit="x")

    if args.profile:
        from pyinstrument import Profiler

        from voucher_service.ledger import verify
        lines = [w[3] + b"\n" for w in _WORK[1][:20_000]]
        keys = verify.load_keys_file(paths["keys"])
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for index, line in enumerate(lines):
            verify.check_entry(line, index, keys)
        profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=True)
        path = os.path.join(RESULTS_DIR, "profile-verify.txt")
        os.makedirs(RESULTS_DIR, exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
        report.line(f"   pyinstrument profile of check_entry over 20,000 lines: {os.path.relpath(path, REPO)}")
    report.save()


if __name__ == "__main__":
    main()
