"""Engine and one session per request.

SQLite: WAL and foreign keys on every connection; write transactions start
with BEGIN IMMEDIATE so two writers never both read a balance and then both
spend it (the second waits for the first instead of failing at COMMIT).
PostgreSQL: writers serialise on a row lock of the ledger head (see journal).
"""
from __future__ import annotations

import contextvars
import os
from contextlib import contextmanager

from flask import current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

# Read-only requests run in a deferred transaction on SQLite; everything else
# (writes, CLI commands) takes the write lock up front.
_read_only = contextvars.ContextVar("read_only_transaction", default=False)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN" if _read_only.get() else "BEGIN IMMEDIATE")


@contextmanager
def read_only():
    token = _read_only.set(True)
    try:
        yield
    finally:
        _read_only.reset(token)


@contextmanager
def writing():
    """A write transaction inside a read-only request (a GET that signs a checkpoint)."""
    token = _read_only.set(False)
    try:
        yield
    finally:
        _read_only.reset(token)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def locks_database_at_begin(engine: Engine) -> bool:
    """Whether a write transaction holds the database's one write lock from
    BEGIN (SQLite's BEGIN IMMEDIATE), rather than row locks as it goes."""
    return engine.dialect.name == "sqlite"


def get_engine() -> Engine:
    return current_app.extensions["vouchers_engine"]


def get_session() -> Session:
    if "db_session" not in g:
        g.db_session = Session(get_engine(), expire_on_commit=False)
    return g.db_session


def close_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app) -> None:
    app.extensions["vouchers_engine"] = make_engine(app.config["DATABASE_URL"])
    app.teardown_appcontext(close_session)
