"""The console's blueprint and what every page shares: the signed-in session,
the form token (CSRF), the API call as the signed-in user, and the answer to a
refused call.

Pages never read the database: what a page shows and does is an API call
(console/client.py) with the session's token, so the API's access model is the
console's. The one table the console keeps is its sessions (console/sessions.py).
"""
from __future__ import annotations

import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlmodel import Session

from voucher_service.console import client, sessions
from voucher_service.db import get_engine

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

SESSION_COOKIE = "vouchers_console"
SIGN_IN_COOKIE = "vouchers_console_signin"  # the sign-in form's token, before any session exists
LANGUAGE_COOKIE = "vouchers_console_lang"
LANGUAGES = ("zh", "en")
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The role's first page after sign-in (its main job).
HOME = {"sme": "console.sme_vouchers", "provider": "console.provider_reservations",
        "officer": "console.officer_applications", "finance": "console.finance_batches",
        "auditor": "console.auditor_ledger", "admin": "console.auditor_ledger"}


def db_session() -> Session:
    """A short session of the console's own, never the API's: the page's calls
    to the API are requests of their own and must not wait for a lock it holds."""
    return Session(get_engine(), expire_on_commit=False)


def cookie_secure() -> bool:
    return request.is_secure or current_app.config.get("VOUCHERS_CONSOLE_SECURE_COOKIES", False)


def set_cookie(response, name: str, value: str, *, max_age_s: int | None = None):
    response.set_cookie(name, value, max_age=max_age_s, path="/console", httponly=True, samesite="Strict",
                        secure=cookie_secure())
    return response


@bp.before_request
def _load():
    g.console = None
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        with db_session() as db:
            g.console = sessions.load_session(db, session_id)
    # Every method that may write, not only POST: HEAD reaches the GET handlers, which
    # must not write either (api() refuses a write outside a checked POST).
    if request.method not in SAFE_METHODS and request.endpoint not in ("console.sign_in", "console.not_found"):
        expected = g.console.csrf_token if g.console else None
        if expected is None or not sessions.csrf_matches(expected, request.form.get(CSRF_FIELD)):
            return render_template("console/refused.html", status=400,
                                   message=_("This form has expired or did not come from this console. "
                                             "Reload the page and try again.")), 400
    return None


def signed_in(view):
    """The page needs a signed-in user; else to the sign-in page, and back after."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.console is None:
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def for_roles(*roles: str):
    """Which roles' pages these are: the navigation's, not an access rule (the
    API decides what each user may see and do; another role here is sent home)."""
    def decorate(view):
        @wraps(view)
        @signed_in
        def wrapper(*args, **kwargs):
            if g.console.principal.role not in roles:
                return redirect(url_for("console.home"))
            return view(*args, **kwargs)
        return wrapper
    return decorate


def principal():
    return g.console.principal


def api(method: str, path: str, **kwargs) -> client.ApiAnswer:
    """An API call as the signed-in user. A write carries an Idempotency-Key
    from the form (one per rendered form), so a double-clicked button or a
    resubmitted page is the same request, not two."""
    if method != "GET":
        if request.method != "POST":
            # Only a form posted with its CSRF token (checked in _load) writes: a GET or
            # HEAD that reached a form's handler must not, whatever body it carries.
            abort(405)
        if "idempotency_key" not in kwargs:
            kwargs["idempotency_key"] = request.form.get("idempotency_key") or None
    return client.call(method, path, g.console.token, **kwargs)


def get(path: str, **query):
    """A read the page cannot do without: a refusal becomes the page's answer."""
    answer = api("GET", path, query={k: v for k, v in query.items() if v not in (None, "")})
    if not answer.ok:
        abort(answer.status, description=answer.problem)
    return answer.data


def category_names() -> dict[str, str]:
    """The catalogue's categories, code → name in the page's language, as the API
    lists them: the SME's catalogue, the officer's proposals and the provider
    registry all name them so."""
    chinese = str(get_locale() or "zh").startswith("zh")
    return {category["code"]: category["name_zh" if chinese else "name_en"]
            for category in get("/catalog/categories")["items"]}


def download(path: str, *, filename: str, query=None, accept: str = "application/json") -> Response:
    """A file the API serves (an export, a payout file, a claim's document),
    streamed through as the browser reads it, never held whole; always an
    attachment, so nothing a provider uploaded is shown in the console's origin.
    A refusal is the console's error page, not a downloaded problem document."""
    answer = client.stream(path, g.console.token, query=query, accept=accept)
    if answer.status != 200:
        refusal = client.ApiAnswer.read(answer.status, answer.headers, b"".join(answer.chunks))
        abort(refusal.status, description=refusal.problem)
    disposition = answer.headers.get("Content-Disposition", "")
    headers = {"Content-Type": answer.headers.get("Content-Type", "application/octet-stream"),
               "Content-Disposition": disposition if disposition.startswith("attachment")
               else f"attachment; filename={filename}",
               "X-Content-Type-Options": "nosniff"}
    if "Content-Length" in answer.headers:
        headers["Content-Length"] = answer.headers["Content-Length"]
    return Response(stream_with_context(answer.chunks), status=200, headers=headers)


def safe_next(target: str | None) -> str | None:
    """Only a path of this console: never another site (an open redirect)."""
    if not target:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None  # a line break would end the Location header (werkzeug refuses it: a 500)
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console") or "\\" in target:
        return None
    return target


def new_form_key() -> str:
    return secrets.token_urlsafe(16)
