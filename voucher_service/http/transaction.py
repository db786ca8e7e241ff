"""One transaction per request, committed before the response leaves, with
Idempotency-Key replay.

Views change state through the domain and never commit. Here, after the view:
a successful write commits; a failed one rolls back (nothing half-written).
With an Idempotency-Key the response is stored in the *same* transaction as
the effect, under a unique (principal, key) constraint: two racing requests
with one key cannot both commit, and the loser replays the winner's response.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging

from flask import Response, g, request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from voucher_service.clock import rfc3339, utc_now
from voucher_service.db import get_session
from voucher_service.http.observability import record_committed_entries
from voucher_service.http.problems import problem
from voucher_service.models import IdempotencyRecord

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Responses worth replaying: the outcome of the request, not of its credentials or our load.
NOT_STORED_STATUSES = {401, 429}


def _request_hash() -> str:
    raw = request.get_data(cache=True)
    try:
        # Same JSON, different whitespace or key order: the same request.
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode("utf-8") if raw else b""
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode("utf-8"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.body, status=record.status_code, content_type=record.content_type)
    if record.location:
        response.headers["Location"] = record.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(principal_id: str, key: str) -> IdempotencyRecord | None:
    return get_session().exec(select(IdempotencyRecord).where(
        IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.idempotency_key == key)).first()


def _mismatch() -> Response:
    return problem(422, "this Idempotency-Key was used with a different request",
                   type_="urn:vouchers:problem:idempotency_key_reused",
                   errors={"headers.Idempotency-Key": ["Already used with a different request body."]})


def before_request():
    if request.method != "POST" or IDEMPOTENCY_HEADER not in request.headers:
        return None
    key = request.headers[IDEMPOTENCY_HEADER]
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable() or not key.isascii():
        return problem(422, "Idempotency-Key must be 1 to 255 printable ASCII characters",
                       errors={"headers.Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]})
    who = g.get("principal")
    if who is None:
        return None  # the view answers 401; nothing to remember
    request_hash = _request_hash()
    record = _find(who.principal_id, key)
    if record is not None:
        g.replayed = True
        return _replay(record) if record.request_hash == request_hash else _mismatch()
    g.idempotency = (who.principal_id, key, request_hash)
    return None


def _stamp_with_ledger_entry(response: Response) -> None:
    """Tell the writer which ledger entry its change produced, for its receipt."""
    ctx = g.get("domain_context")
    if ctx is None or not ctx.appended or not 200 <= response.status_code < 300 or not response.is_json:
        return
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        last = ctx.appended[-1]
        body["ledger"] = {"seq": last.seq, "leaf_hash": base64.b64encode(bytes(last.leaf_hash)).decode("ascii")}
        response.set_data(json.dumps(body, ensure_ascii=False))


def after_request(response: Response) -> Response:
    if request.method not in WRITE_METHODS or g.get("replayed"):
        return response
    session = get_session()
    idem = g.get("idempotency")
    _stamp_with_ledger_entry(response)
    try:
        if response.status_code >= 400:
            session.rollback()
        if idem and response.status_code < 500 and response.status_code not in NOT_STORED_STATUSES:
            principal_id, key, request_hash = idem
            session.add(IdempotencyRecord(
                principal_id=principal_id, idempotency_key=key, request_hash=request_hash,
                status_code=response.status_code, content_type=response.content_type or "application/json",
                location=response.headers.get("Location"), body=response.get_data(), created_at=rfc3339(utc_now())))
        session.commit()
        ctx = g.get("domain_context")
        if ctx is not None and response.status_code < 400:
            record_committed_entries(ctx.appended)
    except IntegrityError:
        session.rollback()
        if idem:
            # A concurrent request with the same key committed first: its
            # effect stands, ours is discarded, and its response is the answer.
            record = _find(idem[0], idem[1])
            if record is not None:
                return _replay(record) if record.request_hash == idem[2] else _mismatch()
        log.exception("commit refused by a database constraint")
        return problem(409, "the change conflicts with the current state; retry the request",
                       type_="urn:vouchers:problem:conflict")
    except OperationalError:
        session.rollback()
        log.exception("commit failed")
        return problem(503, "the database is busy; retry the request", headers={"Retry-After": "1"})
    return response
