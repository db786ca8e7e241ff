"""The offline verifier's fast paths and its --jobs mode, against real signed logs.

Every kind of tampering fails at the same first seq, with the same message, in
one process (`jobs=1`) and in worker processes over small chunks (`jobs=2`,
so that a few dozen entries make many chunks); a good export gives the same
summary either way. The fast canonical check (the C json encoder), the signed
bytes cut out of the line, the one-pass base64 and timestamp checks and the
libsodium signature check are held to the slower reference they replace.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from datetime import datetime

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from test_verify import T0, Log, b64, standard_log, ts

from voucher_service.cli.verify import verify_command
from voucher_service.ledger import SigningKey, verify
from voucher_service.ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes
from voucher_service.ledger.entry import parse_entry
from voucher_service.ledger.note import verifier_key
from voucher_service.ledger.verify import (
    MAX_LINE_BYTES,
    SIGNATURE_B64,
    TIMESTAMP,
    TIMESTAMP_FORMAT,
    VerificationError,
    load_keys,
    main,
    parallel,
    verify_export,
    verify_export_files,
)
from voucher_service.ledger.verify.common import check_timestamp, strict_b64
from voucher_service.ledger.verify.entries import signed_bytes
from voucher_service.ledger.verify.parallel import export_chunks

SMALL_CHUNKS = (700, 2500)  # bytes: entries are 300-500 bytes, so one to a few lines per chunk
SUPPLEMENTARY_SEQ = 8


def long_log() -> Log:
    """The standard log, then an entry with characters outside the BMP (in values and in keys whose
    UTF-16 order is not their code-point order), then vouchers filled and emptied again and again."""
    log = standard_log()
    # U+FB01 sorts before U+1F600 by code point, after it by UTF-16 code unit (0xFB01 > 0xD83D).
    log.add("SH", [], kind="provider.registered",
            data={"name": "\U00020000 上海测试中心 \U0001F600", "\ufb01": 1, "\U0001F600": 2, "note": "ok"})
    for n in range(30):
        voucher = f"voucher:w{n % 3}"
        log.add("KS", [("budget:KS", voucher, 1_000 + n)], kind="voucher.issued")
        log.add("KS", [(voucher, "budget:KS", 1_000 + n)], kind="voucher.expired")
    return log


@pytest.fixture(scope="module")
def log():
    return long_log()


@pytest.fixture(scope="module")
def files(log, tmp_path_factory):
    directory = tmp_path_factory.mktemp("jobs")
    paths = {"checkpoint": directory / "checkpoint.txt", "keys": directory / "keys.json",
             "previous": directory / "previous.txt"}
    paths["checkpoint"].write_text(log.checkpoint(), encoding="utf-8")
    paths["previous"].write_text(log.checkpoint(20), encoding="utf-8")
    paths["keys"].write_text(json.dumps(log.keys_json()), encoding="utf-8")
    return {"dir": directory, **{name: str(path) for name, path in paths.items()}}


def outcome(files, blob: bytes, *, jobs: int, chunk_bytes: int = verify.CHUNK_BYTES, previous: bool = False,
            start_method: str | None = None):
    """("ok", summary) or ("failed", where, why) of verify_export_files on `blob`."""
    path = files["dir"] / f"export-{os.getpid()}-{jobs}-{chunk_bytes}.jsonl"
    path.write_bytes(blob)
    try:
        summary = verify_export_files(str(path), files["checkpoint"], files["keys"],
                                      files["previous"] if previous else None, jobs=jobs, chunk_bytes=chunk_bytes,
                                      start_method=start_method)
    except VerificationError as exc:
        return ("failed", exc.where, exc.why)
    finally:
        path.unlink()
    return ("ok", summary)


def same_everywhere(files, blob: bytes, **kwargs):
    """The outcome with one process, checked to be the outcome with two over small and default chunks."""
    single = outcome(files, blob, jobs=1, **kwargs)
    for chunk_bytes in SMALL_CHUNKS + (verify.CHUNK_BYTES,):
        assert outcome(files, blob, jobs=2, chunk_bytes=chunk_bytes, **kwargs) == single, chunk_bytes
    return single


def export_with(log: Log, changes: dict[int, bytes | None]) -> bytes:
    """The export with lines replaced (None: dropped)."""
    lines = []
    for seq, line in enumerate(log.lines):
        line = changes.get(seq, line)
        if line is not None:
            lines.append(line + b"\n")
    return b"".join(lines)


def signed_line(log: Log, seq: int, data: str) -> bytes:
    """A correctly signed line at `seq` whose `data` is the JSON text given, written as it is (so it may
    hold what canonical_bytes refuses); the rest is canonical."""
    when = ts(seq + 1)
    key = log.regions["KS"].key_at(when)
    head = ('{"actor":"usr_ks","data":' + data + ',"kind":"test.entry","postings":[],"refs":{"region":"KS"},'
            f'"region":"KS","seq":{seq}')
    tail = f',"ts":"{when}","v":1}}'
    signature = b64(key.sign((head + tail).encode("utf-8")))
    return (head + f',"sig":{{"alg":"ed25519","key_id":"{key.key_id}","value":"{signature}"}}' + tail).encode()


def _other_signature(line: bytes) -> bytes:
    at = line.index(b'"value":"') + len(b'"value":"')
    return line[:at] + (b"B" if line[at:at + 1] != b"B" else b"C") + line[at + 1:]


def _other_padding_bits(line: bytes) -> bytes:
    """The same 64 signature bytes spelled with other unused bits in the last base64 character."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    at = line.index(b'=="') - 1
    return line[:at] + bytes([alphabet[alphabet.index(line[at]) ^ 1]]) + line[at + 1:]


# --- a good export --------------------------------------------------------------------

def test_the_long_log_is_good_and_has_what_the_tests_need(log):
    assert len(log.lines) == 69
    special = log.lines[SUPPLEMENTARY_SEQ].decode("utf-8")
    assert re.search("[\U00010000-\U0010ffff]", special)
    assert special.index('"\U0001F600":2') < special.index('"\ufb01":1')  # RFC 8785: UTF-16 order
    summary = verify_export(log.export(), log.checkpoint(), log.keys())
    assert summary.entries == 69


def test_a_good_export_gives_the_same_summary_with_one_or_two_processes(log, files):
    result = same_everywhere(files, log.blob())
    assert result[0] == "ok"
    summary = result[1]
    assert (summary.entries, summary.checkpoint_size, summary.root) == (69, 69, b64(log.root(69)))
    assert summary.cosigned_by == ("KS", "SH")
    # The vouchers w0..w2 went back to zero after every issue: only the standard log's 8 balances remain.
    assert summary.accounts == 8
    assert same_everywhere(files, log.blob(), previous=True)[1].previous_size == 20


def test_one_line_per_chunk_and_no_final_newline(log, files):
    expected = outcome(files, log.blob(), jobs=1)
    assert outcome(files, log.blob(), jobs=2, chunk_bytes=1) == expected
    assert outcome(files, log.blob()[:-1], jobs=2, chunk_bytes=1) == expected
    assert outcome(files, log.blob()[:-1], jobs=3, chunk_bytes=900) == expected


def test_an_export_longer_than_the_checkpoint_and_an_empty_one(log, files, tmp_path):
    shorter = Log()
    shorter.regions = log.regions
    shorter.lines = log.lines[:30]
    files = dict(files, checkpoint=str(tmp_path / "c30.txt"))
    (tmp_path / "c30.txt").write_text(shorter.checkpoint(), encoding="utf-8")
    result = same_everywhere(files, log.blob())
    assert result[0] == "ok" and (result[1].entries, result[1].checkpoint_size) == (69, 30)
    (tmp_path / "c30.txt").write_text(shorter.checkpoint(0), encoding="utf-8")
    assert same_everywhere(files, b"")[1].entries == 0


def test_a_truncated_export_fails_at_the_checkpoint_either_way(log, files):
    result = same_everywhere(files, export_with(log, {seq: None for seq in range(50, 69)}))
    assert result[:2] == ("failed", "checkpoint") and "truncated" in result[2]


def test_the_start_method_spawn_works_too(log, files):
    assert outcome(files, log.blob(), jobs=2, chunk_bytes=2500, start_method="spawn") == \
        outcome(files, log.blob(), jobs=1)
    bad = export_with(log, {33: log.lines[33].replace(b'"v":1}', b'"v":1.0}')})
    result = outcome(files, bad, jobs=2, chunk_bytes=2500, start_method="spawn")
    assert result == outcome(files, bad, jobs=1) and result[1] == "seq 33"


# --- tampering: the same first bad seq and message, one process or two --------------------

def _move_sig_to_front(line: bytes) -> bytes:
    entry = json.loads(line)
    sig = entry.pop("sig")
    return json.dumps({"sig": sig, **entry}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _escape_first_non_ascii(line: bytes) -> bytes:
    text = line.decode("utf-8")
    char = next(c for c in text if ord(c) > 127)
    return text.replace(char, "\\u%04x" % ord(char), 1).encode("utf-8")


def _escape_supplementary(line: bytes) -> bytes:
    """Literal characters outside the BMP written as \\u surrogate pairs: the line is then all BMP."""
    def pair(match):
        code = ord(match.group()) - 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))
    return re.sub("[\U00010000-\U0010ffff]", pair, line.decode("utf-8")).encode("utf-8")


def _code_point_order(line: bytes) -> bytes:
    return json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _reversed_members(line: bytes) -> bytes:
    entry = json.loads(line)
    return json.dumps(dict(reversed(list(entry.items()))), ensure_ascii=False, separators=(",", ":")).encode()


TAMPERING = {
    # name: (seq, change of that line, words the failure must contain)
    "amount changed": (21, lambda l: re.sub(rb'"amount":(\d+)', rb'"amount":1\1', l, count=1), "does not verify"),
    "key renamed": (22, lambda l: l.replace(b'"actor":', b'"actr":', 1), "entry fields wrong"),
    "whitespace added": (23, lambda l: l.replace(b'","', b'", "', 1), "canonical"),
    "members out of order": (24, _reversed_members, "canonical"),
    "escaped unicode": (25, _escape_first_non_ascii, "canonical"),
    "escaped underscore": (26, lambda l: l.replace(b'"usr_ks"', b'"usr\\u005fks"', 1), "canonical"),
    "a float": (27, lambda l: l.replace(b'"v":1}', b'"v":1.0}'), "floats are not allowed"),
    "an integer beyond 2^53": (28, lambda l: l.replace(b'"v":1}', b'"v":9007199254740993}'), "beyond 2^53"),
    "NaN": (29, lambda l: l.replace(b'"v":1}', b'"v":NaN}'), "not a JSON number"),
    "signature changed": (30, _other_signature, "does not verify"),
    "signature padding bits": (31, _other_padding_bits, "canonical base64"),
    "sig member moved": (32, _move_sig_to_front, "canonical"),
    "a lone surrogate": (33, lambda l: l.replace(b'"note":"', b'"note":"\\ud800', 1), "canonical"),
    "supplementary characters, keys in code-point order": (SUPPLEMENTARY_SEQ, _code_point_order, "canonical"),
    "supplementary characters as escaped pairs": (SUPPLEMENTARY_SEQ, _escape_supplementary, "canonical"),
    "supplementary character changed": (SUPPLEMENTARY_SEQ, lambda l: l.replace("\U0001F600".encode(),
                                                                               "\U0001F601".encode(), 1),
                                        "does not verify"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_fails_at_the_same_seq_with_one_or_two_processes(log, files, name):
    seq, change, words = TAMPERING[name]
    changed = change(log.lines[seq])
    assert changed != log.lines[seq], "the change must change the line"
    result = same_everywhere(files, export_with(log, {seq: changed}))
    assert result[:2] == ("failed", f"seq {seq}"), result
    assert words in result[2], result


def test_a_swapped_pair_of_entries(log, files):
    result = same_everywhere(files, export_with(log, {40: log.lines[41], 41: log.lines[40]}))
    assert result[:2] == ("failed", "seq 40") and "expected seq 40, found seq 41" in result[2]


def test_a_dropped_and_a_repeated_entry(log, files):
    assert same_everywhere(files, export_with(log, {12: None}))[:2] == ("failed", "seq 12")
    repeated = log.blob().replace(log.lines[50] + b"\n", (log.lines[50] + b"\n") * 2)
    assert same_everywhere(files, repeated)[:2] == ("failed", "seq 51")


@pytest.mark.parametrize("data,words", [
    ('{"ratio":1.5}', "floats are not allowed"), ('{"ratio":1.0}', "floats are not allowed"),
    ('{"n":1e5}', "floats are not allowed"), ('{"n":9007199254740992}', "beyond 2^53"),
    ('{"n":-9007199254740992}', "beyond 2^53"), ('{"n":123456789012345678901234567890}', "beyond 2^53"),
    ('{"n":NaN}', "not a JSON number"), ('{"n":-Infinity}', "not a JSON number"),
    ('{"n":-0}', "canonical"), ('{"n":01}', "canonical"),
])
def test_numbers_canonical_json_refuses_are_refused_even_when_signed(log, files, data, words):
    # Signed over exactly these bytes: only the number rules can refuse the line.
    line = signed_line(log, 36, data)
    result = same_everywhere(files, export_with(log, {36: line}))
    assert result[:2] == ("failed", "seq 36") and words in result[2], result


def test_the_largest_safe_integers_are_accepted_when_signed(log, files):
    line = signed_line(log, 36, '{"a":%d,"b":%d}' % (MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER))
    blob = export_with(log, {36: line})
    checkpoint = files["dir"] / "c-safe.txt"
    other = Log()
    other.regions, other.lines = log.regions, [l.rstrip(b"\n") for l in blob.splitlines()]
    checkpoint.write_text(other.checkpoint(), encoding="utf-8")
    result = same_everywhere(dict(files, checkpoint=str(checkpoint)), blob)
    assert result[0] == "ok", result


def test_the_lowest_failing_seq_wins_across_chunks(log, files):
    blob = export_with(log, {60: log.lines[60].replace(b'"v":1}', b'"v":1.0}'),
                             15: log.lines[15].replace(b'","', b'", "', 1),
                             45: b"{}"})
    assert same_everywhere(files, blob)[:2] == ("failed", "seq 15")


def test_a_negative_balance_before_a_later_bad_line_is_what_is_reported(files):
    log = long_log()
    # voucher:w0 went back to zero (and was forgotten) at seq 64: spending from it again goes negative.
    log.add("KS", [("voucher:w0", "paid:prv-sh-001", 5)])                        # seq 69
    log.add("KS", [("budget:KS", "voucher:w9", 5)])                               # seq 70
    blob = export_with(log, {70: log.lines[70].replace(b'"v":1}', b'"v":1.0}')})
    local = dict(files, checkpoint=str(files["dir"] / "c-negative.txt"),
                 keys=str(files["dir"] / "k-negative.json"))
    (files["dir"] / "c-negative.txt").write_text(log.checkpoint(), encoding="utf-8")
    (files["dir"] / "k-negative.json").write_text(json.dumps(log.keys_json()), encoding="utf-8")
    result = same_everywhere(local, blob)
    assert result[:2] == ("failed", "seq 69") and "voucher:w0 goes negative (-5 fen)" in result[2]


def test_balances_back_at_zero_are_forgotten_and_can_be_used_again():
    log = Log("KS")
    log.add("KS", [("treasury:KS", "budget:KS", 1_000)])
    log.add("KS", [("budget:KS", "voucher:a", 400)])
    log.add("KS", [("voucher:a", "voucher:a:held", 400)])                         # voucher:a back at zero
    log.add("KS", [("voucher:a:held", "paid:p", 400)])                            # voucher:a:held too
    summary = verify_export(log.export(), log.checkpoint(), log.keys())
    assert summary.accounts == 3  # treasury:KS, budget:KS, paid:p
    log.add("KS", [("budget:KS", "voucher:a", 100), ("voucher:a", "voucher:a:held", 100)])  # used again
    log.add("KS", [("voucher:a:held", "budget:KS", 100)])
    summary = verify_export(log.export(), log.checkpoint(), log.keys())
    assert summary.accounts == 3 and "3 accounts with a non-zero balance" in summary.text()
    log.add("KS", [("voucher:a", "paid:p", 1)])                                   # spent once too often
    error = pytest.raises(VerificationError, verify_export, log.export(), log.checkpoint(), log.keys()).value
    assert error.seq == 6 and "voucher:a goes negative (-1 fen)" in error.why


def test_an_over_long_line_fails_at_its_seq_either_way(log, files):
    huge = b'{"x":"' + b"a" * (MAX_LINE_BYTES + 10) + b'"}'
    for blob in (export_with(log, {30: huge}), b"".join(log.export()[:30]) + huge):
        result = same_everywhere(files, blob)
        assert result[:2] == ("failed", "seq 30") and "longer than" in result[2]


def test_blank_lines_and_bad_utf8_fail_at_their_seq_either_way(log, files):
    assert same_everywhere(files, export_with(log, {10: b""}))[:2] == ("failed", "seq 10")
    result = same_everywhere(files, export_with(log, {11: log.lines[11][:-3] + b"\xff}"}))
    assert result[:2] == ("failed", "seq 11") and "not UTF-8" in result[2]


def test_chunks_are_cut_at_line_boundaries():
    import io
    blob = b"a\nbb\n\nccc\nd"
    for size in (1, 2, 3, 5, 100):
        pieces = list(export_chunks(io.BytesIO(blob), size, with_data=True))
        assert b"".join(p[4] for p in pieces) == blob
        assert [p[0] for p in pieces] == [sum(q[3] for q in pieces[:i]) for i in range(len(pieces))]
        assert sum(p[3] for p in pieces) == 5
        assert all(p[4].endswith(b"\n") for p in pieces[:-1])
        assert [p[1] for p in pieces] == [sum(q[2] for q in pieces[:i]) for i in range(len(pieces))]


# --- the command lines ------------------------------------------------------------------

def test_main_and_vouchers_verify_take_jobs(log, files, capsys):
    export = files["dir"] / "cli.jsonl"
    export.write_bytes(log.blob())
    args = ["export", str(export), "--checkpoint", files["checkpoint"], "--keys", files["keys"]]
    assert main(args) == 0
    single = capsys.readouterr().out
    assert main(args + ["--jobs", "2"]) == 0 and capsys.readouterr().out == single
    assert main(args + ["--jobs", "0"]) == 0 and capsys.readouterr().out == single
    with pytest.raises(SystemExit):
        main(args + ["--jobs", "-1"])
    capsys.readouterr()
    result = CliRunner().invoke(verify_command, [str(export), "--checkpoint", files["checkpoint"], "--keys",
                                                 files["keys"], "--jobs", "2"])
    assert result.exit_code == 0 and result.output == single
    export.write_bytes(export_with(log, {44: log.lines[44].replace(b'"v":1}', b'"v":1.0}')}))
    assert main(args + ["--jobs", "2"]) == 1
    assert capsys.readouterr().err.startswith("FAILED at seq 44: ")
    result = CliRunner().invoke(verify_command, [str(export), "--checkpoint", files["checkpoint"], "--keys",
                                                 files["keys"], "--jobs", "2"])
    assert result.exit_code == 1 and "FAILED at seq 44: " in result.output


def test_standard_input_with_two_jobs(log, files):
    """The real command in its own process, reading the export from a pipe."""
    command = [sys.executable, "-m", "voucher_service.ledger.verify", "export", "-", "--checkpoint",
               files["checkpoint"], "--keys", files["keys"], "--jobs", "2"]
    done = subprocess.run(command, input=log.blob(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("ok: 69 entries")
    bad = export_with(log, {52: log.lines[52].replace(b'"v":1}', b'"v":2}')})
    done = subprocess.run(command, input=bad, capture_output=True, timeout=120)
    assert done.returncode == 1 and done.stderr.decode().startswith("FAILED at seq 52: format version 2")


# --- keys libsodium refuses ---------------------------------------------------------------

SMALL_ORDER = b"\x01" + bytes(31)                  # the neutral element
NON_CANONICAL = b"\xed" + b"\xff" * 30 + b"\x7f"   # y = p: not reduced


@pytest.mark.parametrize("raw", [SMALL_ORDER, NON_CANONICAL, bytes(32), b"\xff" * 32])
def test_keys_libsodium_would_refuse_are_refused_when_loaded(raw):
    keys = {"origin": "vouchers.test/ledger", "keys": [{
        "key_id": "KS-bad", "region": "KS", "alg": "ed25519", "public_key": b64(raw),
        "note_name": "vouchers.test/ledger/KS", "note_key": verifier_key("vouchers.test/ledger/KS", raw),
        "valid_from": T0, "valid_until": None}]}
    with pytest.raises(VerificationError) as info:
        load_keys(keys)
    assert info.value.where == "keys" and "libsodium" in info.value.why


def test_the_forgery_openssl_accepts_for_a_small_order_key_is_refused():
    """With the neutral element as public key, R = neutral and S = 0 verify for any message under
    OpenSSL (cofactorless, no small-order check); libsodium refuses it, and so does the verifier."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from voucher_service.ledger.signing import verify_detached
    forged = SMALL_ORDER + bytes(32)
    Ed25519PublicKey.from_public_bytes(SMALL_ORDER).verify(forged, b"any entry at all")  # does not raise
    assert not verify_detached(forged, b"any entry at all", SMALL_ORDER)


def test_libsodium_and_openssl_agree_on_honest_and_altered_signatures():
    from voucher_service.ledger.signing import verify_detached
    key = SigningKey.generate("KS")
    for n in range(20):
        message = os.urandom(n * 37)
        signature = key.sign(message)
        assert verify_detached(signature, message, key.public_key_raw)
        assert not verify_detached(signature, message + b"x", key.public_key_raw)
        bad = bytearray(signature)
        bad[n % 64] ^= 1 << (n % 8)
        assert not verify_detached(bytes(bad), message, key.public_key_raw)
    assert not verify_detached(signature[:63], message, key.public_key_raw)


# --- the fast checks against the references they replace -------------------------------------

def reference_parse(line: bytes) -> bool:
    """What parse_entry did before: json.loads, then canonical_bytes compared with the line."""
    try:
        value = json.loads(line, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
        return isinstance(value, dict) and canonical_bytes(value) == line
    except (ValueError, TypeError, RecursionError):
        return False


def fast_parse(line: bytes) -> bool:
    try:
        parse_entry(line)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


keys_text = st.text(st.characters(codec="utf-8") | st.sampled_from(["\ufb01", "\U0001F600", "\uffff", "é"]),
                    max_size=4)
json_leaves = (st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=True)
               | st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from(["\U0001F600", "\u2028", "/"]))
json_objects = st.dictionaries(keys_text, st.recursive(json_leaves, lambda children: st.lists(children, max_size=3)
                                                       | st.dictionaries(keys_text, children, max_size=3),
                                                       max_leaves=8), max_size=5)


@given(json_objects, st.sampled_from(["canonical", "code points", "ascii", "as built", "spaced"]))
def test_the_fast_canonical_check_agrees_with_canonical_bytes(value, spelling):
    try:
        if spelling == "canonical":
            line = canonical_bytes(value)
        else:
            line = json.dumps(value, ensure_ascii=spelling == "ascii", sort_keys=spelling != "as built",
                              separators=(", ", ":") if spelling == "spaced" else (",", ":")).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return
    assert fast_parse(line) == reference_parse(line), line


def test_the_signature_base64_pattern_is_strict_base64_of_64_bytes():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for n in range(200):
        raw = os.urandom(64)
        value = base64.b64encode(raw).decode("ascii")
        assert SIGNATURE_B64.match(value) and strict_b64(value) == raw
        other = value[:85] + alphabet[alphabet.index(value[85]) ^ (1 + n % 15)] + "=="
        assert bool(SIGNATURE_B64.match(other)) == (strict_b64(other) is not None) == False  # noqa: E712
    for value in ["", "A" * 88, "A" * 86 + "==", "A" * 85 + "Q==\n", "A" * 85 + "Q=", "A" * 84 + "AAAA",
                  base64.b64encode(bytes(63)).decode(), base64.b64encode(bytes(65)).decode(), "A" * 85 + "Q===",
                  "A" * 85 + "\uff21==", "A" * 84 + "-_Q==", "A" * 85 + "w=="]:
        strict = strict_b64(value)
        assert bool(SIGNATURE_B64.match(value)) == (strict is not None and len(strict) == 64), value


def test_timestamps_are_the_ones_strptime_accepts():
    def by_strptime(value):
        try:
            datetime.strptime(value, TIMESTAMP_FORMAT)
            return True
        except ValueError:
            return False

    def ours(value):
        try:
            check_timestamp(value, "ts", lambda why: (_ for _ in ()).throw(VerificationError(why)))
            return True
        except VerificationError:
            return False

    samples = [f"{y}-{m:02d}-{d:02d}T00:00:00.000000Z" for y in ("0000", "0001", "1900", "2000", "2023", "2024",
                                                                "9999") for m in range(14) for d in range(33)]
    samples += [f"2024-02-29T{h:02d}:{mi:02d}:{s:02d}.999999Z" for h in (0, 23, 24, 99) for mi in (0, 59, 60)
                for s in (0, 59, 60, 61, 99)]
    for value in samples:
        assert TIMESTAMP.match(value)
        assert ours(value) == by_strptime(value), value


def test_the_signed_bytes_are_the_canonical_bytes_without_sig(log):
    for line in log.lines:
        entry = json.loads(line)
        unsigned = canonical_bytes({k: v for k, v in entry.items() if k != "sig"})
        assert signed_bytes(entry, line) == unsigned
        # A line that does not end as RFC 8785 says (not possible after the checks) falls back to encoding.
        assert signed_bytes(entry, line + b" ") == unsigned


@pytest.mark.parametrize("when", ["checking", "answering"])
def test_a_worker_killed_mid_run_stops_the_command_with_an_error(files, log, monkeypatch, when):
    """The OS may kill a worker (out of memory, an operator): the auditor gets
    an error, never a hang, whether the worker was checking lines or, a moment
    later, writing its result back (which a multiprocessing.Pool cannot
    recover from: its result pipe stays locked)."""
    import signal
    import threading

    parent, check_line = os.getpid(), parallel.check_line

    def killed(*args):
        if os.getpid() != parent:
            if when == "checking":
                os.kill(os.getpid(), signal.SIGKILL)
            threading.Timer(0.0005, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return check_line(*args)

    monkeypatch.setattr(parallel, "check_line", killed)  # fork: the workers inherit the patched module
    result = {}

    def run():
        try:
            result["outcome"] = outcome(files, export_with(log, {}), jobs=2, chunk_bytes=SMALL_CHUNKS[0],
                                        start_method="fork")
        except BaseException as exc:  # noqa: BLE001 - what the command would report
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the verifier hangs after a worker was killed"
    assert isinstance(result.get("error"), ChildProcessError), result
    assert "ended unexpectedly" in str(result["error"])


def test_jobs_beyond_four_a_cpu_are_four_a_cpu(monkeypatch):
    """A mistyped --jobs 100000 would fork 100000 verifiers of ~80 MiB each."""
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert [parallel.cpu_jobs(n) for n in (0, 1, 2, 8, 9, 100_000)] == [2, 1, 2, 8, 8, 8]
    with pytest.raises(ValueError):
        parallel.cpu_jobs(-1)
