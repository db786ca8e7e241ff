"""The ledger's tables: balances, the head, entries with their refs and postings,
Merkle nodes, checkpoints and the signing keys' public halves."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
)
from sqlmodel import Field, SQLModel


class Account(SQLModel, table=True):
    """Running balance per ledger account; must equal a replay of all postings."""
    __tablename__ = "account"
    __table_args__ = (
        # Only a region's treasury (money outside the programme) may go negative.
        CheckConstraint("balance_fen >= 0 OR name LIKE 'treasury:%'", name="account_non_negative"),
    )
    name: str = Field(primary_key=True, max_length=120)
    balance_fen: int = Field(default=0, sa_type=BigInteger)


class LedgerHead(SQLModel, table=True):
    """One row; writers lock it, so seq assignment is serialised by the database."""
    __tablename__ = "ledger_head"
    __table_args__ = (CheckConstraint("id = 1", name="ledger_head_single_row"),
                      CheckConstraint("size >= 0", name="ledger_head_size"))
    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=BigInteger)
    # Moved by database triggers on every change to reference data
    # (migration 0004); caches of that data are valid for one version.
    registry_version: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    # The audit trail's filters (GET /ledger/entries) read pages in seq order:
    # (kind, seq) and (region, seq) give them already ordered, so a page of a
    # common kind and one of a rare kind both stop after `limit` index rows.
    __table_args__ = (CheckConstraint("seq >= 0", name="ledger_seq_non_negative"),
                      Index("ix_ledger_entry_kind_seq", "kind", "seq"),
                      Index("ix_ledger_entry_region_seq", "region", "seq"),
                      Index("ix_ledger_entry_ts_seq", "ts", "seq"))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    ts: str = Field(max_length=40)
    kind: str = Field(max_length=64)
    region: str = Field(max_length=8)
    actor: str = Field(max_length=64)
    key_id: str = Field(max_length=64)
    # The canonical bytes of the whole signed entry: the entry *is* these bytes.
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LedgerRef(SQLModel, table=True):
    """Which ids an entry concerns, so principals can be shown their own entries."""
    __tablename__ = "ledger_ref"
    __table_args__ = (Index("ix_ledger_ref_ref", "ref", "seq"),)
    seq: int = Field(sa_column=Column(BigInteger, ForeignKey("ledger_entry.seq"), primary_key=True))
    ref: str = Field(primary_key=True, max_length=80)


class LedgerPosting(SQLModel, table=True):
    """The postings of each entry as rows, written with the entry, so totals
    and balances as of a date are SQL aggregates, not a replay in Python.
    The entry's canonical bytes stay the record; these rows are an index."""
    __tablename__ = "ledger_posting"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="ledger_posting_amount_positive"),
        Index("ix_ledger_posting_source_ts", "source", "ts"),
        Index("ix_ledger_posting_destination_ts", "destination", "ts"),
        Index("ix_ledger_posting_region_ts", "region", "ts"),
    )
    seq: int = Field(sa_column=Column(BigInteger, ForeignKey("ledger_entry.seq"), primary_key=True))
    position: int = Field(primary_key=True)
    ts: str = Field(max_length=40)
    kind: str = Field(max_length=64)
    region: str = Field(max_length=8)
    source: str = Field(max_length=120)
    destination: str = Field(max_length=120)
    amount_fen: int = Field(sa_type=BigInteger)


class LedgerNode(SQLModel, table=True):
    """Stored Merkle subtree hashes. Node (level, idx) covers leaves
    [idx * 2^level, (idx + 1) * 2^level) and is stored under one integer key,
    idx * 64 + level, so a batch of nodes is a primary-key IN list that every
    database answers from its index. Written once, when the subtree completes."""
    __tablename__ = "ledger_node"
    __table_args__ = (CheckConstraint("id >= 0", name="ledger_node_id"),)
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LedgerCheckpoint(SQLModel, table=True):
    """Every checkpoint the service has signed, so it can prove it never forked."""
    __tablename__ = "ledger_checkpoint"
    __table_args__ = (CheckConstraint("size >= 0", name="ledger_checkpoint_size"),)
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: str = Field(max_length=40)


class SigningKeyRecord(SQLModel, table=True):
    """A public key: a region's entry-signing key, or the operator's one log
    key (purpose `log`, no region), which signs checkpoints (DESIGN §10)."""
    __tablename__ = "signing_key"
    __table_args__ = (CheckConstraint("(purpose = 'entry' AND region IS NOT NULL) OR "
                                      "(purpose = 'log' AND region IS NULL)", name="signing_key_purpose"),)
    key_id: str = Field(primary_key=True, max_length=64)
    # The key's name in signed notes (checkpoints); fixed when the key is made.
    note_name: str = Field(max_length=200)
    # No foreign key: a region's first ledger entry is signed by its key, so the
    # key exists before the region row does.
    region: Optional[str] = Field(default=None, max_length=8, index=True)
    purpose: str = Field(default="entry", max_length=8, sa_column_kwargs={"server_default": "entry"})
    public_key: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    valid_from: str = Field(max_length=40)
    valid_until: Optional[str] = Field(default=None, max_length=40)


class WitnessStatus(SQLModel, table=True):
    """What the publisher last heard from each witness of VOUCHERS_WITNESSES:
    the size it last cosigned (the `old` of the next add-checkpoint) and the
    last failure, shared by every worker for /ledger/witnesses and metrics."""
    __tablename__ = "witness_status"
    name: str = Field(primary_key=True, max_length=200)
    vkey: str = Field(max_length=300)
    cosigned_size: Optional[int] = Field(default=None, sa_type=BigInteger)
    cosigned_at: Optional[str] = Field(default=None, max_length=40)
    attempted_at: Optional[str] = Field(default=None, max_length=40)
    error: Optional[str] = Field(default=None, max_length=500)
    # The checkpoint size it refused (it answered, and said no): not asked
    # about that checkpoint again, only about the next one.
    refused_size: Optional[int] = Field(default=None, sa_type=BigInteger)


class PublisherStatus(SQLModel, table=True):
    """One row: how the background publisher's last round ended. A round that
    refused to sign because the stored ledger is not what was written (an
    edited entry, a removed tail) keeps /readyz failing with ledger_integrity
    until a round signs again."""
    __tablename__ = "publisher_status"
    __table_args__ = (CheckConstraint("id = 1", name="publisher_status_single_row"),)
    id: int = Field(default=1, primary_key=True)
    attempted_at: Optional[str] = Field(default=None, max_length=40)
    published_at: Optional[str] = Field(default=None, max_length=40)
    integrity_error: Optional[str] = Field(default=None, max_length=500)
