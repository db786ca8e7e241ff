"""The offline verifier: an export, a checkpoint and the public keys, nothing else.

    python -m voucher_service.ledger.verify export EXPORT --checkpoint FILE --keys FILE \\
        [--previous-checkpoint FILE] [--jobs N]
    python -m voucher_service.ledger.verify receipt FILE --keys FILE

The files are exactly as served by GET /ledger/export, /ledger/checkpoint,
/ledger/keys and /ledger/receipts/{seq}. This module needs the standard
library, `cryptography` (checkpoint signatures), PyNaCl (libsodium: entry
signatures) and the rest of this package: no Flask, no database, so an
auditor can copy the `ledger` folder and run it alone.

What an export must satisfy (DESIGN §3 and §4), checked entry by entry in one
pass and in constant memory (one line at a time; the running Merkle tree is an
O(log n) stack of perfect-subtree hashes; balances are one integer per account
with a non-zero balance, an account back at zero is forgotten):

- every line is its own RFC 8785 canonical form, UTF-8, of a version-1 entry
  of the documented shape, and `seq` runs 0, 1, 2, ... without gap;
- its signature is by the key named in `sig.key_id`, a published key of the
  entry's region, valid at the entry's `ts`;
- postings are positive integers between two different accounts; replayed
  balances never take an account outside `treasury:` below zero, and all
  balances sum to zero;
- the root of the first `size` lines equals the signed checkpoint's root, the
  checkpoint's origin is the keys' origin, every signature on it is by a
  published key and verifies, and every region that must cosign has;
- given a previous checkpoint, it verifies too and the export's root at its
  size equals its root, which proves the new tree extends it.

The first failure stops the check and is raised as a VerificationError naming
the `seq` (or "checkpoint", "previous checkpoint", "keys", "receipt").

With `--jobs N` (N > 1; 0 = one per CPU) the per-line checks (UTF-8,
canonical form, shape, key validity, signature, leaf hash) run in N worker
processes over chunks of the file cut at line boundaries, while this process
replays seq order, balances and the running tree from their compact results,
chunk by chunk in file order: the same checks, the same first failing seq and
message, a bounded number of chunks in flight.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import collections
import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Iterable, Iterator

from . import merkle
from .accounts import TREASURY_PREFIX, may_go_negative
from .canonical import canonical_bytes
from .entry import parse_canonical
from .note import Checkpoint, NoteError, Verifier, open_note, parse_note
from .signing import sodium_accepts_public_key, verify_detached

FORMAT_VERSION = 1
SIGNATURE_ALG = "ed25519"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

MAX_LINE_BYTES = 1 << 20          # one entry; real ones are a few hundred bytes
MAX_NOTE_BYTES = 1_000_000        # as note.parse_note
MAX_JSON_FILE_BYTES = 64 << 20    # a keys file or a receipt
MAX_PROOF_HASHES = 64             # an inclusion proof in a tree of < 2^64 leaves
MAX_KEYS = 100_000

ENTRY_FIELDS = frozenset({"v", "seq", "ts", "kind", "region", "actor", "refs", "postings", "data", "sig"})
POSTING_FIELDS = frozenset({"source", "destination", "amount"})
SIG_FIELDS = frozenset({"key_id", "alg", "value"})
# RFC 3339 UTC with microseconds, as the service writes every timestamp: in
# this one format, string order is time order, so validity compares strings.
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
DECIMAL = re.compile(r"(0|[1-9][0-9]{0,19})\Z")
# The canonical base64 of 64 bytes: 21 groups of four, then one byte in two
# characters whose 4 unused bits are zero (A, Q, g or w), then "==". Exactly
# the strings _strict_b64 accepts as 64 bytes, checked once instead of a
# decode and re-encode.
SIGNATURE_B64 = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==\Z")

CHUNK_BYTES = 4 << 20             # --jobs: the export is checked in pieces of about this size


class VerificationError(Exception):
    """The evidence does not verify. `seq` is the first bad entry (or None),
    `where` names the place ("seq 17", "checkpoint", "keys", ...)."""

    def __init__(self, why: str, *, seq: int | None = None, where: str | None = None):
        self.seq = seq
        self.where = where if where is not None else (f"seq {seq}" if seq is not None else "export")
        self.why = why
        super().__init__(f"{self.where}: {why}")

    def report(self) -> str:
        return f"FAILED at {self.where}: {self.why}"


# --- keys ------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedKey:
    key_id: str
    region: str
    public_key_raw: bytes
    note_name: str
    verifier: Verifier
    valid_from: str
    valid_until: str | None

    def valid_at(self, ts: str) -> bool:
        return self.valid_from <= ts and (self.valid_until is None or ts < self.valid_until)

    def retired_by(self, ts: str) -> bool:
        return self.valid_until is not None and self.valid_until <= ts

    def validity(self) -> str:
        return f"valid from {self.valid_from} until {self.valid_until or 'now (active)'}"


@dataclass(frozen=True)
class KeySet:
    origin: str
    keys: tuple[PublishedKey, ...]
    by_id: dict = field(repr=False, compare=False)
    by_note: dict = field(repr=False, compare=False)  # (note name, 4-byte key hash) -> PublishedKey

    @property
    def verifiers(self) -> list[Verifier]:
        return [k.verifier for k in self.keys]

    def regions(self) -> set[str]:
        return {k.region for k in self.keys}

    def active_regions(self) -> set[str]:
        return {k.region for k in self.keys if k.valid_until is None}

    def regions_valid_at(self, ts: str) -> set[str]:
        return {k.region for k in self.keys if k.valid_at(ts)}


def _fail_keys(why: str):
    raise VerificationError(why, where="keys")


def _string(value, what: str, fail, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        fail(f"{what} must be a {'' if allow_empty else 'non-empty '}string, not {_show(value)}")
    return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _timestamp(value, what: str, fail) -> str:
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        fail(f"{what} {_show(value)} is not an RFC 3339 UTC time with microseconds (2026-01-31T08:00:00.000000Z)")
    try:
        # After the regex, the same dates and times as strptime(TIMESTAMP_FORMAT)
        # accepts (tests/unit/ledger/test_verify_jobs.py checks it), faster.
        datetime.fromisoformat(value[:-1])
    except ValueError:
        fail(f"{what} {value} is not a valid date and time")
    return value


def _strict_b64(value: str) -> bytes | None:
    """Decoded bytes if `value` is canonical base64 (padded, no stray bits), else None."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == value else None


def load_keys(keys_json: dict) -> KeySet:
    """Validate the document served by GET /ledger/keys and index its keys."""
    if not isinstance(keys_json, dict):
        _fail_keys("the keys document must be a JSON object with `origin` and `keys`")
    origin = _string(keys_json.get("origin"), "origin", _fail_keys)
    if "\n" in origin or not origin.isprintable():
        _fail_keys("origin must be a single printable line")
    records = keys_json.get("keys")
    if not isinstance(records, list) or not records:
        _fail_keys("`keys` must be a non-empty list")
    if len(records) > MAX_KEYS:
        _fail_keys(f"more than {MAX_KEYS} keys")
    keys, by_id, by_note = [], {}, {}
    for position, record in enumerate(records):
        label = [f"key #{position}"]

        def fail(why, label=label):
            _fail_keys(f"{label[0]}: {why}")

        if not isinstance(record, dict):
            fail("must be a JSON object")
        key_id = _string(record.get("key_id"), "key_id", fail)
        label[0] = f"key {key_id}"
        region = _string(record.get("region"), "region", fail)
        if record.get("alg") != SIGNATURE_ALG:
            fail(f"alg must be {SIGNATURE_ALG!r}, not {_show(record.get('alg'))}")
        public_key = _strict_b64(_string(record.get("public_key"), "public_key", fail))
        if public_key is None or len(public_key) != 32:
            fail("public_key must be the base64 of a raw 32-byte Ed25519 key")
        if not sodium_accepts_public_key(public_key):
            # Entry signatures are verified by libsodium, which refuses such keys:
            # say so here rather than fail every entry signed by it.
            fail("public_key is not a valid Ed25519 public key (a point of small order, not canonically encoded, "
                 "not on the curve or outside its prime-order subgroup): libsodium refuses to verify with it")
        note_name = _string(record.get("note_name"), "note_name", fail)
        note_key = _string(record.get("note_key"), "note_key", fail)
        try:
            verifier = Verifier.parse(note_key)
        except NoteError as exc:
            fail(f"note_key does not parse: {exc}")
        if verifier.name != note_name:
            fail(f"note_key names {verifier.name!r}, note_name is {note_name!r}")
        if verifier.public_key_raw != public_key:
            fail("note_key and public_key are different keys")
        valid_from = _timestamp(record.get("valid_from"), "valid_from", fail)
        valid_until = record.get("valid_until")
        if valid_until is not None:
            valid_until = _timestamp(valid_until, "valid_until", fail)
            if valid_until < valid_from:
                fail(f"valid_until {valid_until} is before valid_from {valid_from}")
        if key_id in by_id:
            fail("key_id is published twice")
        if (verifier.name, verifier.key_hash) in by_note:
            fail(f"note key {note_name}+{verifier.key_hash.hex()} is published twice")
        key = PublishedKey(key_id, region, public_key, note_name, verifier, valid_from, valid_until)
        keys.append(key)
        by_id[key_id] = key
        by_note[(verifier.name, verifier.key_hash)] = key
    return KeySet(origin, tuple(keys), by_id, by_note)


# --- checkpoints -------------------------------------------------------------

def open_checkpoint(note_text: str, keys: KeySet, *,
                    where: str = "checkpoint") -> tuple[Checkpoint, list[PublishedKey]]:
    """Parse a signed checkpoint and check every signature on it.

    Every signature line must be by a published key (the service signs only
    with its own, published keys: anything else is a forgery or a mix-up) and
    must verify. Which regions had to sign depends on the entries it covers,
    see `check_cosigners`.
    """
    def fail(why):
        raise VerificationError(why, where=where)

    if not isinstance(note_text, str):
        fail("a checkpoint is a signed note (text)")
    try:
        text, signatures = parse_note(note_text)
        checkpoint = Checkpoint.parse(text)
    except ValueError as exc:  # NoteError, or text that cannot be UTF-8
        fail(f"not a signed C2SP checkpoint: {exc}")
    if not DECIMAL.match(text.split("\n")[1]):
        fail("the tree size must be written in ASCII digits")
    if checkpoint.origin != keys.origin:
        fail(f"origin {checkpoint.origin!r} is not the keys' origin {keys.origin!r}")
    message = text.encode("utf-8")
    signers: list[PublishedKey] = []
    for sig in signatures:
        key = keys.by_note.get((sig.name, sig.key_hash))
        if key is None:
            fail(f"signed by {sig.name}+{sig.key_hash.hex()}, which is not a published key")
        if not key.verifier.verify(message, sig.signature):
            fail(f"the signature by {key.note_name} (key {key.key_id}) does not verify")
        if key not in signers:
            signers.append(key)
    try:
        # The same check as stock tooling (Go's note.Open) makes: redundant
        # after the loop above, kept so the two can never disagree silently.
        open_note(note_text, keys.verifiers)
    except NoteError as exc:
        fail(str(exc))
    return checkpoint, signers


def check_cosigners(signers: list[PublishedKey], keys: KeySet, *, last_ts: str | None, require_active: bool,
                    where: str = "checkpoint") -> list[str]:
    """The regions that cosigned, once every region that had to has.

    `last_ts` is the time of the newest entry the checkpoint covers (it was
    signed after it): a key retired by then cannot have signed it honestly,
    and every region with a key valid then must have signed. A current
    checkpoint must also be signed by every region with an active key.
    """
    for key in signers:
        if last_ts is not None and key.retired_by(last_ts):
            raise VerificationError(
                f"signed by key {key.key_id} of {key.region}, retired at {key.valid_until}, before the newest "
                f"entry it covers ({last_ts})", where=where)
    cosigned = {key.region for key in signers}
    required = set(keys.active_regions()) if require_active else set()
    if last_ts is not None:
        required |= keys.regions_valid_at(last_ts)
    missing = sorted(required - cosigned)
    if missing:
        raise VerificationError(f"not cosigned by region{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                f"(cosigned by {', '.join(sorted(cosigned)) or 'nobody'})", where=where)
    return sorted(cosigned)


# --- entries -------------------------------------------------------------------

def check_entry(line: bytes, index: int, keys: KeySet) -> dict:
    """One export line at position `index`: canonical, well formed, in place, signed."""
    return _check_line(_line_bytes(line), index, keys)


def _check_line(line: bytes, index: int, keys: KeySet) -> dict:
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
    return entry


def _line_bytes(line) -> bytes:
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
        fail(f"format version {_show(entry['v'])}, expected {FORMAT_VERSION}")
    seq = entry["seq"]
    if type(seq) is not int:
        fail(f"seq {_show(seq)} is not an integer")
    if seq != index:
        fail(f"expected seq {index}, found seq {seq} (an entry is missing, repeated or out of order)")
    _timestamp(entry["ts"], "ts", fail)
    for name in ("kind", "region", "actor"):
        value = entry[name]
        if type(value) is not str or not value:
            _string(value, name, fail)
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
            _string(source, f"posting {number} source", fail)
        if type(destination) is not str or not destination:
            _string(destination, f"posting {number} destination", fail)
        if type(amount) is not int or amount <= 0:
            fail(f"posting {number} amount {_show(amount)} is not a positive integer number of fen")
        if source == destination:
            fail(f"posting {number} moves {amount} fen from {source} to itself")
    sig = entry["sig"]
    if type(sig) is not dict or sig.keys() != SIG_FIELDS:
        fail("sig must have exactly key_id, alg and value")
    if type(sig["key_id"]) is not str or not sig["key_id"]:
        _string(sig["key_id"], "sig.key_id", fail)
    if sig["alg"] != SIGNATURE_ALG:
        fail(f"sig.alg {_show(sig['alg'])} is not {SIGNATURE_ALG!r}")
    if type(sig["value"]) is not str or not sig["value"]:
        _string(sig["value"], "sig.value", fail)


def _check_signature(entry: dict, line: bytes, keys: KeySet, fail) -> None:
    sig = entry["sig"]
    key = keys.by_id.get(sig["key_id"])
    if key is None:
        fail(f"signed by key {_show(sig['key_id'])}, which is not published")
    if key.region != entry["region"]:
        fail(f"recorded for region {entry['region']} but signed by key {key.key_id} of region {key.region}")
    if not key.valid_at(entry["ts"]):
        fail(f"signed at {entry['ts']} by key {key.key_id}, {key.validity()}")
    value = sig["value"]
    if not SIGNATURE_B64.match(value):
        # Canonical base64 only: otherwise one line could have two spellings
        # of one signature, and so two leaf hashes.
        fail("sig.value is not the canonical base64 of a 64-byte Ed25519 signature")
    if not verify_detached(binascii.a2b_base64(value), _signed_bytes(entry, line), key.public_key_raw):
        fail(f"the signature by key {key.key_id} does not verify: the entry was changed or signed by another key")


_encode_string = json.JSONEncoder(ensure_ascii=False).encode  # canonical.py's (and RFC 8785's) string form
_SIG_HEADS: dict[str, bytes] = {}  # key_id -> b',"sig":{"alg":"ed25519","key_id":<key_id>,"value":"'


def _signed_bytes(entry: dict, line: bytes) -> bytes:
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
        head = b',"sig":{"alg":"ed25519","key_id":' + _encode_string(key_id).encode("utf-8") + b',"value":"'
        if len(_SIG_HEADS) < MAX_KEYS:
            _SIG_HEADS[key_id] = head
    member = head + sig["value"].encode("ascii") + b'"}'
    after = b',"ts":"' + entry["ts"].encode("ascii") + b'","v":1}'
    cut = len(line) - len(member) - len(after)
    if (sig["alg"] == SIGNATURE_ALG and entry["v"] == FORMAT_VERSION and entry.keys() == ENTRY_FIELDS
            and line.endswith(after) and line.startswith(member, cut)):
        return line[:cut] + after
    return canonical_bytes({name: value for name, value in entry.items() if name != "sig"})


def _apply_postings(postings, balances: dict[str, int], index: int) -> None:
    """Replay one entry's postings, (source, destination, amount) each, in order.

    An account absent from `balances` has a zero balance: accounts back at zero
    are dropped, so memory follows the accounts that hold money, not every
    account the log ever named.
    """
    touched = []
    for source, destination, amount in postings:
        balances[source] = balances.get(source, 0) - amount
        balances[destination] = balances.get(destination, 0) + amount
        touched.append(source)
        touched.append(destination)
    for account in touched[::2]:
        if balances[account] < 0 and not may_go_negative(account):
            raise VerificationError(f"account {account} goes negative ({balances[account]} fen); only "
                                    f"{TREASURY_PREFIX}* accounts may", seq=index)
    for account in touched:
        if balances.get(account, 1) == 0:
            del balances[account]


def _posting_tuples(entry: dict) -> list[tuple[str, str, int]]:
    return [(p["source"], p["destination"], p["amount"]) for p in entry["postings"]]


# --- the export ------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    entries: int                 # lines verified
    checkpoint_size: int
    root: str                    # base64 root at the checkpoint's size (= the checkpoint's root)
    cosigned_by: tuple[str, ...]  # regions whose signature on the checkpoint verified
    accounts: int                # accounts with a non-zero balance after the replay (they sum to zero)
    previous_size: int | None = None

    def text(self) -> str:
        parts = [f"ok: {self.entries} entries verified (canonical, gapless seq, signatures and key validity, "
                 f"postings replayed: none negative outside treasury, sum zero, {self.accounts} accounts with a "
                 f"non-zero balance)",
                 f"checkpoint of size {self.checkpoint_size}, root {self.root}, cosigned by "
                 f"{', '.join(self.cosigned_by)}"]
        if self.previous_size is not None:
            parts.append(f"extends the previous checkpoint of size {self.previous_size}")
        return "; ".join(parts)


_sha256 = hashlib.sha256


class _RunningTree:
    """RFC 9162 roots of every prefix, from an O(log n) stack of perfect subtrees.

    The stack holds one subtree per set bit of `size`, largest first: appending
    a leaf merges it with one subtree per trailing one bit of the old size.
    """

    def __init__(self):
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        stack, size, current = self._stack, self.size, leaf
        while size & 1:
            current = _sha256(merkle.NODE_PREFIX + stack.pop() + current).digest()
            size >>= 1
        stack.append(current)
        self.size += 1

    def root(self) -> bytes:
        return merkle.fold(self._stack) if self._stack else merkle.EMPTY_ROOT


class _Replay:
    """What needs the entries in seq order: balances, the running tree, and the
    roots and last timestamps at the checkpoints' sizes; then the final checks."""

    def __init__(self, checkpoint_note: str, keys: KeySet, previous_checkpoint_note: str | None):
        self.keys = keys
        self.checkpoint, self.signers = open_checkpoint(checkpoint_note, keys)
        self.previous = self.previous_signers = None
        if previous_checkpoint_note is not None:
            self.previous, self.previous_signers = open_checkpoint(previous_checkpoint_note, keys,
                                                                   where="previous checkpoint")
            if self.previous.size > self.checkpoint.size:
                raise VerificationError(f"its size {self.previous.size} is larger than the checkpoint's "
                                        f"{self.checkpoint.size}: the log would have shrunk",
                                        where="previous checkpoint")
        self.wanted = {self.checkpoint.size} | ({self.previous.size} if self.previous else set())
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in self.wanted else {}
        self.last_ts: dict[int, str] = {}
        self.tree = _RunningTree()
        self.balances: dict[str, int] = {}

    def entry(self, index: int, postings, leaf: bytes, ts: str) -> None:
        """The checked entry at `index` (the next one), its postings as (source, destination, amount)."""
        if postings:
            _apply_postings(postings, self.balances, index)
        tree = self.tree
        tree.append(leaf)
        if tree.size in self.wanted:
            self.roots[tree.size] = tree.root()
            self.last_ts[tree.size] = ts

    def chunk(self, first: int, leaves: bytes, postings: list, ts_at: dict[int, str]) -> None:
        """A worker's checked lines from `first` on: leaf hashes end to end, (index, postings) of those
        that have postings, and the ts of the entries that end at a wanted size."""
        balances = self.balances
        for index, entry_postings in postings:
            _apply_postings(entry_postings, balances, index)
        tree, wanted = self.tree, self.wanted
        append = tree.append
        for start in range(0, len(leaves), merkle.HASH_SIZE):
            append(leaves[start:start + merkle.HASH_SIZE])
            if tree.size in wanted:
                self.roots[tree.size] = tree.root()
                self.last_ts[tree.size] = ts_at[tree.size]

    def finish(self) -> Summary:
        checkpoint, previous, roots = self.checkpoint, self.previous, self.roots
        if self.tree.size < checkpoint.size:
            raise VerificationError(f"the export has {self.tree.size} entries but the checkpoint covers "
                                    f"{checkpoint.size}: it is truncated", where="checkpoint")
        if roots[checkpoint.size] != checkpoint.root_hash:
            raise VerificationError(
                f"the root of the first {checkpoint.size} entries is {_b64(roots[checkpoint.size])}, the signed "
                f"checkpoint says {_b64(checkpoint.root_hash)}", where="checkpoint")
        cosigned = check_cosigners(self.signers, self.keys, last_ts=self.last_ts.get(checkpoint.size),
                                   require_active=True)
        if previous is not None:
            if roots[previous.size] != previous.root_hash:
                raise VerificationError(
                    f"the export's root at size {previous.size} is {_b64(roots[previous.size])}, the previous "
                    f"checkpoint says {_b64(previous.root_hash)}: the new tree does not extend it",
                    where="previous checkpoint")
            check_cosigners(self.previous_signers, self.keys, last_ts=self.last_ts.get(previous.size),
                            require_active=False, where="previous checkpoint")
        total = sum(self.balances.values())
        if total != 0:  # cannot happen with two-sided postings; checked because DESIGN §3 promises it
            raise VerificationError(f"balances sum to {total} fen, not zero")
        return Summary(entries=self.tree.size, checkpoint_size=checkpoint.size, root=_b64(checkpoint.root_hash),
                       cosigned_by=tuple(cosigned), accounts=len(self.balances),
                       previous_size=previous.size if previous else None)


def verify_export(lines: Iterable[bytes], checkpoint_note: str, keys: KeySet,
                  previous_checkpoint_note: str | None = None) -> Summary:
    """Verify an export against a signed checkpoint (and optionally a previous one), in this process."""
    replay = _Replay(checkpoint_note, keys, previous_checkpoint_note)
    for index, line in enumerate(lines):
        line = _line_bytes(line)
        entry = _check_line(line, index, keys)
        replay.entry(index, _posting_tuples(entry), _sha256(merkle.LEAF_PREFIX + line).digest(), entry["ts"])
    return replay.finish()


# --- the export on several cores ---------------------------------------------------

def _chunks(handle: BinaryIO, chunk_bytes: int, *, with_data: bool) -> Iterator[tuple]:
    """(first index, offset, length, lines, data or None) of consecutive pieces of the file of about
    `chunk_bytes`, each ending after a newline (the last one may not). `data` is the piece itself when
    `with_data` (standard input), else None (the worker reads it from the file).

    As read_lines: a line longer than an entry may be ends the export there; it is
    sent cut at the same length, for the worker to refuse it at its seq.
    """
    offset = index = 0
    buffer = b""
    eof = False
    while True:
        while not eof and len(buffer) < chunk_bytes:
            more = handle.read(chunk_bytes - len(buffer))
            eof = not more
            buffer += more
        if not buffer:
            return
        cut = buffer.rfind(b"\n") + 1
        if cut == 0:
            if len(buffer) > MAX_LINE_BYTES + 1:
                yield index, offset, MAX_LINE_BYTES + 2, 1, buffer[:MAX_LINE_BYTES + 2]
                return
            if not eof:  # one line longer than a chunk: read on to its end
                more = handle.read(chunk_bytes)
                eof = not more
                buffer += more
                continue
            cut = len(buffer)  # the last line, without a newline
        count = buffer.count(b"\n", 0, cut) + (buffer[cut - 1] != 10)  # 10: b"\n"
        yield index, offset, cut, count, buffer[:cut] if with_data else None
        index += count
        offset += cut
        buffer = buffer[cut:]


_WORKER: dict = {}


def _init_worker(keys: KeySet, wanted: set, path: str | None, stop) -> None:
    _WORKER.update(keys=keys, wanted=wanted, path=path, handle=None, stop=stop)


def _check_chunk(task: tuple) -> tuple:
    """In a worker: check_entry on every line of one chunk, and leaf hashes. Returns
    (first index, leaf hashes end to end, [(index, postings)], {size: ts}, failure or None), the
    failure as (why, seq, where) of the first bad line; lines after it are not looked at.
    Once the parent has found a failure (`stop`), chunks still queued are skipped."""
    first, offset, length, count, data = task
    keys, wanted, stop = _WORKER["keys"], _WORKER["wanted"], _WORKER["stop"]
    if stop.is_set():
        return first, b"", [], {}, None
    if data is None:
        if _WORKER["handle"] is None:
            _WORKER["handle"] = open(_WORKER["path"], "rb")
        handle = _WORKER["handle"]
        handle.seek(offset)
        data = handle.read(length)
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if len(data) != length or len(lines) != count:
        return first, b"", [], {}, ("the export changed while it was being verified", None, "export")
    leaves, postings, ts_at = [], [], {}
    for index, line in enumerate(lines, first):
        try:
            entry = _check_line(line, index, keys)
        except VerificationError as exc:
            return first, b"".join(leaves), postings, ts_at, (exc.why, exc.seq, exc.where)
        leaves.append(_sha256(merkle.LEAF_PREFIX + line).digest())
        if entry["postings"]:
            postings.append((index, _posting_tuples(entry)))
        if index + 1 in wanted:
            ts_at[index + 1] = entry["ts"]
    return first, b"".join(leaves), postings, ts_at, None


def _pool_context(start_method: str | None):
    """fork where it is safe and available (Linux, no other thread yet: it starts fastest), else spawn."""
    if start_method:
        return multiprocessing.get_context(start_method)
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def cpu_jobs(jobs: int) -> int:
    """--jobs: 0 means one per CPU this process may use."""
    if jobs < 0:
        raise ValueError("--jobs must be 0 (one per CPU) or more")
    if jobs:
        return jobs
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def verify_export_parallel(handle: BinaryIO, path: str | None, checkpoint_note: str, keys: KeySet,
                           previous_checkpoint_note: str | None = None, *, jobs: int = 2,
                           chunk_bytes: int = CHUNK_BYTES, start_method: str | None = None) -> Summary:
    """verify_export, with the per-line checks in `jobs` worker processes.

    `handle` is read here, once, to cut the export into chunks at line
    boundaries; the workers read their chunk from `path` (or get it in the
    task when `path` is None, as for standard input). At most 2 × jobs chunks
    are in flight, and their results are replayed in file order. A worker's
    failure is reported only once every chunk before it has been replayed
    without one, so the first bad seq is the one a single process reports.
    After a failure no new chunk is sent and the workers skip the ones already
    sent. A worker that dies (killed, out of memory) breaks the pool, which
    `concurrent.futures` notices whatever the worker was doing: the command
    says so and stops, it never waits for ever.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    replay = _Replay(checkpoint_note, keys, previous_checkpoint_note)
    context = _pool_context(start_method)
    stop_workers = context.Event()
    failure: VerificationError | None = None
    chunks = _chunks(handle, chunk_bytes, with_data=path is None)
    in_flight: collections.deque = collections.deque()
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                   initargs=(keys, replay.wanted, path, stop_workers))
    try:
        while True:
            while failure is None and len(in_flight) < 2 * jobs:
                task = next(chunks, None)
                if task is None:
                    break
                in_flight.append(executor.submit(_check_chunk, task))
            if not in_flight:
                break
            first, leaves, postings, ts_at, bad = in_flight.popleft().result()
            if failure is not None:
                continue  # draining the chunks in flight after a failure
            try:
                replay.chunk(first, leaves, postings, ts_at)
                if bad is not None:
                    why, seq, where = bad
                    raise VerificationError(why, seq=seq, where=where if seq is None else None)
            except VerificationError as exc:
                failure = exc
                stop_workers.set()
    except BrokenProcessPool:
        raise ChildProcessError("a worker process ended unexpectedly: the export was not verified") from None
    finally:
        stop_workers.set()
        executor.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    return replay.finish()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# --- receipts --------------------------------------------------------------------

RECEIPT_FIELDS = {"entry": str, "leaf_index": int, "leaf_hash": str, "tree_size": int, "inclusion_proof": list,
                  "checkpoint": str, "tlog_proof": str}


def verify_receipt(receipt: dict, keys: KeySet) -> dict:
    """Verify a receipt from GET /ledger/receipts/{seq}; returns what it proves."""
    def fail(why):
        raise VerificationError(why, where="receipt")

    if not isinstance(receipt, dict):
        fail("a receipt is a JSON object")
    for name, kind in RECEIPT_FIELDS.items():
        value = receipt.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            fail(f"{name} is missing or not a {'string' if kind is str else kind.__name__}")
    index, size = receipt["leaf_index"], receipt["tree_size"]
    if not 0 <= index < size:
        fail(f"leaf_index {index} is not in a tree of size {size}")
    try:
        line = receipt["entry"].encode("utf-8")
    except UnicodeError:
        fail("entry is not valid Unicode text")
    if b"\n" in line:
        raise VerificationError("the entry must be exactly its canonical bytes, without a newline", seq=index)
    entry = check_entry(line, index, keys)
    leaf = merkle.leaf_hash(line)
    given_leaf = _strict_b64(receipt["leaf_hash"])
    if given_leaf != leaf:
        raise VerificationError(f"leaf_hash {_show(receipt['leaf_hash'])} is not the hash of the entry "
                                f"({_b64(leaf)})", seq=index)
    proof = receipt["inclusion_proof"]
    if len(proof) > MAX_PROOF_HASHES:
        fail(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    hashes = []
    for number, item in enumerate(proof):
        raw = _strict_b64(item) if isinstance(item, str) else None
        if raw is None or len(raw) != merkle.HASH_SIZE:
            fail(f"inclusion_proof[{number}] is not a base64 SHA-256 hash")
        hashes.append(raw)
    checkpoint, signers = open_checkpoint(receipt["checkpoint"], keys)
    if checkpoint.size != size:
        fail(f"tree_size {size} is not the checkpoint's size {checkpoint.size}")
    if not merkle.verify_inclusion(index, size, leaf, hashes, checkpoint.root_hash):
        raise VerificationError(f"the inclusion proof does not lead from the entry to the checkpoint's root "
                                f"(tree of size {size})", seq=index)
    # The checkpoint was signed after this entry was written: no signer may
    # have been retired by then, and every region active then must sign.
    cosigned = check_cosigners(signers, keys, last_ts=entry["ts"], require_active=True)
    _check_tlog_proof(receipt["tlog_proof"], index, hashes, receipt["checkpoint"], fail)
    return {"ok": True, "seq": index, "kind": entry["kind"], "region": entry["region"], "ts": entry["ts"],
            "key_id": entry["sig"]["key_id"], "leaf_hash": _b64(leaf), "tree_size": size,
            "root": _b64(checkpoint.root_hash), "cosigned_by": cosigned}


def _check_tlog_proof(text: str, index: int, hashes: list[bytes], checkpoint_note: str, fail) -> None:
    """c2sp.org/tlog-proof: header, optional `extra`, `index N`, hashes, blank line, the checkpoint."""
    split = text.find("\n\n")
    if split < 0:
        fail("tlog_proof has no blank line before its checkpoint")
    head, note_text = text[:split].split("\n"), text[split + 2:]
    if head[0] != TLOG_PROOF_HEADER:
        fail(f"tlog_proof does not start with {TLOG_PROOF_HEADER}")
    rest = head[1:]
    while rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not rest[0].startswith("index ") or not DECIMAL.match(rest[0][len("index "):]):
        fail("tlog_proof has no `index N` line")
    if int(rest[0][len("index "):]) != index:
        fail(f"tlog_proof is for index {rest[0][len('index '):]}, the receipt for {index}")
    if [_strict_b64(h) for h in rest[1:]] != hashes:
        fail("tlog_proof's hashes are not the receipt's inclusion_proof")
    if note_text != checkpoint_note:
        fail("tlog_proof's checkpoint is not the receipt's checkpoint")


def receipt_text(result: dict) -> str:
    return (f"ok: entry {result['seq']} ({result['kind']}, region {result['region']}, {result['ts']}) is signed by "
            f"{result['key_id']} and included in the tree of size {result['tree_size']}, root {result['root']}, "
            f"cosigned by {', '.join(result['cosigned_by'])}")


# --- files -----------------------------------------------------------------------

def _read_bounded(path: str, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}", where=what) from None
    if len(data) > limit:
        raise VerificationError(f"{path} is larger than {limit} bytes", where=what)
    return data


def read_text(path: str, what: str, limit: int = MAX_NOTE_BYTES) -> str:
    data = _read_bounded(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{path} is not UTF-8 ({exc.reason} at byte {exc.start})", where=what) from None


def read_json(path: str, what: str) -> object:
    text = read_text(path, what, MAX_JSON_FILE_BYTES)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise VerificationError(f"{path} is not JSON: {exc}", where=what) from None


def read_lines(handle: BinaryIO) -> Iterator[bytes]:
    """Lines of an open binary file, one at a time, none longer than an entry may be."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 2)
        if not line:
            return
        yield line  # an over-long line arrives cut at the limit: check_entry refuses it, naming its seq
        if len(line) > MAX_LINE_BYTES + 1:
            return


def load_keys_file(path: str) -> KeySet:
    return load_keys(read_json(path, "keys"))


def verify_export_files(export_path: str, checkpoint_path: str, keys_path: str,
                        previous_checkpoint_path: str | None = None, *, jobs: int = 1,
                        chunk_bytes: int = CHUNK_BYTES, start_method: str | None = None) -> Summary:
    """Verify the files; `jobs` > 1 checks lines in that many processes (0: one per CPU)."""
    jobs = cpu_jobs(jobs)
    keys = load_keys_file(keys_path)
    checkpoint = read_text(checkpoint_path, "checkpoint")
    previous = read_text(previous_checkpoint_path, "previous checkpoint") if previous_checkpoint_path else None
    if export_path == "-":
        if jobs > 1:
            return verify_export_parallel(sys.stdin.buffer, None, checkpoint, keys, previous, jobs=jobs,
                                          chunk_bytes=chunk_bytes, start_method=start_method)
        return verify_export(read_lines(sys.stdin.buffer), checkpoint, keys, previous)
    try:
        handle = open(export_path, "rb")
    except OSError as exc:
        raise VerificationError(f"cannot read {export_path}: {exc.strerror or exc}", where="export") from None
    with handle:
        if jobs > 1:
            return verify_export_parallel(handle, export_path, checkpoint, keys, previous, jobs=jobs,
                                          chunk_bytes=chunk_bytes, start_method=start_method)
        return verify_export(read_lines(handle), checkpoint, keys, previous)


def verify_receipt_file(receipt_path: str, keys_path: str) -> dict:
    keys = load_keys_file(keys_path)
    return verify_receipt(read_json(receipt_path, "receipt"), keys)


# --- command line -------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m voucher_service.ledger.verify",
        description="Verify the voucher ledger offline, with its public keys only.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="verify a JSON Lines export against a signed checkpoint")
    export.add_argument("export", help="the file served by GET /ledger/export ('-' for standard input)")
    export.add_argument("--checkpoint", required=True, help="the note served by GET /ledger/checkpoint")
    export.add_argument("--keys", required=True, help="the JSON served by GET /ledger/keys")
    export.add_argument("--previous-checkpoint", help="an earlier checkpoint the log must extend")
    export.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                        help="check lines in N processes (default 1: this one; 0: one per CPU)")
    receipt = commands.add_parser("receipt", help="verify a receipt from GET /ledger/receipts/{seq}")
    receipt.add_argument("receipt", help="the receipt JSON file")
    receipt.add_argument("--keys", required=True, help="the JSON served by GET /ledger/keys")
    return parser


def _jobs(text: str) -> int:
    if not DECIMAL.match(text):
        raise argparse.ArgumentTypeError("N must be 0 (one per CPU) or a positive number of processes")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            print(verify_export_files(args.export, args.checkpoint, args.keys, args.previous_checkpoint,
                                      jobs=args.jobs).text())
        else:
            print(receipt_text(verify_receipt_file(args.receipt, args.keys)))
    except VerificationError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, UnicodeError, OSError, RecursionError) as exc:
        # Not expected (the checks above turn bad input into VerificationError),
        # but an auditor's malformed file must never end in a traceback.
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if __spec__ is not None and __spec__.name != "__main__":
        # `python -m ...verify`: run the module as imported under its own name, so
        # that --jobs workers find its functions by that name whatever the start method.
        import importlib
        sys.exit(importlib.import_module(__spec__.name).main())
    sys.exit(main())
