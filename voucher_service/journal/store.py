"""Appending signed entries to the ledger tables, in the caller's transaction.

Every state change calls `append` exactly once before its transaction commits,
so there is no state without its entry and no entry without its state. The
ledger package does the bytes (canonical form, signature, leaf hash); this
module does the rows (seq, balances, refs).

The statements here run while every other writer waits for the ledger lock, so
they are SQLAlchemy Core on the session's connection, not ORM objects: an ORM
`Session.get` costs ~0.3 ms of Python against a ~0.02 ms round trip, and the
lock's hold time bounds the service's write throughput (docs/performance.md).
On PostgreSQL, where every statement is a round trip the lock holder waits
for, an entry's rows (entry, nodes, refs, postings, balances, head) are
written by one statement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import bindparam, case, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from voucher_service.clock import rfc3339, utc_now
from voucher_service.journal.metrics import LEDGER_APPEND_SECONDS
from voucher_service.ledger import Entry, Posting, leaf_hash, sign_entry
from voucher_service.ledger.accounts import may_go_negative
from voucher_service.ledger.merkle import node_key, nodes_for_append
from voucher_service.models import Account, LedgerEntry, LedgerHead, LedgerNode, LedgerPosting, LedgerRef

_HEAD = LedgerHead.__table__
_ENTRY = LedgerEntry.__table__
_NODE = LedgerNode.__table__
_REF = LedgerRef.__table__
_POSTING = LedgerPosting.__table__
_ACCOUNT = Account.__table__

# Built once: constructing a statement costs more Python than running a cached one.
_LOCK_HEAD = select(_HEAD.c.size, _HEAD.c.registry_version).where(_HEAD.c.id == 1).with_for_update()
_NODES_BY_KEY = select(_NODE.c.id, _NODE.c.hash).where(_NODE.c.id.in_(bindparam("keys", expanding=True)))
_INSERT_ENTRY, _INSERT_NODE, _INSERT_REF, _INSERT_POSTING = (insert(t) for t in (_ENTRY, _NODE, _REF, _POSTING))
_MOVE_HEAD = (update(_HEAD).where(_HEAD.c.id == 1, _HEAD.c.size == bindparam("at_seq"))
              .values(size=bindparam("at_seq") + 1).returning(_HEAD.c.registry_version))

# session.info key: [the transaction holding the lock, the ledger's size in it,
# the registry version read with the lock]
_LOCK_INFO = "ledger_lock"


class LedgerInvariantError(RuntimeError):
    """A bug: the domain let through a change the chart of accounts forbids."""


def lock_ledger(session: Session) -> int:
    """Take the ledger's write lock for this transaction; return the ledger's
    size, which is the seq the next entry will get.

    Every write locks the head row first, before reading any balance it will
    check: on PostgreSQL the row lock (SELECT ... FOR UPDATE) makes writers
    queue, so a balance read after it is the latest committed one and two
    requests can never both spend the same fen; on SQLite the transaction
    already holds the database write lock (BEGIN IMMEDIATE). The lock lives in
    the database, never in the process, so it holds across gunicorn workers
    and hosts.

    Objects the request loaded before the lock (a view checking who may see a
    voucher, say) are expired when the lock is first taken, so that no rule is
    ever checked against a value read before the lock.
    """
    held = session.info.get(_LOCK_INFO)
    transaction = session.get_transaction()
    if held is not None and transaction is not None and held[0] is transaction:
        return held[1]
    head = session.connection().execute(_LOCK_HEAD).first()
    if head is None:
        raise LedgerInvariantError("ledger head row is missing: run `vouchers init`")
    session.expire_all()
    session.info[_LOCK_INFO] = [session.get_transaction(), head.size, head.registry_version]
    return head.size


def registry_version(session: Session) -> int | None:
    """The version of the reference data as of the ledger lock this session's
    transaction holds, or None without the lock. While the lock is held no
    other writer can change reference data, so the version stays current
    until COMMIT. None, too, once an append has found that this transaction
    changed reference data itself (registry_cache)."""
    held = session.info.get(_LOCK_INFO)
    transaction = session.get_transaction()
    if held is None or transaction is None or held[0] is not transaction:
        return None
    return held[2]


def node_reader(session: Session):
    """Read stored Merkle nodes in one query, in the order asked."""
    def read(nodes):
        if not nodes:
            return []
        keys = [node_key(n) for n in nodes]
        found = {key: bytes(value) for key, value in session.connection().execute(
            _NODES_BY_KEY, {"keys": keys})}
        missing = [n for n, key in zip(nodes, keys) if key not in found]
        if missing:
            raise LedgerInvariantError(f"stored Merkle nodes missing: {missing[:5]}")
        return [found[key] for key in keys]
    return read


def account_balance(session: Session, name: str) -> int:
    # A statement, not Session.get: the identity map could hold a balance
    # read before an append of this transaction moved it.
    balance = session.connection().execute(
        select(_ACCOUNT.c.balance_fen).where(_ACCOUNT.c.name == name)).scalar_one_or_none()
    return balance or 0


def append(session: Session, signer, *, kind: str, region: str, actor: str,
           refs: dict[str, str], postings: list[Posting] = (), data: dict | None = None,
           ts: str | None = None) -> "AppendedEntry":
    """`ts` must have been read after `lock_ledger` (the domain's `lock` does
    that): so ts never decreases along seq, and no entry can predate the key
    rotation that happened while its request waited for the lock.

    Returns the entry's row as written, as a plain value (not an ORM object:
    building one costs ~0.1 ms of validation on every write)."""
    started = time.perf_counter()
    seq = lock_ledger(session)
    connection = session.connection()
    entry = Entry(seq=seq, ts=ts or rfc3339(utc_now()), kind=kind, region=region, actor=actor,
                  refs=refs, postings=tuple(postings), data=data or {})
    key = signer(region)
    signed = sign_entry(entry, key)
    leaf = leaf_hash(signed)
    nodes = [(node_key(node), value) for node, value in nodes_for_append(seq, leaf, node_reader(session))]
    deltas: dict[str, int] = {}
    for posting in entry.postings:
        deltas[posting.source] = deltas.get(posting.source, 0) - posting.amount
        deltas[posting.destination] = deltas.get(posting.destination, 0) + posting.amount
    written = AppendedEntry(seq=seq, ts=entry.ts, kind=kind, region=region, actor=actor, key_id=key.key_id,
                            canonical=signed, leaf_hash=leaf)
    rows = _Rows(entry=written, nodes=nodes, refs=sorted(set(refs.values())), postings=entry.postings, deltas=deltas)
    write = _write_in_one_statement if connection.dialect.name == "postgresql" else _write_statement_by_statement
    try:
        registry_version, balances = write(connection, rows)
    except IntegrityError as exc:
        # The CHECK refused an account going below zero: the same bug as the
        # one caught below, reported the same way (the caller rolls back).
        if "account_non_negative" not in str(exc.orig):
            raise
        debited = sorted(name for name, delta in deltas.items()
                         if delta < 0 and not may_go_negative(name))
        raise LedgerInvariantError(f"account {' or '.join(debited)} would go negative") from None
    # The head update's `size = seq` re-checks, for free, that the size held
    # since the lock is the head's.
    if registry_version is None:
        raise LedgerInvariantError(f"the ledger head is no longer at {seq}: the entry would leave a gap or a duplicate")
    for name, balance in balances.items():
        # Asserted here, in the code that maintains the balance, as well as
        # by the database CHECK: a failure is a bug in a domain rule.
        if balance < 0 and not may_go_negative(name):
            raise LedgerInvariantError(f"account {name} would go negative ({balance} fen)")
    held = session.info[_LOCK_INFO]
    held[1] = seq + 1
    if registry_version != held[2]:
        held[2] = None  # this transaction changed reference data: see registry_version
    forget(session, LedgerHead, 1)
    for name in deltas:
        forget(session, Account, name)
    LEDGER_APPEND_SECONDS.observe(time.perf_counter() - started)
    return written


@dataclass(frozen=True)
class AppendedEntry:
    """A ledger_entry row as append wrote it."""
    seq: int
    ts: str
    kind: str
    region: str
    actor: str
    key_id: str
    canonical: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class _Rows:
    """One entry's rows: the entry, its new Merkle nodes, refs and postings,
    and the net move of each account it touches."""
    entry: AppendedEntry
    nodes: list[tuple[int, bytes]]
    refs: list[str]
    postings: tuple[Posting, ...]
    deltas: dict[str, int]

    @property
    def seq(self) -> int:
        return self.entry.seq

    def entry_values(self) -> dict:
        return dict(vars(self.entry))


def _write_statement_by_statement(connection, rows: _Rows) -> tuple[int | None, dict[str, int]]:
    """SQLite: a statement is a function call, not a round trip."""
    connection.execute(_INSERT_ENTRY, rows.entry_values())
    connection.execute(_INSERT_NODE, [{"id": key, "hash": value} for key, value in rows.nodes])
    if rows.refs:
        connection.execute(_INSERT_REF, [{"seq": rows.seq, "ref": ref} for ref in rows.refs])
    balances = {}
    if rows.postings:
        connection.execute(_INSERT_POSTING, [
            {"seq": rows.seq, "position": position, "ts": rows.entry.ts, "kind": rows.entry.kind,
             "region": rows.entry.region,
             "source": p.source, "destination": p.destination, "amount_fen": p.amount}
            for position, p in enumerate(rows.postings)])
        # An UPDATE of the accounts that exist, an INSERT of the rest: an
        # upsert cannot do both, as the CHECK refuses the negative row it
        # proposes for an existing account before the conflict is seen.
        balances = dict(connection.execute(
            update(_ACCOUNT).where(_ACCOUNT.c.name.in_(list(rows.deltas)))
            .values(balance_fen=_ACCOUNT.c.balance_fen + case(rows.deltas, value=_ACCOUNT.c.name))
            .returning(_ACCOUNT.c.name, _ACCOUNT.c.balance_fen)).all())
        new = {name: delta for name, delta in rows.deltas.items() if name not in balances}
        if new:
            connection.execute(insert(_ACCOUNT), [{"name": name, "balance_fen": delta} for name, delta in new.items()])
            balances.update(new)
    moved = connection.execute(_MOVE_HEAD, {"at_seq": rows.seq}).first()
    return (None if moved is None else moved.registry_version), balances


# PostgreSQL: every row of the entry in one statement (data-modifying CTEs),
# so the lock holder waits for one round trip instead of six; row counts vary,
# so nodes, refs, postings and balances travel as arrays. Foreign keys are
# checked at the end of the statement, when the entry row is there. The
# sub-statements share one snapshot: `opened` learns which accounts exist
# from `updated`'s RETURNING, not from the table.
_ONE_STATEMENT = text("""
WITH entry AS (
    INSERT INTO ledger_entry (seq, ts, kind, region, actor, key_id, canonical, leaf_hash)
    VALUES (:seq, :ts, :kind, :region, :actor, :key_id, :canonical, :leaf_hash)
), nodes AS (
    INSERT INTO ledger_node (id, hash)
    SELECT * FROM unnest(CAST(:node_ids AS bigint[]), CAST(:node_hashes AS bytea[]))
), refs AS (
    INSERT INTO ledger_ref (seq, ref) SELECT :seq, unnest(CAST(:refs AS varchar[]))
), postings AS (
    INSERT INTO ledger_posting (seq, position, ts, kind, region, source, destination, amount_fen)
    SELECT :seq, p.position - 1, :ts, :kind, :region, p.source, p.destination, p.amount_fen
    FROM unnest(CAST(:sources AS varchar[]), CAST(:destinations AS varchar[]), CAST(:amounts AS bigint[]))
         WITH ORDINALITY AS p (source, destination, amount_fen, position)
), moved AS (
    SELECT * FROM unnest(CAST(:accounts AS varchar[]), CAST(:deltas AS bigint[])) AS moved (name, delta)
), updated AS (
    UPDATE account SET balance_fen = account.balance_fen + moved.delta FROM moved
    WHERE account.name = moved.name RETURNING account.name, account.balance_fen
), opened AS (
    INSERT INTO account (name, balance_fen)
    SELECT name, delta FROM moved WHERE name NOT IN (SELECT name FROM updated) RETURNING name, balance_fen
), head AS (
    UPDATE ledger_head SET size = :seq + 1 WHERE id = 1 AND size = :seq RETURNING registry_version
)
SELECT name, balance_fen, CAST(NULL AS bigint) AS registry_version FROM updated
UNION ALL
SELECT name, balance_fen, NULL FROM opened
UNION ALL
SELECT NULL, NULL, registry_version FROM head
""")


def _write_in_one_statement(connection, rows: _Rows) -> tuple[int | None, dict[str, int]]:
    result = connection.execute(_ONE_STATEMENT, {
        **rows.entry_values(),
        "node_ids": [key for key, _ in rows.nodes], "node_hashes": [value for _, value in rows.nodes],
        "refs": rows.refs,
        "sources": [p.source for p in rows.postings], "destinations": [p.destination for p in rows.postings],
        "amounts": [p.amount for p in rows.postings],
        "accounts": list(rows.deltas), "deltas": list(rows.deltas.values())})
    registry_version, balances = None, {}
    for name, balance, version in result:
        if name is None:
            registry_version = version
        else:
            balances[name] = balance
    return registry_version, balances


def forget(session: Session, model, key) -> None:
    """Expire an ORM copy of a row these statements changed behind the ORM's back."""
    stale = session.identity_map.get(session.identity_key(model, key))
    if stale is not None:
        session.expire(stale)
