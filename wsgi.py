"""gunicorn entry point: `gunicorn wsgi:app`.

Before serving, every active region signing key must open with
VOUCHERS_KEY_PASSPHRASE (when the database is initialised): a wrong or missing
passphrase stops the server with one line saying so, instead of a server that
answers until its first signature fails. gunicorn reports an AppImportError
from a worker as "App failed to load" and exits non-zero.
"""
from voucher_service import create_app
from voucher_service.http.security import StartupError, check_signing_keys

try:
    from gunicorn.errors import AppImportError as _StartupFailure
except ImportError:  # another WSGI server: exit with the message all the same
    _StartupFailure = SystemExit

app = create_app()

try:
    check_signing_keys(app)
except StartupError as exc:
    raise _StartupFailure(f"vouchers: {exc}") from None
