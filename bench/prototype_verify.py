"""What-if for the offline verifier: how fast the same checks run with the
patches proposed in docs/performance.md, prototyped here (bench/ only; the
service's verifier is not changed).

    .venv/bin/python bench/prototype_verify.py [--quick] [--entries 300000] [--processes 2]

Patch A (one core), in voucher_service/ledger/verify.py and entry.py:
  1. the signed bytes are the line with its top-level `"sig"` member cut out
     (RFC 8785 puts it just before "ts" and "v", so it is the line's last
     `,"sig":`), instead of a second canonical_bytes over a dict without sig;
  2. "is this line canonical?" is answered by the C json encoder
     (json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False))
     whenever the line has no character outside the Basic Multilingual Plane,
     where code-point order and RFC 8785's UTF-16 order of keys agree; json.loads
     refuses floats and integers beyond 2^53 through its parse hooks, as
     canonical_bytes does; other lines take the existing pure-Python path;
  3. ts validity by datetime.fromisoformat (after the same regex) instead of
     strptime; 4. one Ed25519PublicKey object per published key.
Patch B (cores): `--processes N` splits the export at line boundaries into
  chunks checked in N worker processes (parse, canonical form, shape,
  signature, leaf hash), while the parent replays balances and the running
  tree in seq order from the workers' (leaf hash, postings, ts): the same
  checks, the same first failing seq, memory still bounded (chunks of 4 MiB).

Reported against the service's verifier and raw Ed25519 + hashlib (as in
bench_verify.py), on the same export, in the same run. Before timing, both
verifiers are run on tampered copies of the first lines and must fail at the
same seq.
"""
from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import re
import sys
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BIN, ForeignCpu, Report, foreign_note, run_measured, wait_until_quiet  # noqa: E402
from ledger_data import ensure_export  # noqa: E402

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from voucher_service.ledger import merkle, verify  # noqa: E402
from voucher_service.ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes  # noqa: E402
from voucher_service.ledger.verify import VerificationError  # noqa: E402

SUPPLEMENTARY = re.compile("[\U00010000-\U0010ffff]")
CHUNK_BYTES = 4 << 20


def _refuse_float(text):
    raise ValueError(f"{text}: floats are not allowed in ledger values")


def _checked_int(text):
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"integer {value} is beyond 2^53 and cannot be canonical JSON")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _fast_timestamp(value, what, fail):
    if not isinstance(value, str) or not verify.TIMESTAMP.match(value):
        fail(f"{what} {verify._show(value)} is not an RFC 3339 UTC time with microseconds")
    try:
        datetime.fromisoformat(value[:-1])
    except ValueError:
        fail(f"{what} {value} is not a valid date and time")
    return value


class FastChecker:
    def __init__(self, keys: verify.KeySet):
        self.keys = keys
        self.public = {k.key_id: Ed25519PublicKey.from_public_bytes(k.public_key_raw) for k in keys.keys}

    def check(self, line: bytes, index: int) -> dict:
        def fail(why):
            raise VerificationError(why, seq=index)

        line = verify._line_bytes(line)
        if len(line) > verify.MAX_LINE_BYTES:
            fail(f"line longer than {verify.MAX_LINE_BYTES} bytes")
        if not line:
            fail("empty line (the export ends early or has a blank line)")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"not UTF-8 ({exc.reason} at byte {exc.start})")
        try:
            entry = json.loads(text, parse_float=_refuse_float, parse_int=_checked_int,
                               parse_constant=_refuse_constant)
            if not isinstance(entry, dict):
                raise ValueError("an entry must be a JSON object")
            if SUPPLEMENTARY.search(text) is None:   # patch 2
                canonical = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), sort_keys=True) == text
            else:
                canonical = canonical_bytes(entry) == line
            if not canonical:
                raise ValueError("entry bytes are not canonical (RFC 8785)")
        except (ValueError, TypeError, RecursionError) as exc:
            fail(f"not an entry in canonical JSON (RFC 8785): {exc}")
        original, verify._timestamp = verify._timestamp, _fast_timestamp  # patch 3, for _check_shape only
        try:
            verify._check_shape(entry, index, fail)
        finally:
            verify._timestamp = original
        sig = entry["sig"]
        key = self.keys.by_id.get(sig["key_id"])
        if key is None:
            fail(f"signed by key {verify._show(sig['key_id'])}, which is not published")
        if key.region != entry["region"]:
            fail(f"recorded for region {entry['region']} but signed by key {key.key_id} of region {key.region}")
        if not key.valid_at(entry["ts"]):
            fail(f"signed at {entry['ts']} by key {key.key_id}, {key.validity()}")
        raw = verify._strict_b64(sig["value"])
        if raw is None or len(raw) != 64:
            fail("sig.value is not the canonical base64 of a 64-byte Ed25519 signature")
        member = b',"sig":' + json.dumps(sig, ensure_ascii=False, separators=(",", ":"),
                                         sort_keys=True).encode("utf-8")
        start = line.rfind(b',"sig":')   # patch 1: the signed bytes are the line without its sig
        if line[start:start + len(member)] != member:
            fail("sig member not where RFC 8785 puts it")
        try:
            self.public[key.key_id].verify(raw, line[:start] + line[start + len(member):])  # patch 4
        except InvalidSignature:
            fail(f"the signature by key {key.key_id} does not verify: the entry was changed or signed by another key")
        return entry


# --- patch B: chunks in worker processes, replay in order in the parent ---------------------

_STATE: dict = {}


def _init_worker(keys_path: str, wanted: set) -> None:
    _STATE["checker"] = FastChecker(verify.load_keys_file(keys_path))
    _STATE["wanted"] = wanted


def _check_chunk(task):
    """One chunk: (first index, leaf hashes as one bytes, postings as (index, source, destination, amount),
    {tree size: ts} for the sizes the parent needs, failure or None). Compact, so the pipe stays cheap."""
    path, offset, length, first_index = task
    checker, wanted = _STATE["checker"], _STATE["wanted"]
    leaves, postings, ts_at = [], [], {}
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    index = first_index
    for line in data.split(b"\n")[:-1]:
        try:
            entry = checker.check(line, index)
        except VerificationError as exc:
            return first_index, b"".join(leaves), postings, ts_at, (exc.why, exc.seq)
        leaves.append(merkle.leaf_hash(line))
        for p in entry["postings"]:
            postings.append((index, p["source"], p["destination"], p["amount"]))
        index += 1
        if index in wanted:
            ts_at[index] = entry["ts"]
    return first_index, b"".join(leaves), postings, ts_at, None


def chunks(path: str):
    """(path, offset, length, first index) of pieces of about CHUNK_BYTES, cut after a newline."""
    size, offset, index = os.path.getsize(path), 0, 0
    with open(path, "rb") as handle:
        while offset < size:
            handle.seek(offset)
            data = handle.read(CHUNK_BYTES)
            cut = data.rfind(b"\n") + 1 if offset + len(data) < size else len(data)
            if cut == 0:
                cut = len(data)
            yield path, offset, cut, index
            index += data.count(b"\n", 0, cut)
            offset += cut


def parallel_verify(export: str, checkpoint_path: str, keys_path: str, processes: int) -> tuple[int, bytes]:
    keys = verify.load_keys_file(keys_path)
    checkpoint, signers = verify.open_checkpoint(verify.read_text(checkpoint_path, "checkpoint"), keys)
    tree = verify._RunningTree()
    balances: dict[str, int] = {}
    roots, last_ts = {}, {}
    context = multiprocessing.get_context("fork")
    wanted = {checkpoint.size}
    with context.Pool(processes, initializer=_init_worker, initargs=(keys_path, wanted)) as pool:
        for first, leaves, postings, ts_at, failure in pool.imap(_check_chunk, chunks(export)):
            for index, source, destination, amount in postings:  # in seq order, as verify._apply_postings
                balances[source] = balances.get(source, 0) - amount
                balances[destination] = balances.get(destination, 0) + amount
                if balances[source] < 0 and not source.startswith(verify.NEGATIVE_ALLOWED_PREFIX):
                    raise VerificationError(f"account {source} goes negative", seq=index)
            for start in range(0, len(leaves), 32):
                tree.append(leaves[start:start + 32])
                if tree.size in wanted:
                    roots[tree.size], last_ts[tree.size] = tree.root(), ts_at[tree.size]
            if failure is not None:
                raise VerificationError(failure[0], seq=failure[1])
    if tree.size < checkpoint.size or roots.get(checkpoint.size) != checkpoint.root_hash:
        raise VerificationError("root or size differs from the checkpoint", where="checkpoint")
    verify.check_cosigners(signers, keys, last_ts=last_ts.get(checkpoint.size), require_active=True)
    if sum(balances.values()) != 0:
        raise VerificationError("balances do not sum to zero")
    return tree.size, roots[checkpoint.size]


def _apply_postings_pruned(entry: dict, balances: dict, index: int) -> None:
    """Patch C: verify._apply_postings, then forget accounts back at zero (absent means zero),
    so memory holds the accounts with a balance, not every account the log ever named."""
    touched = []
    for posting in entry["postings"]:
        amount = posting["amount"]
        balances[posting["source"]] = balances.get(posting["source"], 0) - amount
        balances[posting["destination"]] = balances.get(posting["destination"], 0) + amount
        touched.append(posting["source"])
    for account in touched:
        if balances[account] < 0 and not account.startswith(verify.NEGATIVE_ALLOWED_PREFIX):
            raise VerificationError(f"account {account} goes negative ({balances[account]} fen)", seq=index)
    for posting in entry["postings"]:
        for account in (posting["source"], posting["destination"]):
            if balances.get(account) == 0:
                del balances[account]


def single_verify(export: str, checkpoint_path: str, keys_path: str, prune: bool = False) -> tuple[int, bytes]:
    """verify.verify_export with patch A in place of check_entry (and patch C if `prune`)."""
    keys = verify.load_keys_file(keys_path)
    checker = FastChecker(keys)
    original = verify.check_entry
    verify.check_entry = lambda line, index, _keys: checker.check(line, index)
    if prune:
        verify._apply_postings = _apply_postings_pruned
    try:
        with open(export, "rb") as handle:
            summary = verify.verify_export(verify.read_lines(handle), verify.read_text(checkpoint_path, "checkpoint"),
                                           keys)
    finally:
        verify.check_entry = original
    return summary.entries, base64.b64decode(summary.root)


def self_check(paths: dict) -> int:
    """Tampered copies of the first lines: the service's check_entry and the prototype fail at the same seq."""
    keys = verify.load_keys_file(paths["keys"])
    checker = FastChecker(keys)
    with open(paths["export"], "rb") as handle:
        lines = [next(handle) for _ in range(3000)]
    cases = 0
    for label, index, change in (
            ("amount changed", 1500, lambda l: l.replace(b'"amount":', b'"amount":1', 1)),
            ("key reordered", 1700, lambda l: l.replace(b'{"actor"', b'{"zactor"', 1)),
            ("whitespace", 1800, lambda l: l.replace(b'","', b'", "', 1)),
            ("sig value changed", 2100, lambda l: l.replace(b'"value":"', b'"value":"A', 1)),
            ("float", 2200, lambda l: l.replace(b'"v":1}', b'"v":1.0}', 1)),
            ("seq swapped", 2300, lambda l: lines[2301])):
        while change(lines[index]) == lines[index]:  # the first line from `index` on that the change alters
            index += 1
        for number, line in enumerate(lines[:index + 1]):
            tampered = change(line) if number == index else line
            errors = []
            for function in (lambda: verify.check_entry(tampered, number, keys),
                             lambda: checker.check(tampered, number)):
                try:
                    function()
                    errors.append(None)
                except VerificationError as exc:
                    errors.append(exc.seq)
            if errors[0] != errors[1]:
                raise SystemExit(f"prototype disagrees on '{label}': service {errors[0]}, prototype {errors[1]}")
        if errors[0] != index:
            raise SystemExit(f"'{label}' was not caught at {index}: {errors}")
        cases += 1
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries")
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--memory-sizes", default="", help="e.g. 100000,1000000: peak RSS of patch A + C "
                                                            "(zero balances forgotten) at these sizes")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        paths = ensure_export(args.memory_child)
        single_verify(paths["export"], paths["checkpoint"], paths["keys"], prune=True)
        return
    if args.quick:
        args.entries = 100_000
    report = Report("prototype_verify")
    paths = ensure_export(args.entries)
    report.line(f"   self-check: {self_check(paths)} kinds of tampering caught at the same seq by both")
    import bench_verify
    bench_verify._WORK = bench_verify.prepare(paths, None)
    n = len(bench_verify._WORK[1])
    wait_until_quiet(report)
    foreign = ForeignCpu().start()
    raw1, _ = bench_verify.raw_rate(n, 1)
    bench_verify._WORK = None
    code, service_s, _peak, err = run_measured([
        os.path.join(BIN, "python"), "-m", "voucher_service.ledger.verify", "export", paths["export"],
        "--checkpoint", paths["checkpoint"], "--keys", paths["keys"]])
    if code != 0:
        raise SystemExit(f"the service's verifier failed: {err}")
    started = time.perf_counter()
    entries_a, root_a = single_verify(paths["export"], paths["checkpoint"], paths["keys"])
    a_s = time.perf_counter() - started
    started = time.perf_counter()
    entries_b, root_b = parallel_verify(paths["export"], paths["checkpoint"], paths["keys"], args.processes)
    b_s = time.perf_counter() - started
    usage = foreign.stop()
    assert entries_a == entries_b == n and root_a == root_b
    rows = [("raw Ed25519 + hashlib, one core", raw1, None),
            ("service verifier (CLI, one process)", n / service_s, service_s),
            ("patch A: one core", n / a_s, a_s),
            (f"patch A + B: {args.processes} processes", n / b_s, b_s)]
    for label, rate, seconds in rows:
        report.line(f"   {label:<36} {rate:>9,.0f} entries/s   {rate / raw1:.2f}x raw one-core"
                    + (f"   ({seconds:.1f} s)" if seconds else ""))
    if usage["cores"] >= 0.1:
        report.line(f"      {foreign_note(usage)}")
    report.figure("rates", {"raw_one_core": raw1, "service": n / service_s, "patch_a": n / a_s,
                            "patch_a_b": n / b_s, "processes": args.processes, "entries": n})
    peaks = {}
    for size in [int(s) for s in args.memory_sizes.split(",") if s]:
        code, seconds, peak, err = run_measured([os.path.join(BIN, "python"), os.path.abspath(__file__),
                                                 "--memory-child", str(size)])
        if code != 0:
            raise SystemExit(err)
        peaks[size] = peak
        report.line(f"   patch A + C (zero balances forgotten), {size:>9,} entries: peak RSS {peak:.1f} MiB "
                    f"({seconds:.1f} s)")
    if len(peaks) >= 2:
        growth = peaks[max(peaks)] - peaks[min(peaks)]
        report.figure("memory_patch_c", {str(k): v for k, v in peaks.items()})
        report.target(f"patch C verification peak RSS growth {min(peaks):,} -> {max(peaks):,}", growth,
                      min(0.10 * peaks[min(peaks)], 20.0), higher_is_better=False, unit=" MiB")
    report.target("patch A / raw one-core", (n / a_s) / raw1, 0.8, unit="x")
    report.target(f"patch A+B on {args.processes} processes / raw one-core", (n / b_s) / raw1, 1.8, unit="x")
    report.save()


if __name__ == "__main__":
    main()
