"""Appending signed entries to the ledger tables, in the caller's transaction.

Every state change calls `append` exactly once before its transaction commits,
so there is no state without its entry and no entry without its state. The
ledger package does the bytes (canonical form, signature, leaf hash); this
module does the rows (seq, balances, refs).

The statements here run while every other writer waits for the ledger lock, so
they are SQLAlchemy Core on the session's connection, not ORM objects: an ORM
`Session.get` costs ~0.3 ms of Python against a ~0.02 ms round trip, and the
lock's hold time bounds the service's write throughput (docs/performance.md).
"""
from __future__ import annotations

import time

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from .domain.context import rfc3339, utc_now
from .ledger import Entry, Posting, leaf_hash, sign_entry
from .ledger.merkle import node_key, nodes_for_append
from .models import Account, LedgerEntry, LedgerHead, LedgerNode, LedgerPosting, LedgerRef
from .observability import LEDGER_APPEND_SECONDS

NEGATIVE_ALLOWED_PREFIX = "treasury:"

_HEAD = LedgerHead.__table__
_ENTRY = LedgerEntry.__table__
_NODE = LedgerNode.__table__
_REF = LedgerRef.__table__
_POSTING = LedgerPosting.__table__
_ACCOUNT = Account.__table__

# session.info key: [the transaction holding the lock, the ledger's size in it]
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
    size = session.connection().execute(
        select(_HEAD.c.size).where(_HEAD.c.id == 1).with_for_update()).scalar_one_or_none()
    if size is None:
        raise LedgerInvariantError("ledger head row is missing: run `vouchers init`")
    session.expire_all()
    session.info[_LOCK_INFO] = [session.get_transaction(), size]
    return size


def node_reader(session: Session):
    """Read stored Merkle nodes in one query, in the order asked."""
    def read(nodes):
        if not nodes:
            return []
        keys = [node_key(n) for n in nodes]
        found = {key: bytes(value) for key, value in session.connection().execute(
            select(_NODE.c.id, _NODE.c.hash).where(_NODE.c.id.in_(keys)))}
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
           ts: str | None = None) -> LedgerEntry:
    """`ts` must have been read after `lock_ledger` (the domain's `lock` does
    that): so ts never decreases along seq, and no entry can predate the key
    rotation that happened while its request waited for the lock.

    Returns the entry's row as written (not attached to the session)."""
    started = time.perf_counter()
    seq = lock_ledger(session)
    connection = session.connection()
    entry = Entry(seq=seq, ts=ts or rfc3339(utc_now()), kind=kind, region=region, actor=actor,
                  refs=refs, postings=tuple(postings), data=data or {})
    key = signer(region)
    signed = sign_entry(entry, key)
    leaf = leaf_hash(signed)
    row = LedgerEntry(seq=seq, ts=entry.ts, kind=kind, region=region, actor=actor,
                      key_id=key.key_id, canonical=signed, leaf_hash=leaf)
    connection.execute(insert(_ENTRY), {"seq": seq, "ts": entry.ts, "kind": kind, "region": region,
                                        "actor": actor, "key_id": key.key_id, "canonical": signed,
                                        "leaf_hash": leaf})
    connection.execute(insert(_NODE), [{"id": node_key(node), "hash": value}
                                       for node, value in nodes_for_append(seq, leaf, node_reader(session))])
    if refs:
        connection.execute(insert(_REF), [{"seq": seq, "ref": ref} for ref in sorted(set(refs.values()))])
    if entry.postings:
        connection.execute(insert(_POSTING), [
            {"seq": seq, "position": position, "ts": entry.ts, "kind": kind, "region": region,
             "source": p.source, "destination": p.destination, "amount_fen": p.amount}
            for position, p in enumerate(entry.postings)])
        _apply_postings(session, entry.postings)
    # `size = seq` re-checks, for free, that the size held since the lock is the head's.
    moved = connection.execute(update(_HEAD).where(_HEAD.c.id == 1, _HEAD.c.size == seq).values(size=seq + 1))
    if moved.rowcount != 1:
        raise LedgerInvariantError(f"the ledger head is no longer at {seq}: the entry would leave a gap or a duplicate")
    session.info[_LOCK_INFO][1] = seq + 1
    _forget(session, LedgerHead, 1)
    LEDGER_APPEND_SECONDS.observe(time.perf_counter() - started)
    return row


def _apply_postings(session: Session, postings) -> None:
    """Move every account's balance by its postings' net amount, in one UPDATE
    (an INSERT for an account's first posting)."""
    deltas: dict[str, int] = {}
    for posting in postings:
        deltas[posting.source] = deltas.get(posting.source, 0) - posting.amount
        deltas[posting.destination] = deltas.get(posting.destination, 0) + posting.amount
    connection = session.connection()
    try:
        balances = dict(connection.execute(
            update(_ACCOUNT).where(_ACCOUNT.c.name.in_(list(deltas)))
            .values(balance_fen=_ACCOUNT.c.balance_fen + case(deltas, value=_ACCOUNT.c.name))
            .returning(_ACCOUNT.c.name, _ACCOUNT.c.balance_fen)).all())
    except IntegrityError as exc:
        # The CHECK refused an existing account going below zero: the same bug
        # as the one caught below, reported the same way (the caller rolls back).
        if "account_non_negative" not in str(exc.orig):
            raise
        debited = sorted(name for name, delta in deltas.items()
                         if delta < 0 and not name.startswith(NEGATIVE_ALLOWED_PREFIX))
        raise LedgerInvariantError(f"account {' or '.join(debited)} would go negative") from None
    new = {name: delta for name, delta in deltas.items() if name not in balances}
    for name, balance in {**balances, **new}.items():
        # Asserted here, in the code that maintains the balance, as well as
        # by the database CHECK: a failure is a bug in a domain rule.
        if balance < 0 and not name.startswith(NEGATIVE_ALLOWED_PREFIX):
            raise LedgerInvariantError(f"account {name} would go negative ({balance} fen)")
    if new:
        connection.execute(insert(_ACCOUNT), [{"name": name, "balance_fen": delta} for name, delta in new.items()])
    for name in deltas:
        _forget(session, Account, name)


def _forget(session: Session, model, key) -> None:
    """Expire an ORM copy of a row these statements changed behind the ORM's back."""
    stale = session.identity_map.get(session.identity_key(model, key))
    if stale is not None:
        session.expire(stale)
