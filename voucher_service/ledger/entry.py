"""Immutable ledger entries and postings, and every constant of the entry format.

An entry is built once, checked where it is built (positive postings, integer
amounts), signed, and never mutated: the stored canonical bytes are the entry.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from .canonical import MAX_SAFE_INTEGER, canonical_bytes

FORMAT_VERSION = 1
SIGNATURE_ALG = "ed25519"
ENTRY_FIELDS = frozenset({"v", "seq", "ts", "kind", "region", "actor", "refs", "postings", "data", "sig"})
POSTING_FIELDS = frozenset({"source", "destination", "amount"})
SIG_FIELDS = frozenset({"key_id", "alg", "value"})  # also a signed statement's `signature`
# RFC 3339 UTC with microseconds, as the service writes every timestamp: in
# this one format, string order is time order, so validity compares strings.
TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Posting:
    source: str
    destination: str
    amount: int

    def __post_init__(self):
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("posting amount must be an integer number of fen")
        if self.amount <= 0:
            raise ValueError(f"posting amount must be positive, got {self.amount}")
        if not self.source or not self.destination:
            raise ValueError("posting needs a source and a destination account")
        if self.source == self.destination:
            raise ValueError(f"posting from {self.source} to itself")

    def as_json(self) -> dict:
        return {"source": self.source, "destination": self.destination, "amount": self.amount}


@dataclass(frozen=True)
class Entry:
    """An entry without its signature (what gets signed)."""

    seq: int
    ts: str
    kind: str
    region: str
    actor: str
    refs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    postings: tuple[Posting, ...] = ()
    data: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    v: int = FORMAT_VERSION

    def __post_init__(self):
        if self.seq < 0:
            raise ValueError("seq must be >= 0")
        # Freeze the mappings so a built entry cannot drift from its bytes.
        object.__setattr__(self, "refs", MappingProxyType(dict(self.refs)))
        object.__setattr__(self, "data", MappingProxyType(_frozen_copy(self.data)))
        object.__setattr__(self, "postings", tuple(self.postings))
        canonical_bytes(self.unsigned_json())  # fails early on floats or odd types

    def unsigned_json(self) -> dict:
        return {
            "v": self.v,
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "region": self.region,
            "actor": self.actor,
            "refs": dict(self.refs),
            "postings": [p.as_json() for p in self.postings],
            "data": _thawed(self.data),
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.unsigned_json())


def _frozen_copy(value):
    # A deep copy via JSON keeps data independent of the caller's objects.
    return json.loads(json.dumps(dict(value), ensure_ascii=False))


def _thawed(value):
    return json.loads(json.dumps(dict(value), ensure_ascii=False))


def signed_json(entry: Entry, key_id: str, signature_b64: str) -> dict:
    body = entry.unsigned_json()
    body["sig"] = {"key_id": key_id, "alg": SIGNATURE_ALG, "value": signature_b64}
    return body


def parse_entry(line: bytes) -> dict:
    """Parse one stored or exported entry and insist it is its own canonical form."""
    body = bytes(line)
    if body.endswith(b"\n"):
        body = body[:-1]
    return parse_canonical(body.decode("utf-8"), body)  # UnicodeDecodeError is a ValueError


def parse_canonical(text: str, body: bytes) -> dict:
    """The entry in `text` (`body` is its UTF-8), if `body` is exactly its RFC 8785 form; else ValueError.

    Equivalent to comparing `canonical_bytes(json.loads(text))` with `body`,
    faster: the C scanner refuses what canonical_bytes would refuse (floats,
    NaN and Infinity, integers beyond 2^53) through its parse hooks, and when
    the line has no character outside the Basic Multilingual Plane the C
    encoder re-encodes it with sorted keys. There the encoder's code-point
    order of keys is RFC 8785's UTF-16 order, and its integers, literals and
    strings are canonical_bytes's (the same json string encoder). A value that
    decodes to characters outside the BMP (from \\u escapes) re-encodes them
    literally, so it cannot equal such a line: refused, as canonical_bytes
    refuses it. Lines with such characters take canonical_bytes itself.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise json.JSONDecodeError("Expecting value", text, 0) from None
    if not isinstance(value, dict):
        raise ValueError("an entry must be a JSON object")
    if end != len(text):
        raise ValueError("entry bytes are not canonical (RFC 8785): more after the entry's object")
    if text.isascii() or _OUTSIDE_BMP.search(text) is None:
        canonical = _encode_sorted(value) == text
    else:
        try:
            canonical = canonical_bytes(value) == body
        except TypeError as exc:  # lone surrogates from \u escapes
            raise ValueError(f"entry is not canonical JSON: {exc}") from None
    if not canonical:
        raise ValueError("entry bytes are not canonical (RFC 8785)")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _refuse_float(text: str):
    # As canonical_bytes: the ledger format promises integers only.
    raise ValueError(f"entry is not canonical JSON: {text}: floats are not allowed in ledger values")


def _safe_integer(text: str) -> int:
    # As canonical_bytes: JCS numbers are doubles, so integers beyond 2^53 cannot be canonical.
    if len(text) < 16:  # |n| < 10^15 < 2^53
        return int(text)
    value = int(text) if len(text) <= 20 else None
    if value is None or abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"entry is not canonical JSON: integer {text[:30]} is beyond 2^53 and cannot be "
                         f"canonical JSON")
    return value


# The C scanner (what json.loads runs) with the hooks above.
_scan = json.JSONDecoder(parse_float=_refuse_float, parse_int=_safe_integer,
                         parse_constant=_refuse_constant).scan_once
# Characters outside the Basic Multilingual Plane: the only ones whose UTF-16
# code units sort differently from their code points.
_OUTSIDE_BMP = re.compile("[\U00010000-\U0010ffff]")


def _not_json(value):
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _sorted_encoder():
    """RFC 8785's separators and (for BMP keys) member order, and canonical.py's
    string escaping (json's, with ensure_ascii=False): the C encoder, called
    directly where this Python has it (JSONEncoder.encode builds one per call)."""
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
    try:
        from json.encoder import c_encode_basestring, c_make_encoder
        direct = c_make_encoder(None, _not_json, c_encode_basestring, None, ":", ",", True, False, True)

        def encode(value) -> str:
            return "".join(direct(value, 0))

        sample = {"b": [1, -2, True, None, "é\u2028\"\n"], "a": {"ü": "", "z": {}}, "": []}
        if encode(sample) == reference(sample):
            return encode
    except (ImportError, TypeError, ValueError):
        pass
    return reference


_encode_sorted = _sorted_encoder()


def postings_of(entry_json: dict) -> list[Posting]:
    return [Posting(p["source"], p["destination"], p["amount"]) for p in entry_json.get("postings", [])]
