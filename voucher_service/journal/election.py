"""One publisher per deployment, whatever the number of workers or hosts.

Every gunicorn worker runs a `BackgroundPublisher` thread; each round, only
the one holding the deployment's leader lock publishes:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) taken on
  a connection of its own and kept open while the worker leads. It lives in
  the database, so it holds across hosts; when the leader's process dies its
  connection closes, the lock is released, and another worker's next round
  takes it over (within one interval). A leader whose connection breaks stops
  leading at once: it reconnects and competes again.
- SQLite: an exclusive `flock` on a file beside the database. One SQLite
  database is one host's, so a host-wide lock is a deployment-wide one; the
  kernel releases it when the holder dies.

Two publishers at once would be harmless anyway (a checkpoint row per size,
the first insert wins, each is checked against the one before), so the
election is about not asking witnesses twice, not about correctness.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from voucher_service.journal.publisher import publish_round

log = logging.getLogger(__name__)

# An arbitrary constant that names "the checkpoint publisher" among advisory locks.
ADVISORY_LOCK_KEY = 0x766F756368657273 & 0x7FFFFFFFFFFFFFFF  # "vouchers"


class PostgresLeaderLock:
    def __init__(self, database_url: str):
        self._engine = create_engine(database_url, poolclass=NullPool)
        self._connection = None

    def held(self) -> bool:
        """True while this process leads; tries to become leader if it does not."""
        try:
            if self._connection is not None:
                self._connection.execute(text("SELECT 1"))
                return True
            connection = self._engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}).scalar()
            connection.commit()  # the lock is the session's: it outlives this transaction
            if got:
                self._connection = connection
                return True
            connection.close()
        except Exception as exc:  # noqa: BLE001 - a broken connection means: not leader now
            log.warning("checkpoint publisher: leader lock lost or unavailable: %s", exc)
            self.release()
        return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001
                pass
            self._connection = None


class FileLeaderLock:
    def __init__(self, path: str):
        self.path = path
        self._handle = None

    def held(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def leader_lock(database_url: str):
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresLeaderLock(database_url)
    if url.database and url.database != ":memory:":
        return FileLeaderLock(os.path.abspath(url.database) + ".publisher.lock")
    return FileLeaderLock(os.path.join("/tmp", f"vouchers-memory-{os.getpid()}.publisher.lock"))


class BackgroundPublisher(threading.Thread):
    """Publishes every `interval_s` while this process holds the leader lock."""

    def __init__(self, engine, keyring, *, origin: str, witnesses, interval_s: float, timeout_s: float,
                 lock, reading):
        super().__init__(name="checkpoint-publisher", daemon=True)
        self.engine, self.keyring, self.origin, self.witnesses = engine, keyring, origin, witnesses
        self.interval_s, self.timeout_s, self.lock, self.reading = interval_s, timeout_s, lock, reading
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            if not self.lock.held():
                continue
            try:
                publish_round(self.engine, self.keyring, self.origin, self.witnesses, timeout_s=self.timeout_s,
                              reading=self.reading)
            except Exception:  # noqa: BLE001 - keep publishing; the failure is logged and visible in metrics
                log.exception("checkpoint publisher: publishing failed")
        self.lock.release()

    def stop(self) -> None:
        self.stopping.set()
