"""Offline verification of a large export: entries per second of the service's
verifier (`python -m voucher_service.ledger.verify export ...`, signatures
included) with --jobs 1 and --jobs 2, against raw Ed25519 verification plus
hashlib over the same data: `cryptography` (OpenSSL, the baseline of the
targets) on one core and on two, and libsodium (PyNaCl, what the verifier
uses for entry signatures) on one core and on two.

    .venv/bin/python bench/bench_verify.py [--quick] [--entries 300000] [--profile]

The export, checkpoint and keys are those the service serves (GET
/ledger/export, /checkpoint, /keys) for the cached benchmark ledger
(bench/ledger_data.py), downloaded once and cached.

- verifier: the command an auditor runs, as a subprocess (wall time, peak RSS
  of the command's process and, with --jobs 2, of its workers);
- raw, one core: for every line, the signature check of the entry's signed
  bytes and the RFC 9162 leaf hash, plus the running tree's node hashes, all
  with the key objects built and the signatures and signed bytes cut out
  beforehand (untimed): the cryptographic floor of the job. With
  `cryptography`: Ed25519PublicKey.verify(signature, signed bytes); with
  libsodium: nacl.bindings.crypto_sign_open(signature + signed bytes, key),
  the concatenation made beforehand too;
- raw, two cores: the same split in two halves over two processes.

Targets: verifier (--jobs 1) >= 0.8x raw cryptography one-core; verifier
(--jobs 2) >= 1.8x raw cryptography one-core. The ratios to raw libsodium show
what the verifier's Python costs on top of the library it calls. --profile adds
a pyinstrument profile of check_entry over the first 20,000 lines.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (BIN, REPO, RESULTS_DIR, ForeignCpu, Report, children_of, foreign_note,  # noqa: E402
                     rss_mib, wait_until_quiet)
from ledger_data import ensure_export  # noqa: E402

# (keys by id: cryptography objects, keys by id: raw bytes, [(key_id, signature, message, line, sig + message)])
# shared with forked workers
_WORK = None


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
    raw_keys = {k["key_id"]: base64.b64decode(k["public_key"]) for k in keys["keys"]}
    by_id = {key_id: Ed25519PublicKey.from_public_bytes(raw) for key_id, raw in raw_keys.items()}
    work = []
    with open(paths["export"], "rb") as handle:
        for number, raw in enumerate(handle):
            if limit is not None and number >= limit:
                break
            line = raw.rstrip(b"\n")
            key_id, signature, message = signed_parts(line)
            work.append((key_id, signature, message, line, signature + message))
    return by_id, raw_keys, work


def raw_verify(start: int, stop: int, library: str = "cryptography") -> int:
    """Ed25519 verify + leaf hash + running-tree node hashes for work[start:stop]."""
    by_id, raw_keys, work = _WORK
    sha = hashlib.sha256
    stack: list[tuple[int, bytes]] = []
    verified = 0
    if library == "cryptography":
        def check(key_id, signature, message, _signed):
            by_id[key_id].verify(signature, message)  # raises InvalidSignature
    else:
        from nacl.bindings import crypto_sign_open

        def check(key_id, _signature, _message, signed):
            crypto_sign_open(signed, raw_keys[key_id])  # raises BadSignatureError
    for key_id, signature, message, line, signed in work[start:stop]:
        check(key_id, signature, message, signed)
        verified += 1
        level, node = 0, sha(b"\x00" + line).digest()
        while stack and stack[-1][0] == level:
            node = sha(b"\x01" + stack.pop()[1] + node).digest()
            level += 1
        stack.append((level, node))
    return verified


def raw_rate(n: int, processes: int, library: str = "cryptography") -> tuple[float, float]:
    if processes == 1:
        started = time.perf_counter()
        assert raw_verify(0, n, library) == n
        elapsed = time.perf_counter() - started
    else:
        bounds = [(n * i // processes, n * (i + 1) // processes, library) for i in range(processes)]
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            pool.starmap(raw_verify, [(0, 0, library)] * processes)  # the workers exist before the clock starts
            started = time.perf_counter()
            assert sum(pool.starmap(raw_verify, bounds)) == n
            elapsed = time.perf_counter() - started
    return n / elapsed, elapsed


def run_measured_tree(argv: list[str]) -> tuple[int, float, float, float, str]:
    """Run a command; (exit code, wall seconds, peak RSS MiB of the command's process, sum of the
    peak RSS of its child processes (the --jobs workers), stderr). Peaks are VmHWM from /proc,
    polled every 10 ms, as _common.run_measured does."""
    started = time.perf_counter()
    err_file = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err_file)
    peak, children = 0.0, {}
    while process.poll() is None:
        hwm = rss_mib(process.pid)[1]
        if hwm == hwm:
            peak = max(peak, hwm)
        for child in children_of(process.pid):
            child_hwm = rss_mib(child)[1]
            if child_hwm == child_hwm:
                children[child] = max(children.get(child, 0.0), child_hwm)
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    err_file.seek(0)
    return process.returncode, elapsed, peak, sum(children.values()), err_file.read().decode("utf-8", "replace")


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
    with open(paths["export"], "rb") as handle:
        n = sum(1 for _ in handle)
    report.line(f"export of {n:,} entries ({size_mib:,.0f} MiB)")

    verifier = {}
    for jobs in (1, 2):
        wait_until_quiet(report)
        foreign = ForeignCpu().start()
        argv = [os.path.join(BIN, "python"), "-m", "voucher_service.ledger.verify", "export", paths["export"],
                "--checkpoint", paths["checkpoint"], "--keys", paths["keys"], "--jobs", str(jobs)]
        code, elapsed, peak_mib, workers_mib, err = run_measured_tree(argv)
        usage = foreign.stop()
        if code != 0:
            raise SystemExit(f"the verifier failed (--jobs {jobs}): {err}")
        verifier[jobs] = {"seconds": elapsed, "rate": n / elapsed, "peak_rss_mib": peak_mib,
                          "workers_peak_rss_mib": workers_mib, "foreign_cores": usage["cores"]}
        memory = f"peak RSS {peak_mib:.0f} MiB" + (f" (+ workers {workers_mib:.0f} MiB)" if jobs > 1 else "")
        report.line(f"   verifier --jobs {jobs} (python -m voucher_service.ledger.verify export): {elapsed:6.1f} s  "
                    f"{n / elapsed:>9,.0f} entries/s   {memory}")
        if usage["cores"] >= 0.1:
            report.line(f"      {foreign_note(usage)}")

    started = time.perf_counter()
    _WORK = prepare(paths, None)
    report.line(f"   (raw baseline inputs cut out of the lines in {time.perf_counter() - started:.1f} s, untimed)")
    raw = {}
    for library, label in (("cryptography", "raw cryptography Ed25519 + hashlib"),
                           ("sodium", "raw libsodium Ed25519 + hashlib")):
        wait_until_quiet(report)
        foreign = ForeignCpu().start()
        one, one_s = raw_rate(n, 1, library)
        two, two_s = raw_rate(n, 2, library)
        usage = foreign.stop()
        raw[library] = {"one_core_rate": one, "two_core_rate": two}
        report.line(f"   {label}, one core:  {one_s:6.1f} s  {one:>9,.0f} entries/s")
        report.line(f"   {label}, two cores: {two_s:6.1f} s  {two:>9,.0f} entries/s ({two / one:.2f}x one core)")
        if usage["cores"] >= 0.1:
            report.line(f"      {foreign_note(usage)}")
    crypto1, sodium1, sodium2 = (raw["cryptography"]["one_core_rate"], raw["sodium"]["one_core_rate"],
                                 raw["sodium"]["two_core_rate"])
    v1, v2 = verifier[1]["rate"], verifier[2]["rate"]
    report.line(f"   verifier --jobs 1 / raw cryptography one core = {v1 / crypto1:.2f}x   "
                f"/ raw libsodium one core = {v1 / sodium1:.2f}x")
    report.line(f"   verifier --jobs 2 / raw cryptography one core = {v2 / crypto1:.2f}x   "
                f"/ raw libsodium one core = {v2 / sodium1:.2f}x   / raw libsodium two cores = {v2 / sodium2:.2f}x")
    per_entry_us = 1e6 / v1 - 1e6 / sodium1
    report.line(f"   the verifier's own work per entry (one process, beyond raw libsodium + hashlib): "
                f"{per_entry_us:.0f} us")
    report.figure("verify", {"entries": n, "export_mib": size_mib,
                             "verifier_s": verifier[1]["seconds"], "verifier_rate": v1,
                             "verifier_peak_rss_mib": verifier[1]["peak_rss_mib"],
                             "verifier_jobs": {str(k): v for k, v in verifier.items()},
                             "raw_one_core_rate": crypto1, "raw_two_core_rate": raw["cryptography"]["two_core_rate"],
                             "raw_sodium_one_core_rate": sodium1, "raw_sodium_two_core_rate": sodium2,
                             "verifier_overhead_us_per_entry": per_entry_us})
    report.target("verifier --jobs 1 / raw cryptography one-core rate", v1 / crypto1, 0.8, unit="x")
    report.target("verifier --jobs 2 / raw cryptography one-core rate", v2 / crypto1, 1.8, unit="x")

    if args.profile:
        from pyinstrument import Profiler

        from voucher_service.ledger import verify
        lines = [w[3] + b"\n" for w in _WORK[2][:20_000]]
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
