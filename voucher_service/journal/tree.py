"""The ledger's Merkle tree as stored in the database: roots, proofs,
checkpoints cosigned by every region, keys and receipts.

The math is in `ledger.merkle` and `ledger.note`; this module only reads and
writes rows. Every root and proof reads O(log n) stored nodes in one query.
"""
from __future__ import annotations

import base64

from sqlalchemy import func
from sqlmodel import Session, select

from voucher_service.clock import rfc3339, utc_now
from voucher_service.journal import store as journal
from voucher_service.journal.keys import is_active_key
from voucher_service.ledger import merkle
from voucher_service.ledger.entry import SIGNATURE_ALG
from voucher_service.ledger.note import TLOG_PROOF_HEADER, Checkpoint, sign_note, verifier_key
from voucher_service.models import LedgerCheckpoint, LedgerEntry, LedgerHead, SigningKeyRecord


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
    return {"key_id": record.key_id, "region": record.region, "alg": SIGNATURE_ALG,
            "public_key": b64(bytes(record.public_key)), "note_name": record.note_name,
            "note_key": verifier_key(record.note_name, bytes(record.public_key)),
            "valid_from": record.valid_from, "valid_until": record.valid_until}


def published_keys(session: Session, origin: str) -> dict:
    records = session.exec(select(SigningKeyRecord).order_by(SigningKeyRecord.region,
                                                             SigningKeyRecord.valid_from)).all()
    return {"origin": origin, "keys": [key_json(r) for r in records]}


def active_keys(session: Session) -> list[SigningKeyRecord]:
    return list(session.exec(select(SigningKeyRecord).where(is_active_key())
                             .order_by(SigningKeyRecord.region)).all())


# --- checkpoints -----------------------------------------------------------

def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.exec(select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(1)).first()


def issue_checkpoint(session: Session, keyring, origin: str) -> LedgerCheckpoint:
    """The checkpoint of the current tree, signed by every region's active key.

    Runs in a write transaction under the ledger lock, so the tree cannot grow
    while it is signed and two callers cannot sign two checkpoints of one size.
    Before signing, the new tree must extend the last signed one: a history
    rewritten underneath the service (an edited row, a dropped node) makes it
    refuse rather than sign a fork.
    """
    size = journal.lock_ledger(session)
    previous = latest_checkpoint(session)
    if previous is not None and previous.size == size:
        return previous
    if previous is not None and previous.size > size:
        # The tail of a signed history is gone (a restored backup, a deleted row): no
        # consistency proof exists from the longer tree, and signing would fork the log.
        raise journal.LedgerInvariantError(
            f"refusing to sign: the ledger holds {size} entries, fewer than the {previous.size} of the last "
            f"signed checkpoint; its tail was removed")
    read = journal.node_reader(session)
    _check_new_leaves(session, previous.size if previous else 0, size, read)
    new_root = merkle.root(size, read)
    if previous is not None:
        proof = merkle.consistency_proof(previous.size, size, read)
        if not merkle.verify_consistency(previous.size, size, bytes(previous.root_hash), new_root, proof):
            raise journal.LedgerInvariantError(
                f"refusing to sign: the tree of size {size} does not extend the checkpoint of size {previous.size}")
    signers = []
    for record in active_keys(session):
        key = keyring.load(record.key_id)
        signers.append((record.note_name, key.sign, bytes(record.public_key)))
    if not signers:
        raise journal.LedgerInvariantError("no active signing keys to sign a checkpoint")
    note = sign_note(Checkpoint(origin, size, new_root).text(), signers)
    checkpoint = LedgerCheckpoint(size=size, root_hash=new_root, note=note, created_at=rfc3339(utc_now()))
    session.add(checkpoint)
    session.flush()
    return checkpoint


LEAF_CHECK_BATCH = 1000


def _check_new_leaves(session: Session, start: int, end: int, read) -> None:
    """Entries not yet under any checkpoint must hash to the leaves stored for
    them: an edited row is refused here, before a checkpoint commits to it."""
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
        start = stop


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
