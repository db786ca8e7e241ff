"""Liveness and readiness, outside the versioned API and without authentication."""
from flask import Blueprint, current_app, jsonify
from sqlmodel import Session

from voucher_service.db import get_session, read_only
from voucher_service.http.observability import metrics_response
from voucher_service.http.problems import problem, rule_type
from voucher_service.journal.keys import KeyUnavailable
from voucher_service.journal.publisher import integrity_refusal
from voucher_service.journal import tree

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@blp.get("/metrics")
def metrics():
    engine = current_app.extensions["vouchers_engine"]

    witnesses = current_app.extensions["vouchers_witnesses"]

    def read_status():
        with read_only(), Session(engine) as session:
            return tree.publish_status(session, witnesses)

    return metrics_response(read_status)


@blp.get("/readyz")
def readyz():
    session = get_session()
    try:
        session.connection().exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        return problem(503, f"database not reachable: {type(exc).__name__}")
    try:
        key_ids = current_app.extensions["vouchers_keyring"].check_all(session)
    except KeyUnavailable as exc:
        return problem(503, f"signing keys not usable: {exc}")
    except Exception:  # noqa: BLE001 - reachable, but without our tables
        return problem(503, "the database is not initialised: run `vouchers init`")
    if not key_ids:
        return problem(503, "no active signing keys: run `vouchers init`")
    refusal = integrity_refusal(session)
    if refusal is not None:
        # The publisher found the stored ledger is not what was written: not
        # ready, with the ledger_integrity problem, until a round signs again.
        return problem(503, f"ledger integrity check failed: {refusal}", type_=rule_type("ledger_integrity"))
    return jsonify(status="ready", signing_keys=len(key_ids))
