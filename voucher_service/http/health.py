"""Liveness and readiness, outside the versioned API and without authentication."""
import logging

from flask import Blueprint, current_app, jsonify
from sqlmodel import Session

from voucher_service.db import get_session, read_only
from voucher_service.http.observability import metrics_response
from voucher_service.http.problems import ledger_integrity_problem, problem
from voucher_service.journal import tree
from voucher_service.journal.integrity_scan import ReadinessScan
from voucher_service.journal.keys import KeyUnavailable
from voucher_service.journal.publisher import integrity_refusal

log = logging.getLogger(__name__)
# app.extensions key of the process's ReadinessScan (a test may put a smaller one there).
INTEGRITY_SCAN = "vouchers_integrity_scan"

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
        # The publisher found the stored ledger is not what was written (an
        # entry it was about to sign): not ready until a round signs again.
        return ledger_integrity_problem(refusal, status=503)
    # An instance serving a ledger whose stored bytes no longer match what was
    # signed must leave the load balancer, not keep answering from it. The
    # probe stays cheap (a window of the log per probe, journal/integrity_scan.py)
    # and keeps failing while a window it found broken stays broken.
    scan = current_app.extensions.get(INTEGRITY_SCAN) or current_app.extensions.setdefault(
        INTEGRITY_SCAN, ReadinessScan())
    found, covered = scan.probe(session)
    if found:
        log.error("ledger integrity check failed: %s", found.message())
        return ledger_integrity_problem(found.message(), status=503)
    return jsonify(status="ready", signing_keys=len(key_ids), ledger_integrity=covered)
