"""Protections around every request: rate limits, security headers, and the
start-up check that the signing keys open with the configured passphrase.

Rate limits (flask-limiter): one budget per authenticated bearer token across
all routes (RATELIMIT_APPLICATION, from VOUCHERS_RATE_LIMIT, default "600 per
minute"); everything else is counted by remote address: callers without a
token, and tokens that do not authenticate. /healthz, /readyz and /metrics are
never limited. Counts live in memory (per process) unless RATELIMIT_STORAGE_URI
(VOUCHERS_RATE_LIMIT_STORAGE_URL) names a shared store such as
redis://127.0.0.1:6379/0: with several gunicorn workers or hosts only a shared
store enforces the limit as written, in memory each worker counts alone. A
refused request is a 429 problem+json with Retry-After, checked before
authentication and before the body is read, so it changes nothing.

Which bucket, when the limiter must decide before the token is looked up: a
token gets a bucket of its own only once it has authenticated (http/api.py
`_load_principal`), and keeps it while that bucket counts. Until then its
requests count against the address, so made-up tokens spend the address's
budget and, once it is spent, are refused before any database lookup. The
price: a valid token's first request of a window also counts against its
address, and is refused while that address is over its limit.

The limiter's key is a hash of the token, never the token itself: keys may
be stored in Redis, and a token must not appear outside the client.

Request bodies are bounded in size (MAX_CONTENT_LENGTH, from
VOUCHERS_MAX_BODY_BYTES, raised for the document upload only: http/bodies.py)
and, under gunicorn, in time (`bound_body_reads`,
installed by wsgi.py): a body that stalls, trickles or ends early is a 408 or
400 problem+json that changes nothing, answered before gunicorn's worker
timeout would kill the worker and send its own HTML 500.
"""
from __future__ import annotations

import hashlib
import logging
import math
import signal
import threading
import time

from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from werkzeug.exceptions import ClientDisconnected, RequestTimeout

from voucher_service.http import API_PREFIX, bodies
from voucher_service.http.access_table import CONSOLE_BLUEPRINT
from voucher_service.http.problems import problem

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT = "600 per minute"
TESTING_RATE_LIMIT = "100000 per minute"
# Liveness, readiness and scrapes must answer however busy a caller is.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# API responses are data, never a document to render: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The self-hosted Swagger UI page: its own scripts and styles, one inline
# script (flask-smorest's template) and inline styles set by the UI, images
# from its bundle (some as data: URIs), and the spec fetched from this origin.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"
# The web console (DESIGN §11): its own scripts, styles and images only, no
# inline script or style, forms posted only to itself; its data blocks are
# <script type="application/json">, which CSP does not run.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
BODY_CUT_SHORT = "the request body ended before all of it arrived; nothing was changed"


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _token_bucket(token: str) -> str:
    digest = hashlib.sha256(b"vouchers-rate-limit\0" + token.encode("utf-8", "replace")).hexdigest()
    return "token:" + digest[:32]


def _address_bucket() -> str:
    return "addr:" + (request.remote_addr or "unknown")


def _counters(limiter: Limiter, bucket: str):
    """(limit, storage identifiers) of each application-wide limit for `bucket`,
    built as flask-limiter builds them when it counts a request (Limiter.__evaluate_limits,
    flask-limiter 3.8 to 4.x): so that a bucket read or counted here is the very
    one the limiter reads and counts (tests/functional/security/test_rate_limits.py)."""
    endpoint = limiter.identify_request()
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX")
    for limit in limiter.limit_manager.application_limits:
        if limit.is_exempt or limit.method_exempt:
            continue
        identifiers = [bucket, limit.scope_for(endpoint, request.method)]
        yield limit, [prefix, *identifiers] if prefix else identifiers


def _bucket_is_open(limiter: Limiter, bucket: str) -> bool:
    """Whether the bucket has counted a request in its current window: only an
    authenticated token's bucket ever does (see `_count_by_outcome`)."""
    return any(limiter.limiter.get_window_stats(limit.limit, *identifiers).remaining < limit.limit.amount
               for limit, identifiers in _counters(limiter, bucket))


def _count_in(limiter: Limiter, bucket: str) -> None:
    for limit, identifiers in _counters(limiter, bucket):
        limiter.limiter.hit(limit.limit, *identifiers, cost=limit.deduction_amount)


def rate_limit_key() -> str:
    """The bucket the limiter counts a request in, before its token is looked up:
    the token's own (hashed) if that token has authenticated within the bucket's
    window, else the remote address. Decided once per request."""
    key = g.get("rate_limit_key")
    if key is None:
        token = _bearer_token()
        key = _address_bucket()
        if token is not None:
            bucket = _token_bucket(token)
            if _bucket_is_open(current_app.extensions["vouchers_limiter"], bucket):
                key = bucket
        g.rate_limit_key = key
    return key


def _count_by_outcome(response):
    """After the token lookup, move the count to where it belongs.

    A token that authenticated while counted by address opens its own bucket
    with this request; later ones count there. A token counted in its own
    bucket that no longer authenticates (revoked, expired) counts against the
    address as well, as any token that does not authenticate does.
    """
    key = g.get("rate_limit_key")
    token = _bearer_token()
    limiter: Limiter = current_app.extensions["vouchers_limiter"]
    if key is None or token is None or "principal" not in g or not limiter.enabled:
        return response  # not counted (exempt, disabled), or refused before the lookup
    try:
        if g.principal is not None and key.startswith("addr:"):
            _count_in(limiter, _token_bucket(token))
        elif g.principal is None and key.startswith("token:") and response.status_code == 401:
            _count_in(limiter, _address_bucket())
    except Exception:  # noqa: BLE001 - a store gone away costs one count, never the answer
        log.warning("rate limit store unavailable after the token lookup", exc_info=True)
    return response


def _exempt() -> bool:
    # A console page is counted where it calls the API, with its user's token
    # (console/client.py); counting the page too would charge a whole office
    # behind one address for every page its clerks open. Signing in is counted.
    console_page = request.blueprint == CONSOLE_BLUEPRINT and request.endpoint != "console.sign_in"
    return request.path in EXEMPT_PATHS or console_page


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


class _DeadlinePassed(Exception):
    pass


class _Alarm:
    """SIGALRM at the deadline, raising in whatever read is waiting then.

    gunicorn's body reader loops over recv() until it has what was asked for,
    so a socket timeout bounds one recv, not the read: a client sending a byte
    now and then never trips it. Only in the main thread (a sync worker's only
    one), where signal handlers run; elsewhere the socket timeout stands alone.
    """

    def __init__(self, remaining_s: float):
        self.remaining_s = remaining_s
        self.armed = False
        self.previous = None

    def _fire(self, _signum, _frame):
        if self.armed:
            raise _DeadlinePassed()

    def __enter__(self):
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, self.remaining_s)
        return self

    def __exit__(self, *_exc):
        if self.armed:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


class _BoundedBody:
    """wsgi.input with a deadline for the whole body, and the ways a body fails
    to arrive as HTTP errors: late is a 408, short (EOF before the
    Content-Length, a chunk cut off, a reset) a 400.

    gunicorn frames the body itself (wsgi.input_terminated), so werkzeug does
    not count it against the Content-Length: at EOF it hands over what came,
    and a truncated body would be parsed. Counted here.
    """

    def __init__(self, stream, sock, deadline: float, timeout_s: float, content_length: int | None):
        self._stream, self._sock, self._deadline, self._timeout_s = stream, sock, deadline, timeout_s
        self._expected, self._received = content_length, 0

    def _bounded(self, read, size):
        remaining_s = self._deadline - time.monotonic()
        if remaining_s <= 0:
            raise self._timed_out()
        previous_s = self._sock.gettimeout()
        try:
            self._sock.settimeout(remaining_s)
            with _Alarm(remaining_s):
                data = read() if size is None else read(size)
        except (_DeadlinePassed, TimeoutError):
            raise self._timed_out() from None
        except OSError:  # gunicorn's NoMoreData (an IOError), a reset: the rest will not come
            raise ClientDisconnected(BODY_CUT_SHORT) from None
        finally:
            try:
                self._sock.settimeout(previous_s)
            except OSError:
                pass
        self._received += len(data)
        asked_for_some = size is None or size < 0 or size > 0
        if not data and asked_for_some and self._expected is not None and self._received < self._expected:
            raise ClientDisconnected(BODY_CUT_SHORT)
        return data

    def _timed_out(self) -> RequestTimeout:
        return RequestTimeout(f"the request body did not arrive within {self._timeout_s:g} s; nothing was changed")

    def read(self, size=None):
        return self._bounded(self._stream.read, size)

    def readline(self, size=None):
        return self._bounded(self._stream.readline, size)

    def readlines(self, hint=None):
        return list(self)

    def __iter__(self):
        while line := self.readline():
            yield line


def bound_body_reads(wsgi_app, timeout_s: float):
    """WSGI middleware (wsgi.py): under gunicorn, the whole body must arrive within
    `timeout_s` of the headers. Keep it below gunicorn's timeout (GUNICORN_TIMEOUT_S):
    a sync worker waiting on a socket is killed at that timeout, and gunicorn then
    answers with an HTML 500 of its own. Behind the buffering proxy of
    docs/deployment.md the body is whole before gunicorn sees it, and this never fires."""

    def application(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None and hasattr(sock, "settimeout") and environ.get("wsgi.input") is not None:
            chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            length = environ.get("CONTENT_LENGTH", "")
            content_length = int(length) if length.isdigit() and not chunked else None
            environ["wsgi.input"] = _BoundedBody(environ["wsgi.input"], sock, time.monotonic() + timeout_s,
                                                 timeout_s, content_length)
        return wsgi_app(environ, start_response)

    return application


def _body_cut_short(_error: ClientDisconnected):
    return problem(400, BODY_CUT_SHORT)


def _security_headers(response):
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    console = request.blueprint == CONSOLE_BLUEPRINT
    headers["Content-Security-Policy"] = (DOCS_CSP if request.endpoint == DOCS_ENDPOINT
                                          else CONSOLE_CSP if console else API_CSP)
    hsts = current_app.config.get("VOUCHERS_HSTS_SECONDS", 0)
    if hsts:
        headers["Strict-Transport-Security"] = f"max-age={int(hsts)}"
    if (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")) and "Cache-Control" not in headers:
        # Answers depend on the token: no shared or private cache may keep them.
        # (A route that sets its own policy, the public checkpoint's no-cache, keeps it.)
        headers["Cache-Control"] = "no-store"
    if console and request.endpoint != "console.static" and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"  # a page of someone's vouchers, on a shared computer
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
    bodies.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    app.register_error_handler(ClientDisconnected, _body_cut_short)
    app.after_request(_count_by_outcome)
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
