"""The witness's state in D/state.sqlite: per log, the latest checkpoint it
cosigned (and, in verifying mode, the follower of the log's entries at that
size); and the evidence it kept of refused requests the log had signed.

Why SQLite with these settings: the check of a request's old size against the
stored size and the store of the new checkpoint must be one atomic step
across every thread and process of the witness (c2sp.org/tlog-witness: two
requests with old N and old N+K must never roll the witness back). `BEGIN
IMMEDIATE` takes SQLite's write lock before the stored size is read again,
so the read-compare-write is serialised by the database itself, whoever runs
it. WAL with synchronous=FULL makes a commit durable before the cosignature
is sent: after a kill -9 or a power cut the state is the last committed one,
old or new checkpoint, never a mixture.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from voucher_service.ledger.merkle import EMPTY_ROOT, HASH_SIZE

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30
MAX_STORED_SIZE = (1 << 63) - 1  # an SQLite INTEGER
# Refusals that an honest log also provokes (a stale old size after a restart)
# are kept up to this many per log; signs of misbehaviour are always kept.
MAX_ROUTINE_EVIDENCE = 10_000
ROUTINE_KINDS = ("stale-old-size", "old-beyond-size", "size-out-of-range")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = {HASH_SIZE}),
    note TEXT NOT NULL,
    cosignature TEXT NOT NULL,
    cosigned_at INTEGER NOT NULL CHECK (cosigned_at >= 0),
    follower TEXT,
    follower_size INTEGER CHECK (follower_size IS NULL OR follower_size <= size),
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    old_size TEXT NOT NULL,
    checkpoint_size TEXT NOT NULL,
    note TEXT NOT NULL,
    body BLOB NOT NULL,
    body_sha256 BLOB NOT NULL,
    seq INTEGER,
    entry BLOB,
    cosigned_size INTEGER NOT NULL,
    cosigned_root BLOB NOT NULL,
    first_received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 1,
    UNIQUE (origin, kind, body_sha256)
);
"""


class StateError(Exception):
    pass


@dataclass(frozen=True)
class Cosigned:
    """The latest checkpoint cosigned for a log; size 0 and the empty root if none."""
    size: int
    root: bytes
    cosigned_at: int = 0
    follower: dict | None = None  # Follower.to_state() at `follower_size`
    follower_size: int | None = None


NEVER = Cosigned(0, EMPTY_ROOT)


@dataclass(frozen=True)
class Evidence:
    origin: str
    kind: str            # ROUTINE_KINDS, or fork, bad-proof, content (signs of a misbehaving log)
    status: int
    reason: str
    old_size: int
    checkpoint_size: int
    note: str
    body: bytes
    cosigned: Cosigned   # what the witness held when it refused
    seq: int | None = None
    entry: bytes | None = None


class State:
    def __init__(self, path: str, *, max_routine_evidence: int = MAX_ROUTINE_EVIDENCE):
        self.path = path
        self.max_routine_evidence = max_routine_evidence

    @contextmanager
    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            yield connection
        finally:
            connection.close()

    def create(self) -> None:
        """Create or check the schema (safe to run again)."""
        with self._connect() as db:
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise StateError(f"{self.path}: SQLite would not use write-ahead logging")
            db.execute("BEGIN IMMEDIATE")
            try:
                # One statement at a time: executescript() would commit the open transaction first.
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StateError(f"{self.path} has schema version {row[0]}; this witness knows {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def check(self) -> None:
        """At start-up: the database exists, has our schema and is not damaged."""
        try:
            with self._connect() as db:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
                version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None
        if result != "ok":
            raise StateError(f"{self.path} is damaged: {result}")
        if version is None or version[0] != str(SCHEMA_VERSION):
            raise StateError(f"{self.path} is not a witness state of schema version {SCHEMA_VERSION}")

    def latest(self, origin: str) -> Cosigned:
        with self._connect() as db:
            return _read(db, origin)

    def all_latest(self) -> dict[str, Cosigned]:
        with self._connect() as db:
            origins = [row[0] for row in db.execute("SELECT origin FROM cosigned ORDER BY origin")]
            return {origin: _read(db, origin) for origin in origins}

    def commit(self, origin: str, expected: Cosigned, *, size: int, root: bytes, note: str, now_s: int,
               cosign: Callable[[int], str], follower: dict | None, follower_size: int | None,
               updated_at: str) -> tuple[str | None, Cosigned]:
        """Store the new checkpoint if the log's state is still `expected`, in one
        transaction with the write lock held from the re-read to the commit.

        Returns (our cosignature line, the new state), or (None, the state found)
        when another request changed it since `expected` was read: the caller
        then answers as if it had read that state (409). The cosignature's
        timestamp never goes back, even if the clock does.
        """
        if size > MAX_STORED_SIZE:
            raise StateError(f"a tree size above {MAX_STORED_SIZE} cannot be stored")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                current = _read(db, origin)
                if (current.size, current.root) != (expected.size, expected.root):
                    db.execute("ROLLBACK")
                    return None, current
                timestamp = max(now_s, current.cosigned_at)
                line = cosign(timestamp)
                if follower is None:  # plain mode, or no URL: the stored follower (if any) stays where it was
                    follower_text, follower_size = (json.dumps(current.follower) if current.follower else None,
                                                    current.follower_size)
                else:
                    follower_text = json.dumps(follower, separators=(",", ":"), sort_keys=True)
                db.execute(
                    "INSERT INTO cosigned (origin, size, root, note, cosignature, cosigned_at, follower, follower_size,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET"
                    " size = excluded.size, root = excluded.root, note = excluded.note,"
                    " cosignature = excluded.cosignature, cosigned_at = excluded.cosigned_at,"
                    " follower = excluded.follower, follower_size = excluded.follower_size,"
                    " updated_at = excluded.updated_at",
                    (origin, size, root, note, line, timestamp, follower_text, follower_size, updated_at))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return line, Cosigned(size, root, timestamp, follower if follower is not None else current.follower,
                              follower_size)

    def keep_evidence(self, evidence: Evidence, received_at: str) -> None:
        digest = hashlib.sha256(evidence.body).digest()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if evidence.kind in ROUTINE_KINDS:
                    (count,) = db.execute(
                        f"SELECT count(*) FROM evidence WHERE origin = ? AND kind IN ({','.join('?' * len(ROUTINE_KINDS))})",
                        (evidence.origin, *ROUTINE_KINDS)).fetchone()
                    known = db.execute("SELECT 1 FROM evidence WHERE origin = ? AND kind = ? AND body_sha256 = ?",
                                       (evidence.origin, evidence.kind, digest)).fetchone()
                    if count >= self.max_routine_evidence and known is None:
                        db.execute("ROLLBACK")
                        return
                db.execute(
                    "INSERT INTO evidence (origin, kind, status, reason, old_size, checkpoint_size, note, body,"
                    " body_sha256, seq, entry, cosigned_size, cosigned_root, first_received_at, last_received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (origin, kind, body_sha256)"
                    " DO UPDATE SET repeats = repeats + 1, last_received_at = excluded.last_received_at",
                    (evidence.origin, evidence.kind, evidence.status, evidence.reason, str(evidence.old_size),
                     str(evidence.checkpoint_size), evidence.note, evidence.body, digest, evidence.seq,
                     evidence.entry, evidence.cosigned.size, evidence.cosigned.root, received_at, received_at))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def evidence(self, origin: str | None = None) -> list[dict]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM evidence WHERE ? IS NULL OR origin = ? ORDER BY id", (origin, origin))
            return [dict(row) for row in rows]


def _read(db: sqlite3.Connection, origin: str) -> Cosigned:
    row = db.execute("SELECT size, root, cosigned_at, follower, follower_size FROM cosigned WHERE origin = ?",
                     (origin,)).fetchone()
    if row is None:
        return NEVER
    size, root, cosigned_at, follower, follower_size = row
    return Cosigned(size, bytes(root), cosigned_at, json.loads(follower) if follower else None, follower_size)
