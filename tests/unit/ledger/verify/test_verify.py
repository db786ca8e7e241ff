"""The offline verifier against logs built in memory: no database, no Flask.

A good log passes; every kind of tampering is refused, naming the first bad
seq (or the checkpoint); garbage input is a clean VerificationError, never
another exception.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_service.cli.verify import verify_command, verify_receipt_command
from voucher_service.ledger import Entry, Posting, SigningKey, merkle, sign_entry
from voucher_service.ledger.note import Checkpoint, key_hash, sign_note, verifier_key
from voucher_service.ledger.verify import (
    VerificationError,
    check_entry,
    load_keys,
    main,
    open_checkpoint,
    read_lines,
    verify_export,
    verify_receipt,
)

ORIGIN = "vouchers.test/ledger"
T0 = "2026-01-01T00:00:00.000000Z"


def ts(n: int) -> str:
    return f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}.000000Z"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Region:
    """A region's keys: (SigningKey, valid_from, valid_until) in order."""

    def __init__(self, code: str, valid_from: str = T0):
        self.code = code
        self.keys = [[SigningKey.generate(code), valid_from, None]]

    def rotate(self, at: str) -> None:
        self.keys[-1][2] = at
        self.keys.append([SigningKey.generate(self.code), at, None])

    def key_at(self, when: str) -> SigningKey:
        for key, start, end in self.keys:
            if start <= when and (end is None or when < end):
                return key
        raise AssertionError(f"{self.code} has no key at {when}")

    @property
    def active(self) -> SigningKey:
        return self.keys[-1][0]

    def note_name(self) -> str:
        return f"{ORIGIN}/{self.code}"

    def signer(self, key: SigningKey | None = None):
        key = key or self.active
        return (self.note_name(), key.sign, key.public_key_raw)


class Log:
    def __init__(self, *codes: str):
        self.regions = {code: Region(code) for code in codes or ("KS", "SH")}
        self.lines: list[bytes] = []

    def add(self, region: str, postings=(), *, kind: str = "test.entry", data=None, key: SigningKey | None = None,
            when: str | None = None, seq: int | None = None) -> bytes:
        when = when or ts(len(self.lines) + 1)
        entry = Entry(seq=len(self.lines) if seq is None else seq, ts=when, kind=kind, region=region,
                      actor=f"usr_{region.lower()}", refs={"region": region},
                      postings=tuple(Posting(*p) for p in postings), data=data or {"note": "检验检测 #1"})
        line = sign_entry(entry, key or self.regions[region].key_at(when))
        self.lines.append(line)
        return line

    def keys_json(self) -> dict:
        keys = []
        for region in self.regions.values():
            for key, start, end in region.keys:
                keys.append({"key_id": key.key_id, "region": region.code, "alg": "ed25519",
                             "public_key": b64(key.public_key_raw), "note_name": region.note_name(),
                             "note_key": verifier_key(region.note_name(), key.public_key_raw),
                             "valid_from": start, "valid_until": end})
        return {"origin": ORIGIN, "keys": keys}

    def keys(self):
        return load_keys(self.keys_json())

    def root(self, size: int, lines=None) -> bytes:
        lines = self.lines if lines is None else lines
        return merkle.root_from_leaves([merkle.leaf_hash(line) for line in lines[:size]])

    def checkpoint(self, size: int | None = None, *, signers=None, root: bytes | None = None,
                   origin: str = ORIGIN) -> str:
        size = len(self.lines) if size is None else size
        signers = signers if signers is not None else [r.signer() for r in self.regions.values()]
        return sign_note(Checkpoint(origin, size, root if root is not None else self.root(size)).text(), signers)

    def export(self, lines=None) -> list[bytes]:
        return [line + b"\n" for line in (self.lines if lines is None else lines)]

    def blob(self) -> bytes:
        return b"".join(self.export())

    def receipt(self, seq: int, size: int | None = None) -> dict:
        size = len(self.lines) if size is None else size
        leaves = [merkle.leaf_hash(line) for line in self.lines[:size]]
        proof = merkle.inclusion_proof(seq, size, _memory_reader(leaves))
        note = self.checkpoint(size)
        tlog = "\n".join(["c2sp.org/tlog-proof@v1", f"index {seq}", *map(b64, proof)]) + "\n\n" + note
        return {"entry": self.lines[seq].decode("utf-8"), "leaf_index": seq, "leaf_hash": b64(leaves[seq]),
                "tree_size": size, "inclusion_proof": [b64(h) for h in proof], "checkpoint": note,
                "tlog_proof": tlog}


def _memory_reader(leaves):
    def read(nodes):
        out = []
        for level, index in nodes:
            lo = index << level
            out.append(merkle.root_from_leaves(leaves[lo: lo + (1 << level)]))
        return out
    return read


def standard_log(*codes: str) -> Log:
    """Fund, issue, reserve, redeem, settle: treasury goes negative (allowed), nothing else does."""
    log = Log(*(codes or ("KS", "SH")))
    log.add("KS", [("treasury:KS", "budget:KS", 1_000_000)], kind="budget.funded")
    log.add("SH", [("treasury:SH", "budget:SH", 2_000_000)], kind="budget.funded")
    log.add("KS", [("budget:KS", "voucher:v1", 300_000)], kind="voucher.issued")
    log.add("KS", [("voucher:v1", "voucher:v1:held", 100_000)], kind="redemption.reserved",
            data={"catalog_code": "TS-01", "provider": "prv-sh-001"})
    log.add("SH", [], kind="provider.registered", data={"name": "上海测试中心", "categories": ["TS"]})
    log.add("KS", [("voucher:v1:held", "payable:KS:prv-sh-001", 100_000)], kind="redemption.approved")
    log.add("SH", [("budget:SH", "voucher:v2", 50_000)], kind="voucher.issued")
    log.add("KS", [("payable:KS:prv-sh-001", "paid:prv-sh-001", 60_000),
                   ("voucher:v1", "budget:KS", 10_000)], kind="settlement.executed")
    for code in codes[2:]:
        log.add(code, [(f"treasury:{code}", f"budget:{code}", 5_000)], kind="budget.funded")
    return log


@pytest.fixture(scope="module")
def log():
    return standard_log()


def rejected(lines, checkpoint, keys, previous=None) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_export(lines, checkpoint, keys, previous)
    return info.value


def replace_line(log: Log, seq: int, line: bytes) -> list[bytes]:
    lines = log.export()
    lines[seq] = line + b"\n"
    return lines


# --- a good log --------------------------------------------------------------------

def test_a_good_log_passes(log):
    summary = verify_export(log.export(), log.checkpoint(), log.keys())
    assert summary.entries == summary.checkpoint_size == len(log.lines) == 8
    assert summary.root == b64(log.root(8))
    assert summary.cosigned_by == ("KS", "SH")
    # Nine accounts named, eight hold money at the end: voucher:v1:held is back at zero.
    assert summary.accounts == 8
    assert "8 entries" in summary.text() and "cosigned by KS, SH" in summary.text()


def test_lines_without_newlines_and_from_a_file_pass(log):
    keys = log.keys()
    assert verify_export(log.lines, log.checkpoint(), keys).entries == 8
    assert verify_export(read_lines(io.BytesIO(log.blob())), log.checkpoint(), keys).entries == 8
    assert verify_export(read_lines(io.BytesIO(log.blob()[:-1])), log.checkpoint(), keys).entries == 8


def test_an_export_longer_than_the_checkpoint_passes(log):
    summary = verify_export(log.export(), log.checkpoint(5), log.keys())
    assert (summary.entries, summary.checkpoint_size, summary.root) == (8, 5, b64(log.root(5)))


def test_an_empty_log_and_an_empty_checkpoint_pass():
    log = Log()
    assert verify_export([], log.checkpoint(), log.keys()).root == b64(merkle.EMPTY_ROOT)


@pytest.mark.parametrize("previous_size", [0, 1, 3, 4, 7, 8])
def test_a_previous_checkpoint_that_the_log_extends_passes(log, previous_size):
    summary = verify_export(log.export(), log.checkpoint(), log.keys(), log.checkpoint(previous_size))
    assert summary.previous_size == previous_size and "extends the previous checkpoint" in summary.text()


def test_treasury_may_go_negative_but_balances_sum_to_zero(log):
    # The standard log takes both treasuries below zero: that is the only allowed negative.
    assert verify_export(log.export(), log.checkpoint(), log.keys()).accounts == 8


def test_a_third_region_cosigns_and_is_required():
    log = standard_log("KS", "SH", "WJ")
    assert verify_export(log.export(), log.checkpoint(), log.keys()).cosigned_by == ("KS", "SH", "WJ")
    partial = log.checkpoint(signers=[log.regions["KS"].signer(), log.regions["SH"].signer()])
    error = rejected(log.export(), partial, log.keys())
    assert error.where == "checkpoint" and "WJ" in error.why


def test_key_rotation_keeps_old_signatures_valid():
    log = standard_log()
    log.regions["KS"].rotate(ts(20))
    log.add("KS", [("budget:KS", "voucher:v3", 1_000)], when=ts(21))
    previous = log.checkpoint(8, signers=[log.regions["KS"].signer(log.regions["KS"].keys[0][0]),
                                          log.regions["SH"].signer()])
    summary = verify_export(log.export(), log.checkpoint(), log.keys(), previous)
    assert summary.entries == 9 and summary.previous_size == 8


def test_the_export_is_streamed_and_the_first_bad_line_stops_reading(log):
    lines = log.export()
    lines[3] = b"{}\n"
    consumed = []

    def source():
        for line in lines:
            consumed.append(line)
            yield line

    assert rejected(source(), log.checkpoint(), log.keys()).seq == 3
    assert len(consumed) == 4


def test_memory_stays_flat_however_long_the_export():
    import tracemalloc
    key = SigningKey.generate("KS")
    log = Log("KS")
    log.regions["KS"].keys = [[key, T0, None]]
    log.add("KS", [("treasury:KS", "budget:KS", 10**12)])
    for n in range(1, 1500):
        log.add("KS", [("budget:KS", "voucher:v1", 1)] if n % 2 else [("voucher:v1", "budget:KS", 1)],
                when=f"2026-01-01T00:00:00.{n:06d}Z")
    note, keys = log.checkpoint(), log.keys()
    total = sum(len(line) for line in log.lines)
    tracemalloc.start()
    try:
        summary = verify_export((line + b"\n" for line in log.lines), note, keys)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.entries == 1500
    assert peak < total / 10, (peak, total)


# --- tampering with lines ---------------------------------------------------------

def flip(line: bytes, at: int, new: bytes) -> bytes:
    return line[:at] + new + line[at + 1:]


@pytest.mark.parametrize("seq", [0, 3, 7])
@pytest.mark.parametrize("what", ["data", "amount", "signature", "ts", "region", "kind"])
def test_one_changed_byte_is_detected_at_its_seq(log, seq, what):
    line = log.lines[seq]
    if what == "data":
        at = line.index(b'"data":{') + 10
    elif what == "amount":
        at = line.index(b'"amount":') + len(b'"amount":')
    elif what == "signature":
        at = line.index(b'"value":"') + 20
    elif what == "ts":
        at = line.index(b'"ts":"') + 10
    elif what == "region":
        at = line.index(b'"region":"') + len(b'"region":"')
    else:
        at = line.index(b'"kind":"') + len(b'"kind":"') + 1
    old = line[at:at + 1]
    new = b"9" if old != b"9" else b"8"
    if what in ("data", "kind", "signature", "region"):
        new = b"Q" if old != b"Q" else b"R"
    error = rejected(replace_line(log, seq, flip(line, at, new)), log.checkpoint(), log.keys())
    assert error.seq == seq and error.where == f"seq {seq}", error


def test_a_signature_spelled_with_other_padding_bits_is_refused(log):
    # 64 bytes of base64 end "x==": the last character carries 4 unused bits.
    # Same signature, different bytes, different leaf: it must not pass.
    line = log.lines[2]
    at = line.index(b'=="') - 1
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    other = alphabet[alphabet.index(line[at:at + 1]) ^ 1: (alphabet.index(line[at:at + 1]) ^ 1) + 1]
    changed = flip(line, at, other)
    assert base64.b64decode(json.loads(changed)["sig"]["value"]) == base64.b64decode(json.loads(line)["sig"]["value"])
    error = rejected(replace_line(log, 2, changed), log.checkpoint(), log.keys())
    assert error.seq == 2 and "canonical base64" in error.why


def test_a_dropped_entry_is_detected(log):
    lines = log.export()
    del lines[4]
    error = rejected(lines, log.checkpoint(), log.keys())
    assert error.seq == 4 and "expected seq 4, found seq 5" in error.why


def test_two_swapped_entries_are_detected(log):
    lines = log.export()
    lines[2], lines[3] = lines[3], lines[2]
    error = rejected(lines, log.checkpoint(), log.keys())
    assert error.seq == 2


def test_a_repeated_entry_is_detected(log):
    lines = log.export()
    lines.insert(3, lines[2])
    assert rejected(lines, log.checkpoint(), log.keys()).seq == 3


def test_a_truncated_export_is_detected_at_the_checkpoint(log):
    error = rejected(log.export()[:5], log.checkpoint(), log.keys())
    assert error.where == "checkpoint" and error.seq is None and "truncated" in error.why


@pytest.mark.parametrize("whitespace", [b" ", b"\t", b"\r"])
def test_extra_whitespace_is_not_canonical(log, whitespace):
    line = log.lines[5]
    at = line.index(b",") + 1
    error = rejected(replace_line(log, 5, line[:at] + whitespace + line[at:]), log.checkpoint(), log.keys())
    assert error.seq == 5 and "canonical" in error.why


def test_crlf_line_endings_are_refused(log):
    lines = [line + b"\r\n" for line in log.lines]
    assert rejected(lines, log.checkpoint(), log.keys()).seq == 0


def test_a_blank_line_is_refused(log):
    lines = log.export()
    lines.insert(6, b"\n")
    assert rejected(lines, log.checkpoint(), log.keys()).seq == 6


def test_reencoded_json_with_escapes_is_not_canonical(log):
    line = json.dumps(json.loads(log.lines[4]), separators=(",", ":"), sort_keys=True).encode()  # \\u escapes
    assert line != log.lines[4]
    assert rejected(replace_line(log, 4, line), log.checkpoint(), log.keys()).seq == 4


def test_an_entry_signed_by_a_retired_key_after_its_valid_until(log):
    log = standard_log()
    ks = log.regions["KS"]
    retired = ks.keys[0][0]
    ks.rotate(ts(20))
    log.add("KS", [("budget:KS", "voucher:v3", 1_000)], when=ts(21), key=retired)
    error = rejected(log.export(), log.checkpoint(), log.keys())
    assert error.seq == 8 and retired.key_id in error.why and "valid from" in error.why


def test_an_entry_signed_before_its_key_was_valid():
    log = standard_log()
    ks = log.regions["KS"]
    ks.rotate(ts(20))
    log.add("KS", [("budget:KS", "voucher:v3", 1_000)], when=ts(19), key=ks.active)
    assert rejected(log.export(), log.checkpoint(), log.keys()).seq == 8


def test_an_entry_signed_by_a_key_of_another_region():
    log = standard_log()
    log.add("KS", [("budget:KS", "voucher:v3", 1_000)], key=log.regions["SH"].active)
    error = rejected(log.export(), log.checkpoint(), log.keys())
    assert error.seq == 8 and "region SH" in error.why


def test_an_entry_signed_by_an_unpublished_key():
    log = standard_log()
    log.add("KS", [], key=SigningKey.generate("KS"))
    error = rejected(log.export(), log.checkpoint(), log.keys())
    assert error.seq == 8 and "not published" in error.why


@pytest.mark.parametrize("account", ["voucher:v1", "voucher:v1:held", "budget:KS", "payable:KS:prv-sh-001",
                                     "paid:prv-sh-001"])
def test_a_posting_that_drives_an_account_negative(account):
    log = standard_log()
    log.add("KS", [(account, "treasury:KS", 10_000_000)])
    error = rejected(log.export(), log.checkpoint(), log.keys())
    assert error.seq == 8 and account in error.why and "negative" in error.why


@pytest.mark.parametrize("posting", [
    {"source": "a", "destination": "b", "amount": 0},
    {"source": "a", "destination": "b", "amount": -5},
    {"source": "a", "destination": "b", "amount": True},
    {"source": "a", "destination": "b", "amount": "5"},
    {"source": "a", "destination": "a", "amount": 5},
    {"source": "", "destination": "b", "amount": 5},
    {"source": "a", "destination": "b"},
    {"source": "a", "destination": "b", "amount": 5, "memo": "x"},
])
def test_malformed_postings_even_if_signed_are_refused(posting):
    # Signed by the right key (an Entry would refuse these, so sign the JSON directly).
    from voucher_service.ledger.canonical import canonical_bytes
    log = standard_log()
    key = log.regions["KS"].active
    body = {"v": 1, "seq": 8, "ts": ts(30), "kind": "x", "region": "KS", "actor": "usr", "refs": {},
            "postings": [posting], "data": {}}
    body["sig"] = {"key_id": key.key_id, "alg": "ed25519", "value": b64(key.sign(canonical_bytes(body)))}
    log.lines.append(canonical_bytes(body))
    assert rejected(log.export(), log.checkpoint(), log.keys()).seq == 8


@pytest.mark.parametrize("change", [
    lambda e: e.update(v=2), lambda e: e.update(seq=True), lambda e: e.update(ts="2026-01-01T00:00:30Z"),
    lambda e: e.update(ts="2026-02-30T00:00:00.000000Z"), lambda e: e.update(region=""),
    lambda e: e.update(refs={"a": 1}), lambda e: e.update(data=[]), lambda e: e.update(extra=1),
    lambda e: e.pop("actor"), lambda e: e.update(postings={}),
])
def test_entries_of_the_wrong_shape_even_if_signed_are_refused(change):
    from voucher_service.ledger.canonical import canonical_bytes
    log = standard_log()
    key = log.regions["KS"].active
    body = {"v": 1, "seq": 8, "ts": ts(30), "kind": "x", "region": "KS", "actor": "usr", "refs": {},
            "postings": [], "data": {}}
    change(body)
    body["sig"] = {"key_id": key.key_id, "alg": "ed25519", "value": b64(key.sign(canonical_bytes(body)))}
    log.lines.append(canonical_bytes(body))
    assert rejected(log.export(), log.checkpoint(), log.keys()).seq == 8


@settings(max_examples=50)
@given(data=st.data())
def test_flipping_any_byte_of_any_line_is_rejected_at_that_line(log, data):
    blob = log.blob()
    at = data.draw(st.integers(0, len(blob) - 1), label="byte")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != blob[at]), label="value")
    tampered = blob[:at] + bytes([new]) + blob[at + 1:]
    expected_seq = blob[:at].count(b"\n")
    with pytest.raises(VerificationError) as info:
        verify_export(read_lines(io.BytesIO(tampered)), log.checkpoint(), log.keys())
    error = info.value
    if expected_seq == len(log.lines) - 1 and blob[at] == ord("\n"):
        # The last newline replaced: the line is refused as it stands.
        assert error.seq == expected_seq
    else:
        assert error.seq == expected_seq, (at, new, error)


# --- tampering with checkpoints -----------------------------------------------------

def test_a_signature_line_by_an_unknown_key_is_ignored_and_counts_for_nobody(log):
    # c2sp.org/signed-note and Go's note.Open skip lines by unknown keys (a
    # witness's cosignature is one): the line neither breaks the checkpoint
    # nor stands in for the region whose name it borrows.
    stranger = SigningKey.generate("KS")
    borrowed = (f"{ORIGIN}/KS", stranger.sign, stranger.public_key_raw)
    signers = [r.signer() for r in log.regions.values()] + [borrowed]
    assert verify_export(log.export(), log.checkpoint(signers=signers), log.keys()).cosigned_by == ("KS", "SH")
    error = rejected(log.export(), log.checkpoint(signers=[borrowed, log.regions["SH"].signer()]), log.keys())
    assert error.where == "checkpoint" and "not cosigned by region KS" in error.why


def test_a_checkpoint_signed_only_by_an_unknown_key_is_refused(log):
    stranger = SigningKey.generate("XX")
    error = rejected(log.export(), log.checkpoint(signers=[("someone", stranger.sign, stranger.public_key_raw)]),
                     log.keys())
    assert error.where == "checkpoint"


@pytest.mark.parametrize("missing", ["KS", "SH"])
def test_a_checkpoint_missing_a_regions_signature_is_refused(log, missing):
    signers = [r.signer() for code, r in log.regions.items() if code != missing]
    error = rejected(log.export(), log.checkpoint(signers=signers), log.keys())
    assert error.where == "checkpoint" and f"not cosigned by region {missing}" in error.why


def test_a_checkpoint_with_a_wrong_root_is_refused(log):
    error = rejected(log.export(), log.checkpoint(root=log.root(7)), log.keys())
    assert error.where == "checkpoint" and error.seq is None and "root" in error.why


def test_a_checkpoint_with_a_bad_signature_by_a_known_key_is_refused(log):
    note = log.checkpoint()
    body, sigs = note.split("\n\n")
    tampered = body.replace("\n8\n", "\n7\n") + "\n\n" + sigs
    error = rejected(log.export(), tampered, log.keys())
    assert error.where == "checkpoint" and "does not verify" in error.why


def test_a_checkpoint_of_another_origin_is_refused(log):
    error = rejected(log.export(), log.checkpoint(origin="evil.example/ledger"), log.keys())
    assert error.where == "checkpoint" and "origin" in error.why


def test_a_checkpoint_signed_by_a_key_retired_before_its_last_entry_is_refused():
    log = standard_log()
    ks = log.regions["KS"]
    old = ks.keys[0][0]
    ks.rotate(ts(20))
    log.add("KS", [], when=ts(21))
    note = log.checkpoint(signers=[ks.signer(old), log.regions["SH"].signer()])
    error = rejected(log.export(), note, log.keys())
    assert error.where == "checkpoint" and "retired" in error.why


def test_a_checkpoint_with_unicode_digits_is_refused(log):
    note = sign_note(f"{ORIGIN}\n\u0668\n{b64(log.root(8))}\n", [r.signer() for r in log.regions.values()])
    assert rejected(log.export(), note, log.keys()).where == "checkpoint"


def test_a_previous_checkpoint_that_the_new_one_does_not_extend(log):
    fork = Log()
    fork.regions = log.regions
    fork.lines = list(log.lines)
    fork.lines[2] = sign_entry(Entry(seq=2, ts=ts(3), kind="voucher.issued", region="KS", actor="usr_ks",
                                     refs={"region": "KS"}, postings=(Posting("budget:KS", "voucher:v9", 1),),
                                     data={}), log.regions["KS"].active)
    previous = fork.checkpoint(4)
    error = rejected(log.export(), log.checkpoint(), log.keys(), previous)
    assert error.where == "previous checkpoint" and "does not extend" in error.why


def test_a_previous_checkpoint_larger_than_the_new_one(log):
    error = rejected(log.export(), log.checkpoint(5), log.keys(), log.checkpoint(6))
    assert error.where == "previous checkpoint"


def test_a_previous_checkpoint_with_a_bad_signature(log):
    stranger = SigningKey.generate("KS")
    previous = log.checkpoint(4, signers=[(f"{ORIGIN}/KS", stranger.sign, stranger.public_key_raw)])
    assert rejected(log.export(), log.checkpoint(), log.keys(), previous).where == "previous checkpoint"


def test_a_previous_checkpoint_missing_a_region(log):
    previous = log.checkpoint(4, signers=[log.regions["KS"].signer()])
    error = rejected(log.export(), log.checkpoint(), log.keys(), previous)
    assert error.where == "previous checkpoint" and "SH" in error.why


def test_the_first_bad_entry_is_named_before_the_root(log):
    lines = replace_line(log, 6, flip(log.lines[6], 30, b"Z"))
    lines = [lines[i] if i != 7 else flip(log.lines[7], 30, b"Z") + b"\n" for i in range(len(lines))]
    assert rejected(lines, log.checkpoint(), log.keys()).seq == 6


# --- keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("change", [
    lambda k: k.update(origin=""), lambda k: k.update(keys=[]), lambda k: k.pop("keys"),
    lambda k: k["keys"][0].update(alg="rsa"), lambda k: k["keys"][0].update(public_key="AAAA"),
    lambda k: k["keys"][0].update(note_key=k["keys"][1]["note_key"]),
    lambda k: k["keys"][0].update(public_key=k["keys"][1]["public_key"]),
    lambda k: k["keys"][0].update(note_key="name+00000000+AQ=="),
    lambda k: k["keys"][0].update(note_name="other"),
    lambda k: k["keys"][0].update(valid_from="yesterday"),
    lambda k: k["keys"][0].update(valid_until="2025-01-01T00:00:00.000000Z"),
    lambda k: k["keys"][1].update(key_id=k["keys"][0]["key_id"]),
    lambda k: k["keys"].append(dict(k["keys"][0], key_id="copy")),
    lambda k: k["keys"][0].pop("region"),
    lambda k: k["keys"].append("a key"),
])
def test_malformed_keys_are_refused(log, change):
    keys = json.loads(json.dumps(log.keys_json()))
    change(keys)
    with pytest.raises(VerificationError) as info:
        load_keys(keys)
    assert info.value.where == "keys"


# --- receipts -----------------------------------------------------------------------

def test_a_good_receipt_passes(log):
    for seq in range(8):
        result = verify_receipt(log.receipt(seq), log.keys())
        assert result["ok"] and result["seq"] == seq and result["cosigned_by"] == ["KS", "SH"]
    assert verify_receipt(log.receipt(0, 1), log.keys())["tree_size"] == 1


@pytest.mark.parametrize("tamper", [
    "entry_byte", "leaf_hash", "proof_hash", "proof_dropped", "tree_size", "leaf_index", "tlog_index",
    "tlog_hash", "tlog_checkpoint", "checkpoint_region_missing", "checkpoint_other_tree", "entry_newline",
])
def test_a_tampered_receipt_is_refused(log, tamper):
    receipt = log.receipt(5)
    if tamper == "entry_byte":
        receipt["entry"] = receipt["entry"].replace("prv-sh-001", "prv-sh-002")
    elif tamper == "leaf_hash":
        receipt["leaf_hash"] = b64(merkle.leaf_hash(b"x"))
    elif tamper == "proof_hash":
        receipt["inclusion_proof"][1] = b64(merkle.leaf_hash(b"x"))
    elif tamper == "proof_dropped":
        receipt["inclusion_proof"].pop()
    elif tamper == "tree_size":
        receipt["tree_size"] = 7
    elif tamper == "leaf_index":
        receipt["leaf_index"] = 4
    elif tamper == "tlog_index":
        receipt["tlog_proof"] = receipt["tlog_proof"].replace("index 5", "index 4")
    elif tamper == "tlog_hash":
        receipt["tlog_proof"] = receipt["tlog_proof"].replace(receipt["inclusion_proof"][0], b64(bytes(32)))
    elif tamper == "tlog_checkpoint":
        receipt["tlog_proof"] = receipt["tlog_proof"].split("\n\n")[0] + "\n\n" + log.checkpoint(7)
    elif tamper == "checkpoint_region_missing":
        receipt["checkpoint"] = log.checkpoint(signers=[log.regions["KS"].signer()])
    elif tamper == "checkpoint_other_tree":
        receipt["checkpoint"] = log.checkpoint(root=log.root(7))
    elif tamper == "entry_newline":
        receipt["entry"] += "\n"
    with pytest.raises(VerificationError):
        verify_receipt(receipt, log.keys())


# --- the command line ---------------------------------------------------------------

@pytest.fixture
def files(log, tmp_path):
    paths = {"export": tmp_path / "ledger.jsonl", "checkpoint": tmp_path / "checkpoint.txt",
             "keys": tmp_path / "keys.json", "previous": tmp_path / "previous.txt",
             "receipt": tmp_path / "receipt.json"}
    paths["export"].write_bytes(log.blob())
    paths["checkpoint"].write_text(log.checkpoint(), encoding="utf-8")
    paths["previous"].write_text(log.checkpoint(3), encoding="utf-8")
    paths["keys"].write_text(json.dumps(log.keys_json()), encoding="utf-8")
    paths["receipt"].write_text(json.dumps(log.receipt(3)), encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def export_args(files, **override):
    merged = dict(files, **override)
    return ["export", merged["export"], "--checkpoint", merged["checkpoint"], "--keys", merged["keys"]]


def test_main_passes_a_good_log(files, capsys):
    assert main(export_args(files) + ["--previous-checkpoint", files["previous"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 8 entries") and "previous checkpoint of size 3" in out
    assert main(["receipt", files["receipt"], "--keys", files["keys"]]) == 0
    assert "entry 3" in capsys.readouterr().out


def test_main_names_the_first_bad_seq(log, files, capsys, tmp_path):
    lines = log.export()
    del lines[2]
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(lines))
    assert main(export_args(files)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("FAILED at seq 2: ") and captured.out == ""


def test_main_names_the_checkpoint(log, files, capsys, tmp_path):
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(log.export()[:6]))
    assert main(export_args(files)) == 1
    assert capsys.readouterr().err.startswith("FAILED at checkpoint: ")


@pytest.mark.parametrize("which,content", [
    ("keys", b"{not json"), ("keys", b"\xff\xfe\x00"), ("keys", b"[]"), ("keys", b"[" * 100_000),
    ("keys", b'{"origin": "x"}'), ("checkpoint", b"\xff"), ("checkpoint", b"hello\n"), ("checkpoint", b""),
    ("receipt", b"{}"), ("receipt", b"\x00"), ("receipt", b"[1]"), ("export", b"\xff\n"),
])
def test_main_reports_malformed_files_cleanly(files, capsys, tmp_path, which, content):
    path = tmp_path / f"bad-{which}"
    path.write_bytes(content)
    if which == "receipt":
        code = main(["receipt", str(path), "--keys", files["keys"]])
    else:
        code = main(export_args(files, **{which: str(path)}))
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("FAILED") and "Traceback" not in captured.err


def test_main_reports_a_missing_file_cleanly(files, capsys, tmp_path):
    assert main(export_args(files, keys=str(tmp_path / "nope.json"))) == 1
    assert main(export_args(files, export=str(tmp_path / "nope.jsonl"))) == 1
    assert main(["receipt", str(tmp_path / "nope"), "--keys", files["keys"]]) == 1
    assert capsys.readouterr().err.count("FAILED at") == 3


def test_click_commands(log, files, tmp_path):
    runner = CliRunner()
    result = runner.invoke(verify_command, [files["export"], "--checkpoint", files["checkpoint"], "--keys",
                                            files["keys"], "--previous-checkpoint", files["previous"]])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 8 entries")
    result = runner.invoke(verify_receipt_command, [files["receipt"], "--keys", files["keys"]])
    assert result.exit_code == 0 and "entry 3" in result.output
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(replace_line(log, 1, flip(log.lines[1], 40, b"Z"))))
    result = runner.invoke(verify_command, [files["export"], "--checkpoint", files["checkpoint"], "--keys",
                                            files["keys"]])
    assert result.exit_code == 1 and "FAILED at seq 1: " in result.output
    result = runner.invoke(verify_receipt_command, [files["checkpoint"], "--keys", files["keys"]])
    assert result.exit_code == 1 and "FAILED at receipt: " in result.output


def test_the_verifier_runs_without_flask_or_a_database(files, tmp_path):
    """Copy the ledger package alone and run it with Flask and SQL libraries made unimportable."""
    package = os.path.dirname(os.path.abspath(sys.modules["voucher_service.ledger"].__file__))
    shutil.copytree(package, tmp_path / "auditor" / "ledger", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import sys, runpy\n"
            "for name in ('flask', 'sqlmodel', 'sqlalchemy', 'voucher_service', 'click'):\n"
            "    sys.modules[name] = None\n"
            "sys.argv = ['verify'] + sys.argv[1:]\n"
            "runpy.run_module('ledger.verify', run_name='__main__')\n")
    args = [sys.executable, "-c", code] + export_args(files) + ["--previous-checkpoint", files["previous"]]
    done = subprocess.run(args, cwd=tmp_path / "auditor", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 8 entries")
    in_two = subprocess.run(args + ["--jobs", "2"], cwd=tmp_path / "auditor", capture_output=True, text=True,
                            timeout=60)
    assert in_two.returncode == 0, in_two.stderr
    assert in_two.stdout == done.stdout


# --- garbage in, clean errors out ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)
# Any text, lone surrogates included (they cannot be encoded as UTF-8).
any_text = st.builds(lambda a, s, b: a + s + b, st.text(max_size=300),
                     st.text(st.characters(categories=["Cs"]), max_size=1), st.text(max_size=20))


@settings(max_examples=50)
@given(any_text)
def test_garbage_checkpoints_are_clean_errors(log, text):
    with pytest.raises(VerificationError):
        open_checkpoint(text, log.keys())


@settings(max_examples=50)
@given(data=st.data())
def test_mutated_checkpoints_are_clean_errors(log, data):
    note = log.checkpoint()
    at = data.draw(st.integers(0, len(note) - 1))
    insert = data.draw(any_text.map(lambda t: t[:3]))
    mutated = note[:at] + insert + note[at + data.draw(st.integers(0, 2)):]
    try:
        checkpoint, _signers = open_checkpoint(mutated, log.keys())
    except VerificationError:
        return
    # Survived only if the signed text is untouched (e.g. a signature line re-spelled identically).
    assert checkpoint.root_hash == log.root(8)


@settings(max_examples=50)
@given(json_values)
def test_garbage_keys_are_clean_errors(value):
    with pytest.raises(VerificationError):
        load_keys(value)


@settings(max_examples=50)
@given(data=st.data())
def test_mutated_keys_are_clean_errors_or_still_valid(log, data):
    keys = json.loads(json.dumps(log.keys_json()))
    record = data.draw(st.sampled_from(keys["keys"]))
    name = data.draw(st.sampled_from(sorted(record) + ["extra"]))
    record[name] = data.draw(json_values)
    try:
        load_keys(keys)
    except VerificationError:
        pass


@settings(max_examples=50)
@given(json_values)
def test_garbage_receipts_are_clean_errors(log, value):
    with pytest.raises(VerificationError):
        verify_receipt(value, log.keys())


@settings(max_examples=50)
@given(data=st.data())
def test_mutated_receipts_are_clean_errors(log, data):
    original = log.receipt(data.draw(st.integers(0, 7)))
    receipt = dict(original)
    name = data.draw(st.sampled_from(sorted(receipt)))
    receipt[name] = data.draw(json_values | any_text | st.integers(-1, 2**64))
    if receipt == original:
        return
    with pytest.raises(VerificationError):
        verify_receipt(receipt, log.keys())


@settings(max_examples=50)
@given(st.binary(max_size=400) | any_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_garbage_lines_are_clean_errors(log, line):
    with pytest.raises(VerificationError) as info:
        check_entry(line, 0, log.keys())
    assert info.value.seq == 0


def test_deeply_nested_lines_are_clean_errors(log):
    for line in (b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        with pytest.raises(VerificationError):
            check_entry(line, 0, log.keys())


def test_key_hash_collisions_are_not_confused(log):
    # A signature whose name matches a published key but whose key hash does not is "unknown".
    ks = log.regions["KS"]
    other = SigningKey.generate("KS")
    assert key_hash(ks.note_name(), other.public_key_raw) != key_hash(ks.note_name(), ks.active.public_key_raw)
    note = log.checkpoint(signers=[r.signer() for r in log.regions.values()]
                          + [(ks.note_name(), other.sign, other.public_key_raw)])
    # Taken for KS's, the extra line would not verify: it is an unknown key's, and ignored.
    assert verify_export(log.export(), note, log.keys()).cosigned_by == ("KS", "SH")


# --- the published test vectors -------------------------------------------------------

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "schemas", "vectors", "ledger-vectors.json")


@pytest.fixture(scope="module")
def vectors():
    if not os.path.exists(VECTORS):
        pytest.skip("schemas/vectors/ledger-vectors.json is not there")
    with open(VECTORS, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_published_vectors_verify(vectors):
    keys = load_keys(vectors["keys"])
    export = vectors["export"].encode("utf-8")
    summary = verify_export(read_lines(io.BytesIO(export)), vectors["checkpoint"]["note"], keys)
    assert summary.checkpoint_size == vectors["checkpoint"]["tree_size"]
    assert summary.root == vectors["checkpoint"]["root_hash"]


def test_the_published_invalid_vectors_are_refused(vectors):
    keys = load_keys(vectors["keys"])
    export = vectors["export"].encode("utf-8")
    for item in vectors["invalid"]:
        if item["type"] == "entry_line":
            seq = json.loads(item["line"])["seq"]
            with pytest.raises(VerificationError) as info:
                check_entry(item["line"].encode("utf-8"), seq, keys)
            assert info.value.seq == seq, item["what"]
        elif item["type"] == "checkpoint":
            with pytest.raises(VerificationError) as info:
                verify_export(read_lines(io.BytesIO(export)), item["note"], keys)
            assert info.value.where == "checkpoint", item["what"]
