"""The witness's own app factory: POST /add-checkpoint and GET /healthz.

Every answer is text/plain (or text/x.tlog.size), never an HTML error page or
a traceback: the witness's one client is a log's publisher, which reads the
status and at most one line of text.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from voucher_service.ledger.tlog_witness import ADD_CHECKPOINT_PATH, MAX_BODY_BYTES

from .service import TEXT, Reply, Witness, text_reply

log = logging.getLogger("voucher_service.witness")


def create_app(witness: Witness) -> Flask:
    app = Flask("voucher_service.witness")
    # Werkzeug stops reading at this many bytes (413): a body larger than any
    # checkpoint request never reaches memory.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["witness"] = witness

    @app.post(ADD_CHECKPOINT_PATH)
    def add_checkpoint():
        return _response(witness.add_checkpoint(request.get_data(cache=False)))

    @app.get("/healthz")
    def healthz():
        return _response(text_reply(200, f"ok: witness {witness.identity.name}, {len(witness.logs)} log(s), "
                                         f"{witness.mode} mode"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = _response(text_reply(error.code or 500, f"{error.name}: {error.description}"))
        if error.code == 405:
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("add-checkpoint failed unexpectedly; nothing was cosigned")
        return _response(text_reply(500, "internal error: nothing was cosigned"))

    return app


def _response(reply: Reply) -> Response:
    response = Response(reply.body, status=reply.status, content_type=reply.content_type or TEXT)
    response.headers["Cache-Control"] = "no-store"
    return response
