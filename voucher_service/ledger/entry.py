"""Immutable ledger entries and postings.

An entry is built once, checked where it is built (positive postings, integer
amounts), signed, and never mutated: the stored canonical bytes are the entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType

from .canonical import canonical_bytes

FORMAT_VERSION = 1
SIGNATURE_ALG = "ed25519"


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
    value = json.loads(line, parse_constant=_refuse_constant)
    if not isinstance(value, dict):
        raise ValueError("an entry must be a JSON object")
    try:
        canonical = canonical_bytes(value)
    except TypeError as exc:  # floats, integers beyond 2^53
        raise ValueError(f"entry is not canonical JSON: {exc}") from None
    body = bytes(line)
    if body.endswith(b"\n"):
        body = body[:-1]
    if canonical != body:
        raise ValueError("entry bytes are not canonical (RFC 8785)")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def postings_of(entry_json: dict) -> list[Posting]:
    return [Posting(p["source"], p["destination"], p["amount"]) for p in entry_json.get("postings", [])]
