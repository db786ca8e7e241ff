"""gunicorn entry point: `gunicorn wsgi:app`.

Before serving, every active region signing key must open with
VOUCHERS_KEY_PASSPHRASE (when the database is initialised): a wrong or missing
passphrase stops the server with one line saying so, instead of a server that
answers until its first signature fails. gunicorn reports an AppImportError
from a worker as "App failed to load" and exits non-zero.

Two settings of the server, read here because only the server has them:

- VOUCHERS_BODY_TIMEOUT_S (default 10): the whole request body must arrive
  within this many seconds of its headers, or the answer is a 408 problem.
  Keep it below GUNICORN_TIMEOUT_S: a sync worker still waiting at that
  timeout is killed, and gunicorn answers with an HTML 500 of its own.
- VOUCHERS_PROXY_COUNT (default 0): how many proxies in front of gunicorn
  set X-Forwarded-For; 1 behind the nginx of docs/deployment.md. Rate limits
  count callers without a valid token by address: behind a proxy, without
  this, every caller would have the proxy's.
"""
import os

from werkzeug.middleware.proxy_fix import ProxyFix

from voucher_service import create_app
from voucher_service.db import read_only
from voucher_service.http.security import StartupError, bound_body_reads, check_signing_keys
from voucher_service.journal.election import BackgroundPublisher, leader_lock

try:
    from gunicorn.errors import AppImportError as _StartupFailure
except ImportError:  # another WSGI server: exit with the message all the same
    _StartupFailure = SystemExit


def _setting(name: str, default: str, parse, *, minimum):
    raw = os.environ.get(name, default)
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise _StartupFailure(f"vouchers: {name}={raw!r} is not a number of at least {minimum}")
    return value


BODY_TIMEOUT_S = _setting("VOUCHERS_BODY_TIMEOUT_S", "10", float, minimum=0.1)
PROXY_COUNT = _setting("VOUCHERS_PROXY_COUNT", "0", int, minimum=0)
WORKER_TIMEOUT_S = _setting("GUNICORN_TIMEOUT_S", "30", int, minimum=0)
if WORKER_TIMEOUT_S and BODY_TIMEOUT_S >= WORKER_TIMEOUT_S:
    raise _StartupFailure(f"vouchers: VOUCHERS_BODY_TIMEOUT_S ({BODY_TIMEOUT_S:g}) must be below "
                          f"GUNICORN_TIMEOUT_S ({WORKER_TIMEOUT_S})")

try:
    app = create_app()
except ValueError as exc:  # a setting that cannot be used: say which, and do not start
    raise _StartupFailure(f"vouchers: {exc}") from None
app.wsgi_app = bound_body_reads(app.wsgi_app, BODY_TIMEOUT_S)
if PROXY_COUNT:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=PROXY_COUNT, x_proto=0, x_host=0, x_port=0, x_prefix=0)

try:
    check_signing_keys(app)
except StartupError as exc:
    raise _StartupFailure(f"vouchers: {exc}") from None

# Every worker runs a publisher thread; the one holding the deployment's
# leader lock publishes (journal/election.py).
if app.config["VOUCHERS_CHECKPOINT_INTERVAL_S"] > 0:
    BackgroundPublisher(app.extensions["vouchers_engine"], app.extensions["vouchers_keyring"],
                        origin=app.config["VOUCHERS_LEDGER_ORIGIN"], witnesses=app.extensions["vouchers_witnesses"],
                        interval_s=app.config["VOUCHERS_CHECKPOINT_INTERVAL_S"],
                        timeout_s=app.config["VOUCHERS_WITNESS_TIMEOUT_S"],
                        lock=leader_lock(app.config["DATABASE_URL"]), reading=read_only).start()
