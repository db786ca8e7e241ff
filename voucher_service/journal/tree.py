"""The ledger's Merkle tree as stored in the database: roots, proofs,
published checkpoints, keys and receipts (checkpoints are signed in
journal/publisher.py).

The math is in `ledger.merkle` and `ledger.note`; this module only reads and
writes rows. Every root and proof reads O(log n) stored nodes in one query.
"""
from __future__ import annotations

import base64
import threading
import time
import weakref

from sqlalchemy import func
from sqlmodel import Session, select

from voucher_service.clock import parse_rfc3339, utc_now
from voucher_service.journal import store as journal
from voucher_service.ledger import merkle, verify_entry_signature
from voucher_service.ledger.entry import SIGNATURE_ALG, parse_entry
from voucher_service.ledger.note import TLOG_PROOF_HEADER, verifier_key
from voucher_service.models import LedgerCheckpoint, LedgerEntry, LedgerHead, SigningKeyRecord, WitnessStatus


class TreeError(ValueError):
    """A request for a proof or entry outside the tree."""

    def __init__(self, field: str, detail: str):
        super().__init__(detail)
        self.field = field
        self.detail = detail


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def tree_size(session: Session) -> int:
    head = session.get(LedgerHead, 1)
    return head.size if head else 0


def root_at(session: Session, size: int) -> bytes:
    return merkle.root(size, journal.node_reader(session))


def _check_size(session: Session, field: str, size: int, *, minimum: int = 1) -> int:
    current = tree_size(session)
    if not minimum <= size <= current:
        raise TreeError(field, f"{field} must be between {minimum} and the tree size {current}")
    return current


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    _check_size(session, "tree_size", size)
    if not 0 <= index < size:
        raise TreeError("index", f"index must be between 0 and tree_size - 1 ({size - 1})")
    return merkle.inclusion_proof(index, size, journal.node_reader(session))


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    _check_size(session, "second", second)
    if not 1 <= first <= second:
        raise TreeError("first", f"first must be between 1 and second ({second})")
    return merkle.consistency_proof(first, second, journal.node_reader(session))


# --- keys ------------------------------------------------------------------

def key_json(record: SigningKeyRecord) -> dict:
    return {"key_id": record.key_id, "purpose": record.purpose, "region": record.region, "alg": SIGNATURE_ALG,
            "public_key": b64(bytes(record.public_key)), "note_name": record.note_name,
            "note_key": verifier_key(record.note_name, bytes(record.public_key)),
            "valid_from": record.valid_from, "valid_until": record.valid_until}


def published_keys(session: Session, origin: str) -> dict:
    # The log key first, then each region's keys oldest first (NULL sorts
    # differently on SQLite and PostgreSQL: order by purpose, which differs).
    records = session.exec(select(SigningKeyRecord).order_by(SigningKeyRecord.purpose.desc(), SigningKeyRecord.region,
                                                             SigningKeyRecord.valid_from)).all()
    return {"origin": origin, "keys": [key_json(r) for r in records]}


# --- checkpoints -----------------------------------------------------------

def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.exec(select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(1)).first()


# A worker keeps the published note for at most this long (or half the
# publisher's interval, if shorter): anonymous pollers of GET /ledger/checkpoint
# then cost the database one read a second per worker, not one each (bench
# 1a). The note changes once a round at most, so a poller cannot tell this
# staleness from the publisher's own lag; a round in this process forgets it.
PUBLISHED_NOTE_TTL_S = 1.0


class _PublishedNote:
    def __init__(self):
        self.lock = threading.Lock()
        self.note: str | None = None
        self.until = 0.0


_published_notes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_published_notes_lock = threading.Lock()


def _published_note_slot(engine) -> _PublishedNote:
    with _published_notes_lock:
        slot = _published_notes.get(engine)
        if slot is None:
            slot = _published_notes[engine] = _PublishedNote()
        return slot


def published_note(engine, session_for, interval_s: float) -> str | None:
    """The latest checkpoint's note, from this worker's memory when it read it
    less than min(PUBLISHED_NOTE_TTL_S, interval_s / 2) ago; None when nothing
    is published. `session_for()` gives the session to read it with."""
    ttl_s = min(PUBLISHED_NOTE_TTL_S, interval_s / 2)
    slot = _published_note_slot(engine)
    now = time.monotonic()
    if slot.note is not None and now < slot.until:
        return slot.note
    with slot.lock:  # one reader per worker refreshes it; the others wait for its answer
        if slot.note is not None and time.monotonic() < slot.until:
            return slot.note
        row = latest_checkpoint(session_for())
        note = None if row is None else row.note
        if note is not None and ttl_s > 0:
            slot.note, slot.until = note, now + ttl_s
        return note


def forget_published_note(engine) -> None:
    """A round of this process changed the published note: read it again."""
    slot = _published_note_slot(engine)
    with slot.lock:
        slot.note, slot.until = None, 0.0


LEAF_CHECK_BATCH = 1000


def check_new_leaves(session: Session, start: int, end: int, read) -> None:
    """Entries not yet under any checkpoint must hash to the leaves stored for
    them and carry a valid signature by their region's key: an edited row is
    refused here, before a checkpoint commits to it, even one whose hashes
    were rewritten to match (verifying witnesses check the same, and more)."""
    keys = {record.key_id: record for record in session.exec(select(SigningKeyRecord)).all()}
    while start < end:
        stop = min(end, start + LEAF_CHECK_BATCH)
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.seq >= start, LedgerEntry.seq < stop)
                            .order_by(LedgerEntry.seq)).all()
        leaves = read([(0, seq) for seq in range(start, stop)])
        if len(rows) != stop - start:
            raise journal.LedgerInvariantError(f"refusing to sign: entries {start}..{stop - 1} are not all present")
        for row, leaf in zip(rows, leaves):
            if merkle.leaf_hash(bytes(row.canonical)) != leaf or bytes(row.leaf_hash) != leaf:
                raise journal.LedgerInvariantError(
                    f"refusing to sign: entry {row.seq} does not hash to the leaf stored for it")
            _check_signed(row, keys)
        start = stop


def _check_signed(row: LedgerEntry, keys: dict) -> None:
    try:
        entry = parse_entry(bytes(row.canonical))
    except ValueError as exc:
        raise journal.LedgerInvariantError(f"refusing to sign: entry {row.seq} is not a canonical entry: {exc}") from None
    key = keys.get((entry.get("sig") or {}).get("key_id"))
    if (key is None or key.region != entry.get("region") or entry.get("seq") != row.seq
            or not verify_entry_signature(entry, bytes(key.public_key))):
        raise journal.LedgerInvariantError(
            f"refusing to sign: entry {row.seq} is not signed by a key of its region: it was changed after writing")


# --- entries and receipts --------------------------------------------------

def get_entry(session: Session, seq: int) -> LedgerEntry:
    row = session.get(LedgerEntry, seq)
    if row is None:
        raise TreeError("seq", f"no ledger entry {seq}")
    return row


def receipt(session: Session, seq: int, checkpoint: LedgerCheckpoint) -> dict:
    """A self-contained bundle: the entry, its inclusion proof and a cosigned checkpoint."""
    row = get_entry(session, seq)
    if seq >= checkpoint.size:
        raise TreeError("seq", f"entry {seq} is not yet covered by a checkpoint")
    proof = merkle.inclusion_proof(seq, checkpoint.size, journal.node_reader(session))
    tlog_proof = "\n".join([TLOG_PROOF_HEADER, f"index {seq}", *map(b64, proof)]) + "\n\n" + checkpoint.note
    return {"entry": bytes(row.canonical).decode("utf-8"), "leaf_index": seq, "leaf_hash": b64(bytes(row.leaf_hash)),
            "tree_size": checkpoint.size, "inclusion_proof": [b64(h) for h in proof],
            "checkpoint": checkpoint.note, "tlog_proof": tlog_proof}


def entry_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(LedgerEntry)).one()


def witness_report(session: Session, witnesses) -> dict:
    """GET /ledger/witnesses: each configured witness with what it last did."""
    latest = latest_checkpoint(session)
    statuses = {s.name: s for s in session.exec(select(WitnessStatus)).all()}
    items = []
    for witness in witnesses:
        status = statuses.get(witness.name)
        items.append({"name": witness.name, "vkey": witness.cosigner.vkey,
                      "cosigned_size": status.cosigned_size if status else None,
                      "cosigned_at": status.cosigned_at if status else None,
                      "attempted_at": status.attempted_at if status else None,
                      "ok": bool(status and status.error is None and status.cosigned_size is not None)})
    return {"published_size": latest.size if latest else None, "witnesses": items}


def publish_status(session: Session, witnesses) -> dict:
    """For the metrics: tree size, published size, the publisher's lag in
    seconds (age of the oldest entry no published checkpoint covers) and the
    witnesses as in witness_report."""
    size = tree_size(session)
    report = witness_report(session, witnesses)
    published = report["published_size"] or 0
    lag_s = 0.0
    if size > published:
        oldest = session.exec(select(LedgerEntry.ts).where(LedgerEntry.seq == published)).first()
        if oldest is not None:
            lag_s = max(0.0, (utc_now() - parse_rfc3339(oldest)).total_seconds())
    return {"tree_size": size, "published_size": report["published_size"], "lag_s": lag_s,
            "witnesses": report["witnesses"]}
