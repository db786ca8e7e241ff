"""The checks of one export line on its own: its canonical form, its shape,
its signature, its key's validity at its `ts`, and for a key rotation the rule
of rotation.py. (Its place in the log, the balances and the tree are the
replay's, in replay.py.)"""
from __future__ import annotations

import binascii
import json
import re

from ..canonical import canonical_bytes
from ..entry import ENTRY_FIELDS, FORMAT_VERSION, POSTING_FIELDS, SIG_FIELDS, SIGNATURE_ALG, parse_canonical
from ..signing import verify_detached
from .common import MAX_KEYS, MAX_LINE_BYTES, VerificationError, check_string, check_timestamp, show
from .keys import KeySet
from .rotation import ROTATION_KIND, check_rotation

# The canonical base64 of 64 bytes: 21 groups of four, then one byte in two
# characters whose 4 unused bits are zero (A, Q, g or w), then "==". Exactly
# the strings strict_b64 accepts as 64 bytes, checked once instead of a
# decode and re-encode.
SIGNATURE_B64 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==\Z")


def check_entry(line: bytes, index: int, keys: KeySet) -> dict:
    """One export line at position `index`: canonical, well formed, in place, signed."""
    return check_line(line_bytes(line), index, keys)


def check_line(line: bytes, index: int, keys: KeySet) -> dict:
    """check_entry of a line already without its newline (the bytes that are hashed)."""
    def fail(why):
        raise VerificationError(why, seq=index)

    if len(line) > MAX_LINE_BYTES:
        fail(f"line longer than {MAX_LINE_BYTES} bytes")
    if not line:
        fail("empty line (the export ends early or has a blank line)")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        entry = parse_canonical(text, line)
    except (ValueError, TypeError, RecursionError) as exc:
        fail(f"not an entry in canonical JSON (RFC 8785): {exc}")
    _check_shape(entry, index, fail)
    _check_signature(entry, line, keys, fail)
    if entry["kind"] == ROTATION_KIND:
        check_rotation(entry, keys, fail)
    return entry


def line_bytes(line) -> bytes:
    """An export line without its one terminating newline: the bytes that are hashed."""
    if line.__class__ is not bytes:
        line = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line)
    return line[:-1] if line[-1:] == b"\n" else line


def _check_shape(entry: dict, index: int, fail) -> None:
    # The values come from the JSON parser: `type(x) is int` is "an integer, not
    # a boolean", `type(x) is str` "a string"; the failing branches word it as before.
    if entry.keys() != ENTRY_FIELDS:
        missing, extra = sorted(ENTRY_FIELDS - set(entry)), sorted(set(entry) - ENTRY_FIELDS)
        fail("entry fields wrong: " + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                               extra and f"unexpected {', '.join(extra)}"])))
    if type(entry["v"]) is not int or entry["v"] != FORMAT_VERSION:
        fail(f"format version {show(entry['v'])}, expected {FORMAT_VERSION}")
    seq = entry["seq"]
    if type(seq) is not int:
        fail(f"seq {show(seq)} is not an integer")
    if seq != index:
        fail(f"expected seq {index}, found seq {seq} (an entry is missing, repeated or out of order)")
    check_timestamp(entry["ts"], "ts", fail)
    for name in ("kind", "region", "actor"):
        value = entry[name]
        if type(value) is not str or not value:
            check_string(value, name, fail)
    refs = entry["refs"]
    if type(refs) is not dict or not all(type(v) is str for v in refs.values()):
        fail("refs must be an object of strings")
    if type(entry["data"]) is not dict:
        fail("data must be an object")
    postings = entry["postings"]
    if type(postings) is not list:
        fail("postings must be a list")
    for number, posting in enumerate(postings):
        if type(posting) is not dict or posting.keys() != POSTING_FIELDS:
            fail(f"posting {number} must have exactly source, destination and amount")
        source, destination, amount = posting["source"], posting["destination"], posting["amount"]
        if type(source) is not str or not source:
            check_string(source, f"posting {number} source", fail)
        if type(destination) is not str or not destination:
            check_string(destination, f"posting {number} destination", fail)
        if type(amount) is not int or amount <= 0:
            fail(f"posting {number} amount {show(amount)} is not a positive integer number of fen")
        if source == destination:
            fail(f"posting {number} moves {amount} fen from {source} to itself")
    sig = entry["sig"]
    if type(sig) is not dict or sig.keys() != SIG_FIELDS:
        fail("sig must have exactly key_id, alg and value")
    if type(sig["key_id"]) is not str or not sig["key_id"]:
        check_string(sig["key_id"], "sig.key_id", fail)
    if sig["alg"] != SIGNATURE_ALG:
        fail(f"sig.alg {show(sig['alg'])} is not {SIGNATURE_ALG!r}")
    if type(sig["value"]) is not str or not sig["value"]:
        check_string(sig["value"], "sig.value", fail)


def _check_signature(entry: dict, line: bytes, keys: KeySet, fail) -> None:
    sig = entry["sig"]
    key = keys.by_id.get(sig["key_id"])
    if key is None:
        fail(f"signed by key {show(sig['key_id'])}, which is not published")
    if key.region != entry["region"]:
        fail(f"recorded for region {entry['region']} but signed by key {key.key_id} of region {key.region}")
    if not key.valid_at(entry["ts"]):
        fail(f"signed at {entry['ts']} by key {key.key_id}, {key.validity()}")
    value = sig["value"]
    if not SIGNATURE_B64.match(value):
        # Canonical base64 only: otherwise one line could have two spellings
        # of one signature, and so two leaf hashes.
        fail("sig.value is not the canonical base64 of a 64-byte Ed25519 signature")
    if not verify_detached(binascii.a2b_base64(value), signed_bytes(entry, line), key.public_key_raw):
        fail(f"the signature by key {key.key_id} does not verify: the entry was changed or signed by another key")


_encode_string = json.JSONEncoder(ensure_ascii=False).encode  # canonical.py's (and RFC 8785's) string form
# Built from the format's constants so that the fast path below cannot drift from them.
_SIG_HEAD_START = b',"sig":{"alg":' + _encode_string(SIGNATURE_ALG).encode("ascii") + b',"key_id":'
_SIG_TAIL_END = b'","v":' + str(FORMAT_VERSION).encode("ascii") + b"}"
_SIG_HEADS: dict[str, bytes] = {}  # key_id -> b',"sig":{"alg":"ed25519","key_id":<key_id>,"value":"'


def signed_bytes(entry: dict, line: bytes) -> bytes:
    """The canonical bytes of the entry without its `sig` member, cut out of its canonical line.

    RFC 8785 orders an entry's members actor, data, kind, postings, refs,
    region, seq, sig, ts, v: once the line is known canonical and of the right
    shape, it ends with exactly `,"sig":{"alg":"ed25519","key_id":K,"value":V},
    "ts":T,"v":1}` and the signed bytes are the line without the sig member.
    That tail is rebuilt and compared byte for byte; if it were not there (it
    cannot be, for a line that passed the checks before) the bytes are encoded
    from the entry instead, as the service signs them.
    """
    sig = entry["sig"]
    key_id = sig["key_id"]
    head = _SIG_HEADS.get(key_id)
    if head is None:
        head = _SIG_HEAD_START + _encode_string(key_id).encode("utf-8") + b',"value":"'
        if len(_SIG_HEADS) < MAX_KEYS:
            _SIG_HEADS[key_id] = head
    member = head + sig["value"].encode("ascii") + b'"}'
    after = b',"ts":"' + entry["ts"].encode("ascii") + _SIG_TAIL_END
    cut = len(line) - len(member) - len(after)
    if (sig["alg"] == SIGNATURE_ALG and entry["v"] == FORMAT_VERSION and entry.keys() == ENTRY_FIELDS
            and line.endswith(after) and line.startswith(member, cut)):
        return line[:cut] + after
    return canonical_bytes({name: value for name, value in entry.items() if name != "sig"})


def posting_tuples(entry: dict) -> list[tuple[str, str, int]]:
    return [(p["source"], p["destination"], p["amount"]) for p in entry["postings"]]
