"""The published keys (GET /ledger/keys): every key, current or retired, with
its region, note key and validity interval, validated and indexed.

Two purposes (DESIGN §4, §10): region `entry` keys sign entries (and, before
the deployment was upgraded to witnessed checkpoints, cosigned checkpoints);
the operator's one `log` key (region null) signs checkpoints. A document
without `purpose` is from before the upgrade: every key in it is an entry key.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..entry import SIGNATURE_ALG
from ..note import NoteError, Verifier
from ..signing import sodium_accepts_public_key
from .common import MAX_KEYS, VerificationError, check_string, check_timestamp, show, strict_b64
from .files import read_json


PURPOSE_ENTRY = "entry"
PURPOSE_LOG = "log"
PURPOSES = (PURPOSE_ENTRY, PURPOSE_LOG)


@dataclass(frozen=True)
class PublishedKey:
    key_id: str
    region: str | None           # None for the log key
    public_key_raw: bytes
    note_name: str
    verifier: Verifier
    valid_from: str
    valid_until: str | None
    purpose: str = PURPOSE_ENTRY

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

    @property
    def entry_keys(self) -> tuple[PublishedKey, ...]:
        return tuple(k for k in self.keys if k.purpose == PURPOSE_ENTRY)

    @property
    def log_keys(self) -> tuple[PublishedKey, ...]:
        return tuple(k for k in self.keys if k.purpose == PURPOSE_LOG)

    @property
    def upgraded_at(self) -> str | None:
        """When the log key was made: entries from then on are under
        log-signed, witnessed checkpoints (None: a legacy deployment)."""
        return min((k.valid_from for k in self.log_keys), default=None)

    def regions(self) -> set[str]:
        return {k.region for k in self.entry_keys}

    def active_regions(self) -> set[str]:
        return {k.region for k in self.entry_keys if k.valid_until is None}

    def regions_valid_at(self, ts: str) -> set[str]:
        return {k.region for k in self.entry_keys if k.valid_at(ts)}


def _fail_keys(why: str):
    raise VerificationError(why, where="keys")


def load_keys(keys_json: dict) -> KeySet:
    """Validate the document served by GET /ledger/keys and index its keys."""
    if not isinstance(keys_json, dict):
        _fail_keys("the keys document must be a JSON object with `origin` and `keys`")
    origin = check_string(keys_json.get("origin"), "origin", _fail_keys)
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
        key_id = check_string(record.get("key_id"), "key_id", fail)
        label[0] = f"key {key_id}"
        purpose = record.get("purpose", PURPOSE_ENTRY)
        if purpose not in PURPOSES:
            fail(f"purpose must be one of {', '.join(PURPOSES)}, not {show(purpose)}")
        if purpose == PURPOSE_LOG:
            if record.get("region") is not None:
                fail("the log key belongs to no region: its region is null")
            region = None
        else:
            region = check_string(record.get("region"), "region", fail)
        if record.get("alg") != SIGNATURE_ALG:
            fail(f"alg must be {SIGNATURE_ALG!r}, not {show(record.get('alg'))}")
        public_key = strict_b64(check_string(record.get("public_key"), "public_key", fail))
        if public_key is None or len(public_key) != 32:
            fail("public_key must be the base64 of a raw 32-byte Ed25519 key")
        if not sodium_accepts_public_key(public_key):
            # Every signature is verified by libsodium, which refuses such keys:
            # say so here rather than fail every entry signed by it.
            fail("public_key is not a valid Ed25519 public key (a point of small order, not canonically encoded, "
                 "not on the curve or outside its prime-order subgroup): libsodium refuses to verify with it")
        note_name = check_string(record.get("note_name"), "note_name", fail)
        note_key = check_string(record.get("note_key"), "note_key", fail)
        try:
            verifier = Verifier.parse(note_key)
        except NoteError as exc:
            fail(f"note_key does not parse: {exc}")
        if verifier.name != note_name:
            fail(f"note_key names {verifier.name!r}, note_name is {note_name!r}")
        if verifier.public_key_raw != public_key:
            fail("note_key and public_key are different keys")
        valid_from = check_timestamp(record.get("valid_from"), "valid_from", fail)
        valid_until = record.get("valid_until")
        if valid_until is not None:
            valid_until = check_timestamp(valid_until, "valid_until", fail)
            if valid_until < valid_from:
                fail(f"valid_until {valid_until} is before valid_from {valid_from}")
        if key_id in by_id:
            fail("key_id is published twice")
        if (verifier.name, verifier.key_hash) in by_note:
            fail(f"note key {note_name}+{verifier.key_hash.hex()} is published twice")
        if purpose == PURPOSE_LOG and note_name != origin:
            fail(f"the log key's note name must be the origin {origin!r}, not {note_name!r}")
        key = PublishedKey(key_id, region, public_key, note_name, verifier, valid_from, valid_until, purpose)
        keys.append(key)
        by_id[key_id] = key
        by_note[(verifier.name, verifier.key_hash)] = key
    return KeySet(origin, tuple(keys), by_id, by_note)


def load_keys_file(path: str) -> KeySet:
    return load_keys(read_json(path, "keys"))
