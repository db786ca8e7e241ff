"""Appending signed entries to the ledger tables, in the caller's transaction.

Every state change calls `append` exactly once before its transaction commits,
so there is no state without its entry and no entry without its state. The
ledger package does the bytes (canonical form, signature, leaf hash); this
module does the rows (seq, balances, refs).
"""
from __future__ import annotations

import time

from sqlmodel import Session, select

from .domain.context import rfc3339, utc_now
from .ledger import Entry, Posting, leaf_hash, sign_entry
from .ledger.merkle import node_key, nodes_for_append
from .models import Account, LedgerEntry, LedgerHead, LedgerNode, LedgerPosting, LedgerRef
from .observability import LEDGER_APPEND_SECONDS

NEGATIVE_ALLOWED_PREFIX = "treasury:"


class LedgerInvariantError(RuntimeError):
    """A bug: the domain let through a change the chart of accounts forbids."""


def lock_ledger(session: Session) -> LedgerHead:
    """Take the ledger's write lock for this transaction.

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
    transaction = session.get_transaction()
    if transaction is not None and session.info.get("ledger_locked_in") is transaction:
        head = session.get(LedgerHead, 1)
    else:
        head = session.exec(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()
                            .execution_options(populate_existing=True)).first()
        if head is not None:
            session.expire_all()
            head = session.get(LedgerHead, 1)
            session.info["ledger_locked_in"] = session.get_transaction()
    if head is None:
        raise LedgerInvariantError("ledger head row is missing: run `vouchers init`")
    return head


def node_reader(session: Session):
    """Read stored Merkle nodes in one query, in the order asked."""
    def read(nodes):
        if not nodes:
            return []
        keys = [node_key(n) for n in nodes]
        found = {row.id: bytes(row.hash) for row in session.exec(select(LedgerNode).where(LedgerNode.id.in_(keys)))}
        missing = [n for n, key in zip(nodes, keys) if key not in found]
        if missing:
            raise LedgerInvariantError(f"stored Merkle nodes missing: {missing[:5]}")
        return [found[key] for key in keys]
    return read


def account_balance(session: Session, name: str) -> int:
    row = session.get(Account, name)
    return row.balance_fen if row else 0


def append(session: Session, signer, *, kind: str, region: str, actor: str,
           refs: dict[str, str], postings: list[Posting] = (), data: dict | None = None,
           ts: str | None = None) -> LedgerEntry:
    """`ts` must have been read after `lock_ledger` (the domain's `lock` does
    that): so ts never decreases along seq, and no entry can predate the key
    rotation that happened while its request waited for the lock."""
    started = time.perf_counter()
    head = lock_ledger(session)
    entry = Entry(seq=head.size, ts=ts or rfc3339(utc_now()), kind=kind, region=region, actor=actor,
                  refs=refs, postings=tuple(postings), data=data or {})
    key = signer(region)
    signed = sign_entry(entry, key)
    leaf = leaf_hash(signed)
    row = LedgerEntry(seq=entry.seq, ts=entry.ts, kind=kind, region=region, actor=actor,
                      key_id=key.key_id, canonical=signed, leaf_hash=leaf)
    session.add(row)
    for node, value in nodes_for_append(entry.seq, leaf, node_reader(session)):
        session.add(LedgerNode(id=node_key(node), hash=value))
    for ref in sorted(set(refs.values())):
        session.add(LedgerRef(seq=entry.seq, ref=ref))
    for position, posting in enumerate(entry.postings):
        session.add(LedgerPosting(seq=entry.seq, position=position, ts=entry.ts, kind=kind, region=region,
                                  source=posting.source, destination=posting.destination, amount_fen=posting.amount))
    _apply_postings(session, entry.postings)
    head.size = entry.seq + 1
    session.add(head)
    session.flush()
    LEDGER_APPEND_SECONDS.observe(time.perf_counter() - started)
    return row


def _apply_postings(session: Session, postings) -> None:
    for posting in postings:
        for name, delta in ((posting.source, -posting.amount), (posting.destination, posting.amount)):
            account = session.get(Account, name, with_for_update=True, populate_existing=True)
            if account is None:
                account = Account(name=name, balance_fen=0)
            account.balance_fen += delta
            # Asserted here, in the code that maintains the balance, as well as
            # by the database CHECK: a failure is a bug in a domain rule.
            if account.balance_fen < 0 and not name.startswith(NEGATIVE_ALLOWED_PREFIX):
                raise LedgerInvariantError(f"account {name} would go negative ({account.balance_fen} fen)")
            session.add(account)
