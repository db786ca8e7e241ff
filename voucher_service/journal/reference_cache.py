"""Reference data the write rules read, cached per process for one registry version.

Every reservation checks the provider, its accredited categories and the
regions excluding it, the catalogue item, the enterprise's related providers,
the region's policy and the region's signing key, all under the ledger lock:
seven reads, while every other writer waits (docs/performance.md). These rows
change rarely, so a process keeps what it has read, valid for one *registry
version*: a counter on the ledger head that database triggers move on every
INSERT, UPDATE or DELETE of the tables below (migrations 0004 and 0008), by any
code path. The lock statement returns the version, so a writer holding the
lock knows, with no extra round trip, whether what it cached is still what the
database holds; while it holds the lock no other writer can change these tables.

A transaction that changes reference data itself must not use the cache, nor
fill it: what it reads may never be committed, and after a rollback the
database is back at the version it started from. It is recognised by its ORM
flushes of these models (every registry change in the domain goes through
one), and by the version the ledger head returns when it appends
(`journal.registry_version` then answers None). So, within one state change:
cached reads first, then writes.
"""
from __future__ import annotations

import weakref
from typing import Callable, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from voucher_service.journal import store as journal
from voucher_service.models import (
    CatalogCategory,
    CatalogItem,
    Enterprise,
    EnterpriseRelatedProvider,
    Policy,
    Provider,
    ProviderCategory,
    ProviderExclusion,
    Region,
    SigningKeyRecord,
)

# The tables whose triggers move the version: nothing else may be cached here.
REGISTRY_MODELS = (Region, Policy, CatalogCategory, CatalogItem, Provider, ProviderCategory, ProviderExclusion,
                   Enterprise, EnterpriseRelatedProvider, SigningKeyRecord)
# A bound on memory, not a tuning knob: one entry per provider, item,
# enterprise or region asked about; the cache starts over when it fills.
MAX_ENTRIES = 100_000

# session.info key: the transaction that flushed a change to reference data
_CHANGED_IN = "registry_changed_in"

T = TypeVar("T")


class _VersionCache:
    __slots__ = ("version", "entries")

    def __init__(self, version: int):
        self.version = version
        self.entries: dict = {}


# One per engine (a database), so two apps in one process never share one.
_caches: "weakref.WeakKeyDictionary[object, _VersionCache]" = weakref.WeakKeyDictionary()


def cached(session: Session, kind: str, key, load: Callable[[], T]) -> T:
    """`load()`'s value for (kind, key) at the current registry version:
    from the cache when this transaction holds the ledger lock and has not
    changed reference data, else read (and, under the lock, kept).

    `load` must read only REGISTRY_MODELS' tables and return an immutable
    value (None included: a missing row is a fact too, until a change)."""
    version = journal.registry_version(session)
    if version is None or _changed_here(session):
        return load()
    engine = session.get_bind()
    cache = _caches.get(engine)
    if cache is None or cache.version != version:
        cache = _caches[engine] = _VersionCache(version)
    entries = cache.entries
    entry_key = (kind, key)
    try:
        return entries[entry_key]
    except KeyError:
        pass
    value = load()
    if len(entries) >= MAX_ENTRIES:
        entries.clear()
    entries[entry_key] = value
    return value


def _changed_here(session: Session) -> bool:
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_CHANGED_IN) is transaction:
        return True
    # Not yet flushed: the reads below go through the connection and would
    # not see these, but the transaction is about to change reference data.
    return _registry_objects_pending(session)


def _registry_objects_pending(session: Session) -> bool:
    return any(isinstance(obj, REGISTRY_MODELS) for pending in (session.new, session.dirty, session.deleted)
               for obj in pending)


@event.listens_for(Session, "before_flush")
def _note_registry_changes(session, _flush_context, _instances) -> None:
    if _registry_objects_pending(session):
        session.info[_CHANGED_IN] = session.get_transaction()
