"""The bare baseline of bench_writes.py: a tiny Flask app, served by the same
gunicorn settings as the service, doing one INSERT and one COMMIT per request
on the same kind of database.

    BARE_DATABASE_URL=sqlite:////path/bare.db gunicorn -c ../gunicorn.conf.py bare_app:app
    BARE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/db  (likewise)

POST /reserve {"voucher_id": ..., "amount_fen": ...} inserts one row and
commits, on SQLite with the service's connection settings (WAL, synchronous
FULL, BEGIN IMMEDIATE), on PostgreSQL with psycopg's defaults (as the
service's engine). GET /hello answers without touching the database (the
ceiling of client and server together). GET /readyz for start-up.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import time

from flask import Flask, jsonify, request

URL = os.environ.get("BARE_DATABASE_URL", "sqlite:///bare.db")
SQLITE = URL.startswith("sqlite:")
TABLE = ("CREATE TABLE IF NOT EXISTS bare_reservation (id VARCHAR(40) PRIMARY KEY, voucher_id VARCHAR(40) NOT NULL, "
         "amount_fen BIGINT NOT NULL, created_at VARCHAR(40) NOT NULL)")

app = Flask(__name__)
_connection = None


def connection():
    """One connection per worker process, opened after the fork."""
    global _connection
    if _connection is None:
        if SQLITE:
            _connection = sqlite3.connect(URL.split("///", 1)[1], timeout=30, isolation_level=None,
                                          check_same_thread=False)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=30000"):
                _connection.execute(f"PRAGMA {pragma}")
        else:
            import psycopg
            _connection = psycopg.connect(URL.replace("postgresql+psycopg://", "postgresql://"))
    return _connection


@app.post("/reserve")
def reserve():
    body = request.get_json()
    row = ("bare_" + secrets.token_hex(12), str(body["voucher_id"]), int(body["amount_fen"]),
           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    db = connection()
    if SQLITE:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO bare_reservation VALUES (?, ?, ?, ?)", row)
        db.execute("COMMIT")
    else:
        db.execute("INSERT INTO bare_reservation VALUES (%s, %s, %s, %s)", row)
        db.commit()
    return jsonify(id=row[0], voucher_id=row[1], amount_fen=row[2], status="reserved"), 201


@app.get("/hello")
def hello():
    return jsonify(ok=True)


@app.get("/readyz")
def readyz():
    return jsonify(status="ready")
