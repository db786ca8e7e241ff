"""Signing in and out, the language, and each role's way in."""
from __future__ import annotations

from flask import current_app, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from voucher_service.console import sessions
from voucher_service.console.web import (
    HOME,
    LANGUAGE_COOKIE,
    LANGUAGES,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    bp,
    db_session,
    new_form_key,
    safe_next,
    set_cookie,
    signed_in,
)

ONE_YEAR_S = 365 * 24 * 3600


@bp.get("/")
@signed_in
def home():
    return redirect(url_for(HOME[g.console.principal.role]))


@bp.get("/sign-in")
def sign_in_form():
    if g.console is not None:
        return redirect(safe_next(request.args.get("next")) or url_for("console.home"))
    return _sign_in_page()


def _sign_in_page(message: str | None = None, status: int = 200):
    form_token = new_form_key()
    page = render_template("console/sign_in.html", form_token=form_token, message=message,
                           next=safe_next(request.values.get("next")) or "")
    return set_cookie(make_response(page, status), SIGN_IN_COOKIE, form_token)


@bp.post("/sign-in")
def sign_in():
    # Before a session there is no session's form token: the sign-in form's own
    # is a cookie (SameSite=Strict, so another site's form cannot send it) that
    # the form must repeat.
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    if not cookie or not sessions.csrf_matches(cookie, request.form.get("csrf_token")):
        return _sign_in_page(_("This form has expired. Please paste your token again."), 400)
    token = (request.form.get("token") or "").strip()
    with db_session() as db:
        opened = sessions.open_session(db, token) if token else None
    if opened is None:
        return _sign_in_page(_("This token is unknown, expired or revoked."), 401)
    session_id, _signed_in = opened
    response = redirect(safe_next(request.form.get("next")) or url_for("console.home"), 303)
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return set_cookie(response, SESSION_COOKIE, session_id, max_age_s=int(sessions.SESSION_TTL.total_seconds()))


@bp.post("/sign-out")
def sign_out():
    with db_session() as db:
        sessions.end_session(db, request.cookies.get(SESSION_COOKIE))
    response = redirect(url_for("console.sign_in_form"), 303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@bp.get("/language/<code>")
def language(code: str):
    response = redirect(safe_next(request.args.get("next")) or url_for("console.home"), 303)
    if code in LANGUAGES:
        set_cookie(response, LANGUAGE_COOKIE, code, max_age_s=ONE_YEAR_S)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge):
    """An upload over the limit (http/bodies.py): said on a page, in words; the
    app's own handler, registered for the code, would answer in JSON."""
    limit_bytes = current_app.config["VOUCHERS_MAX_DOCUMENT_BYTES"]
    size = f"{limit_bytes / 2**20:g} MiB" if limit_bytes >= 2**20 else f"{limit_bytes // 1024} KiB"
    return render_template("console/refused.html", status=413, problem={
        "title": _("The file is too large"),
        "detail": _("A document may be at most %(size)s. Upload a smaller scan.", size=size)}), 413


@bp.errorhandler(HTTPException)
def _refused(error: HTTPException):
    """A call the API refused, or a page that is not there: said in words, in the console's frame."""
    problem = error.description if isinstance(error.description, dict) else {"detail": error.description}
    if error.code == 401:  # the token stopped working mid-session (revoked, expired)
        return redirect(url_for("console.sign_in_form", next=request.full_path.rstrip("?")))
    return render_template("console/refused.html", status=error.code, problem=problem), error.code or 500


# Every method, so that a console address asked with a method it does not take
# is answered in the console's frame too (a routing error is the app's, whose
# handler is the API's problem+json).
OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


@bp.route("/", methods=OTHER_METHODS, defaults={"_unknown": ""})
@bp.route("/<path:_unknown>", methods=["GET", *OTHER_METHODS])
def not_found(_unknown: str):
    """A console address that is not a page, or not for this method: the
    console's own 404 or 405 (with Allow), not the API's JSON."""
    return refuse_address()


def refuse_address():
    """Also for a method no console route names (TRACE, PROPFIND, …), which routing
    refuses before any console code runs (console/__init__.py)."""
    allowed = _methods_taken(request.path)
    if allowed:
        return render_template("console/refused.html", status=405, problem={
            "detail": _("This page cannot be used that way. Open it from the console's menu.")}), 405, {
            "Allow": ", ".join(allowed)}
    return render_template("console/refused.html", status=404,
                           problem={"detail": _("There is no such page.")}), 404


def _methods_taken(path: str) -> list[str]:
    """The methods a page of the console other than this catch-all answers at `path`."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            endpoint, _values = adapter.match(path, method=method)
        except HTTPException:
            continue
        if endpoint != "console.not_found":
            allowed.append(method)
    return allowed
