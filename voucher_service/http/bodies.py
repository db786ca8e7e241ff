"""How large a request body may be: MAX_CONTENT_LENGTH (VOUCHERS_MAX_BODY_BYTES,
64 KiB) for every route but those of LARGE_BODY_ENDPOINTS (an evidence document,
up to VOUCHERS_MAX_DOCUMENT_BYTES), whose limit is raised here, per request,
before anything reads the body. An oversized body is a 413 problem+json that
changes nothing. (Body read timeouts: http/security.py, `bound_body_reads`.)
"""
from __future__ import annotations

import tempfile

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from voucher_service.http.problems import problem

CHUNK_BYTES = 256 * 1024
# Routes whose body may exceed MAX_CONTENT_LENGTH: endpoint -> the config key of
# the largest payload they take. The body limit of such a route is that plus
# MAX_CONTENT_LENGTH for the rest of the body (multipart boundaries, other fields).
# The console's upload form (DESIGN §11) posts the same document to the same limit.
LARGE_BODY_ENDPOINTS = {"documents.upload": "VOUCHERS_MAX_DOCUMENT_BYTES",
                        "console.provider_upload": "VOUCHERS_MAX_DOCUMENT_BYTES"}
SPOOL_IN_MEMORY_BYTES = 512 * 1024


def _body_limit() -> None:
    """Raise the body limit for the routes of LARGE_BODY_ENDPOINTS, before anything reads the body."""
    key = LARGE_BODY_ENDPOINTS.get(request.endpoint)
    if key is not None and current_app.config.get("MAX_CONTENT_LENGTH"):
        request.max_content_length = current_app.config[key] + current_app.config["MAX_CONTENT_LENGTH"]


def _refuse_oversized_streamed_body():
    """A body of unknown length (chunked; the server frames it and says so with
    wsgi.input_terminated) is cut at MAX_CONTENT_LENGTH by werkzeug, whose
    LimitedStream.readall then returns the first MAX_CONTENT_LENGTH bytes
    without complaint (Werkzeug 3.1): the view would parse a truncated body
    (a 400, or worse, a valid prefix). Read it here, once, and refuse more."""
    _body_limit()
    limit = request.max_content_length
    environ = request.environ
    if limit is None or request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return None  # with a Content-Length werkzeug refuses an oversized body itself
    if request.endpoint not in LARGE_BODY_ENDPOINTS:
        body = request.get_data(cache=True)
        if len(body) >= limit and environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
        return None
    # A large body (a document) is spooled to a temporary file as it is counted,
    # never held whole: then it is read as if it had come with a Content-Length.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
    source, size = environ["wsgi.input"], 0
    while chunk := source.read(min(CHUNK_BYTES, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            spool.close()
            raise RequestEntityTooLarge()
        spool.write(chunk)
    spool.seek(0)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = spool, str(size)
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    request.__dict__.pop("stream", None)
    return None


def _too_large(_error: RequestEntityTooLarge):
    key = LARGE_BODY_ENDPOINTS.get(request.endpoint)
    if key is not None:
        return problem(413, f"the request body is larger than allowed: a document may have at most "
                            f"{current_app.config[key]} bytes ({key})")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return problem(413, f"the request body is larger than the {limit} bytes allowed (VOUCHERS_MAX_BODY_BYTES)"
                   if limit else "the request body is too large")




def init_app(app) -> None:
    # After the limiter (a refused request reads nothing), before every hook that reads the body.
    app.before_request(_refuse_oversized_streamed_body)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
