"""Protections around every request: rate limits, security headers, and the
start-up check that the signing keys open with the configured passphrase.

Rate limits (flask-limiter): one budget per bearer token across all routes
(RATELIMIT_APPLICATION, from VOUCHERS_RATE_LIMIT, default "600 per minute");
callers without a token are counted by remote address. /healthz, /readyz and
/metrics are never limited. Counts live in memory (per process) unless
RATELIMIT_STORAGE_URI (VOUCHERS_RATE_LIMIT_STORAGE_URL) names a shared store
such as redis://127.0.0.1:6379/0: with several gunicorn workers or hosts only
a shared store enforces the limit as written, in memory each worker counts
alone. A refused request is a 429 problem+json with Retry-After, checked
before authentication and before the body is read, so it changes nothing.

The limiter's key is a hash of the token, never the token itself: keys may
be stored in Redis, and a token must not appear outside the client.
"""
from __future__ import annotations

import hashlib
import math
import time

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from werkzeug.exceptions import RequestEntityTooLarge

from voucher_service.http.problems import problem

DEFAULT_RATE_LIMIT = "600 per minute"
TESTING_RATE_LIMIT = "100000 per minute"
# Liveness, readiness and scrapes must answer however busy a caller is.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
API_PREFIX = "/api/v1"

# API responses are data, never a document to render: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The self-hosted Swagger UI page: its own scripts and styles, one inline
# script (flask-smorest's template) and inline styles set by the UI, images
# from its bundle (some as data: URIs), and the spec fetched from this origin.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"


def rate_limit_key() -> str:
    """The bucket of a request: its bearer token (hashed) or, without one, its remote address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        digest = hashlib.sha256(b"vouchers-rate-limit\0" + token.encode("utf-8", "replace")).hexdigest()
        return "token:" + digest[:32]
    return "addr:" + (request.remote_addr or "unknown")


def _exempt() -> bool:
    return request.path in EXEMPT_PATHS


def _too_many_requests(error: RateLimitExceeded):
    limiter: Limiter = current_app.extensions["vouchers_limiter"]
    retry_after = 1
    try:
        current = limiter.current_limit
        if current is not None:
            # reset_at is rounded up to the next second: never hint past one window.
            retry_after = max(1, min(math.ceil(current.reset_at - time.time()), current.limit.get_expiry()))
    except Exception:  # noqa: BLE001 - the store went away between the check and here: 1 s is a fine hint
        pass
    who = "token" if rate_limit_key().startswith("token:") else "address"
    return problem(429, f"rate limit of {error.limit.limit} per {who} exceeded; retry after {retry_after} s",
                   headers={"Retry-After": str(retry_after)})


def _refuse_oversized_streamed_body():
    """A body of unknown length (chunked; the server frames it and says so with
    wsgi.input_terminated) is cut at MAX_CONTENT_LENGTH by werkzeug, whose
    LimitedStream.readall then returns the first MAX_CONTENT_LENGTH bytes
    without complaint (Werkzeug 3.1): the view would parse a truncated body
    (a 400, or worse, a valid prefix). Read it here, once, and refuse more."""
    limit = request.max_content_length
    environ = request.environ
    if limit is None or request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return None  # with a Content-Length werkzeug refuses an oversized body itself
    body = request.get_data(cache=True)
    if len(body) >= limit and environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return None


def _too_large(_error: RequestEntityTooLarge):
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return problem(413, f"the request body is larger than the {limit} bytes allowed (VOUCHERS_MAX_BODY_BYTES)"
                   if limit else "the request body is too large")


def _security_headers(response):
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = DOCS_CSP if request.endpoint == DOCS_ENDPOINT else API_CSP
    hsts = current_app.config.get("VOUCHERS_HSTS_SECONDS", 0)
    if hsts:
        headers["Strict-Transport-Security"] = f"max-age={int(hsts)}"
    if (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")) and "Cache-Control" not in headers:
        # Answers depend on the token: no shared or private cache may keep them.
        # (A route that sets its own policy, the public checkpoint's no-cache, keeps it.)
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app) -> None:
    config = app.config
    config.setdefault("RATELIMIT_ENABLED", True)
    if not config.get("RATELIMIT_APPLICATION"):
        # Test apps (TESTING) replay hundreds of requests a second with one token
        # (hypothesis, schemathesis); tests of the limiter set a low limit of their own.
        config["RATELIMIT_APPLICATION"] = TESTING_RATE_LIMIT if app.testing else DEFAULT_RATE_LIMIT
    if isinstance(config["RATELIMIT_APPLICATION"], str):
        try:  # a typo must stop start-up, not turn every request into a 500
            parse_many(config["RATELIMIT_APPLICATION"])
        except ValueError:
            raise ValueError(f"VOUCHERS_RATE_LIMIT {config['RATELIMIT_APPLICATION']!r} is not a rate limit "
                             "such as '600 per minute' or '10/second;600/minute'") from None
    # Always explicit: flask-limiter warns when it has to pick memory:// itself.
    if not config.get("RATELIMIT_STORAGE_URI"):
        config["RATELIMIT_STORAGE_URI"] = "memory://"
    if not config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        # A shared store that goes away must not take the API with it: each process
        # then counts alone (the same limit, per route) until the store answers again.
        config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK", config["RATELIMIT_APPLICATION"])
        if config["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://", "redis+")):
            config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1})
    config.setdefault("RATELIMIT_KEY_PREFIX", "vouchers")
    # Unmatched paths (404, 405) count too: flask-limiter skips requests without an endpoint.
    config.setdefault("RATELIMIT_REQUEST_IDENTIFIER", lambda: request.endpoint or "unmatched")
    limiter = Limiter(key_func=rate_limit_key)
    limiter.request_filter(_exempt)
    # Registered here, between the request id (observability) and authentication
    # (api): a refused request is logged with its id and costs no database work.
    limiter.init_app(app)
    app.extensions["vouchers_limiter"] = limiter
    # After the limiter (a refused request reads nothing), before every hook that reads the body.
    app.before_request(_refuse_oversized_streamed_body)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.after_request(_security_headers)


class StartupError(RuntimeError):
    """The server must not start: the message says why, in one line."""


def check_signing_keys(app) -> int:
    """At server start: every active signing key must open with VOUCHERS_KEY_PASSPHRASE.

    Skipped (returns 0) when the database is unreachable or not initialised:
    /readyz reports that. Returns the number of keys checked; raises
    StartupError with a one-line message otherwise.
    """
    from voucher_service.db import read_only
    from voucher_service.journal.keys import KeyUnavailable
    from voucher_service.models import SigningKeyRecord
    engine = app.extensions["vouchers_engine"]
    keyring = app.extensions["vouchers_keyring"]
    try:
        with read_only(), engine.connect() as connection:
            initialised = sqlalchemy_inspect(connection).has_table(SigningKeyRecord.__tablename__)
    except SQLAlchemyError:
        return 0
    if not initialised:
        return 0
    with read_only(), Session(engine) as session:
        try:
            loaded = keyring.check_all(session)
        except KeyUnavailable as exc:
            hint = ("VOUCHERS_KEY_PASSPHRASE is not set"
                    if not app.config.get("VOUCHERS_KEY_PASSPHRASE") else str(exc))
            raise StartupError(f"cannot start: the region signing keys do not open: {hint}") from None
        except SQLAlchemyError as exc:
            # Half-initialised or busy: not ready yet, but not a wrong key either.
            app.logger.warning("signing keys not checked at start-up: %s", type(exc).__name__)
            return 0
    return len(loaded)
