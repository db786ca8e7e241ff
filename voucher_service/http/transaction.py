"""One transaction per request, committed before the response leaves, with
Idempotency-Key replay.

Views change state through the domain and never commit. Here, after the view:
a successful write commits; a failed one rolls back (nothing half-written).
With an Idempotency-Key the response is stored in the *same* transaction as
the effect, under a unique (principal, key) constraint: two racing requests
with one key cannot both commit, and the loser replays the winner's response.

A stored response is replayed only to a token of the binding that made it
(role and region, enterprise or provider). One principal may hold tokens of
several bindings; each sees only what its binding allows, and a replay must
not show one binding's response to another. Another binding presenting the
key is refused (422), as a different request would be: the key stays the
principal's, so the request is never run a second time either.
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


def _multipart_digest() -> bytes:
    """A multipart body by its fields and files, the files read in chunks from
    werkzeug's spool (a document is never read into memory whole): the same
    fields and bytes under another boundary are the same request."""
    digest = hashlib.sha256()
    parts = [("form", name, value.encode("utf-8")) for name, value in sorted(request.form.items(multi=True))]
    for kind, name, value in parts:
        for part in (kind.encode(), name.encode("utf-8"), value):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    for name, upload in sorted(request.files.items(multi=True), key=lambda item: item[0]):
        file_digest = hashlib.sha256()
        while chunk := upload.stream.read(256 * 1024):
            file_digest.update(chunk)
        upload.stream.seek(0)
        digest.update(b"file" + name.encode("utf-8") + b"\0" + file_digest.digest())
    return digest.hexdigest().encode("ascii")


def _request_hash() -> str:
    if request.mimetype == "multipart/form-data":
        raw = _multipart_digest()
    else:
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


def _binding(principal) -> str:
    return ":".join((principal.role, principal.region or "", principal.enterprise_id or "",
                     principal.provider_id or ""))


def _find(principal_id: str, key: str) -> IdempotencyRecord | None:
    return get_session().exec(select(IdempotencyRecord).where(
        IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.idempotency_key == key)).first()


def _mismatch() -> Response:
    return problem(422, "this Idempotency-Key was used with a different request",
                   type_="urn:vouchers:problem:idempotency_key_reused",
                   errors={"headers.Idempotency-Key": ["Already used with a different request body."]})


def _other_binding() -> Response:
    return problem(422, "this Idempotency-Key was used by a token of another binding (role and region, "
                        "enterprise or provider); use a new key",
                   type_="urn:vouchers:problem:idempotency_key_reused",
                   errors={"headers.Idempotency-Key": ["Already used by a token of another binding."]})


def _answer_from(record: IdempotencyRecord, request_hash: str, binding: str) -> Response:
    if record.token_binding != binding:
        return _other_binding()
    return _replay(record) if record.request_hash == request_hash else _mismatch()


def before_request():
    # Every write, not only POST: a PATCH that proposes a change or a DELETE
    # whose answer was lost is retried as safely as a POST.
    if request.method not in WRITE_METHODS or IDEMPOTENCY_HEADER not in request.headers:
        return None
    key = request.headers[IDEMPOTENCY_HEADER]
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable() or not key.isascii():
        return problem(422, "Idempotency-Key must be 1 to 255 printable ASCII characters",
                       errors={"headers.Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]})
    who = g.get("principal")
    if who is None:
        return None  # the view answers 401; nothing to remember
    request_hash = _request_hash()
    binding = _binding(who)
    record = _find(who.principal_id, key)
    if record is not None:
        g.replayed = True
        return _answer_from(record, request_hash, binding)
    g.idempotency = (who.principal_id, key, request_hash, binding)
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
            principal_id, key, request_hash, binding = idem
            session.add(IdempotencyRecord(
                principal_id=principal_id, idempotency_key=key, token_binding=binding, request_hash=request_hash,
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
            # effect stands, ours is discarded, and its response is the answer
            # if it was made for our binding (else the key is refused).
            principal_id, key, request_hash, binding = idem
            record = _find(principal_id, key)
            if record is not None:
                return _answer_from(record, request_hash, binding)
        log.exception("commit refused by a database constraint")
        return problem(409, "the change conflicts with the current state; retry the request",
                       type_="urn:vouchers:problem:conflict")
    except OperationalError:
        session.rollback()
        log.exception("commit failed")
        return problem(503, "the database is busy; retry the request", headers={"Retry-After": "1"})
    return response
