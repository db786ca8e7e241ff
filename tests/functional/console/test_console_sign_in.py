"""Signing in to the web console (DESIGN §11): a pasted token becomes an
HttpOnly, SameSite=Strict session cookie; forms carry a form token; the
token never appears in a page, a URL or a log line; sign-out ends the
session for every copy of the cookie; the API's access model is the console's."""
from __future__ import annotations

import logging

import pytest
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.http import auth
from voucher_service.models import ConsoleSession
from helpers import Console


@pytest.fixture(scope="module")
def auditor_token(actors):
    return actors.token("auditor")


def test_a_page_without_a_session_goes_to_sign_in_and_back_after(app, auditor_token):
    console = Console(app)
    r = console.get("/console/checkpoint")
    assert r.status_code == 302 and r.headers["Location"].startswith("/console/sign-in?next=/console/checkpoint")
    r = console.sign_in(auditor_token, next_path="/console/checkpoint")
    assert r.status_code == 303 and r.headers["Location"] == "/console/checkpoint"
    assert "Checkpoint and witnesses" in console.page("/console/checkpoint")


def test_the_session_cookie_is_http_only_strict_and_holds_no_token(app, auditor_token, caplog):
    caplog.set_level(logging.INFO)
    console = Console(app)
    r = console.sign_in(auditor_token)
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("vouchers_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie, "plain HTTP on 127.0.0.1: a Secure cookie would never come back"
    assert auditor_token not in cookie
    for path in ("/console/ledger", "/console/checkpoint", "/console/verify", "/console/ledger/0"):
        assert auditor_token not in console.page(path)
    assert auditor_token not in caplog.text
    with app.app_context(), Session(get_engine()) as db:
        rows = db.exec(select(ConsoleSession)).all()
    assert rows and all(auditor_token.encode() not in bytes(row.sealed_token) for row in rows)


def test_the_cookie_is_secure_behind_tls(app, auditor_token):
    http = app.test_client()
    page = http.get("/console/sign-in", base_url="https://localhost").get_data(as_text=True)
    form = {"csrf_token": Console.CSRF.search(page).group(1), "token": auditor_token}
    r = http.post("/console/sign-in", data=form, base_url="https://localhost")
    assert r.status_code == 303
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("vouchers_console="))
    assert "Secure" in cookie


def test_a_wrong_token_or_a_missing_form_token_is_refused(app, auditor_token):
    console = Console(app)
    r = console.sign_in("vt_not-a-token")
    assert r.status_code == 401 and "unknown, expired or revoked" in r.get_data(as_text=True)
    r = console.http.post("/console/sign-in", data={"token": auditor_token})
    assert r.status_code == 400 and "vouchers_console=" not in " ".join(r.headers.getlist("Set-Cookie"))


def test_every_post_needs_the_sessions_form_token(app, auditor_token):
    console = Console(app, auditor_token)
    r = console.http.post("/console/sign-out", data={"csrf_token": "forged"})
    assert r.status_code == 400
    assert console.get("/console/ledger").status_code == 200, "a refused sign-out changes nothing"
    r = console.post("/console/sign-out", from_page="/console/ledger")
    assert r.status_code == 303


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(app, auditor_token):
    console = Console(app, auditor_token)
    cookie = console.http.get_cookie("vouchers_console", path="/console").value
    copy = app.test_client()
    copy.set_cookie("vouchers_console", cookie, path="/console")
    assert copy.get("/console/ledger").status_code == 200
    console.post("/console/sign-out", from_page="/console/ledger")
    assert console.get("/console/ledger").status_code == 302
    assert copy.get("/console/ledger").status_code == 302, "the copied cookie died with the session"


def test_a_revoked_token_ends_its_console_session(app, actors):
    token = actors.token("auditor")
    console = Console(app, token)
    assert console.get("/console/ledger").status_code == 200
    with app.app_context(), Session(get_engine()) as db:
        token_id = auth.authenticate(db, token).token_id
        assert auth.revoke_token(db, token_id)  # as `vouchers token revoke` does
        db.commit()
    assert console.get("/console/ledger").status_code == 302


def test_next_never_leaves_the_console(app, auditor_token):
    for target in ("https://evil.example/", "//evil.example/x", "/api/v1/ledger/keys", "/\\evil.example"):
        r = Console(app).sign_in(auditor_token, next_path=target)
        assert r.status_code == 303 and r.headers["Location"] == "/console/", target


def test_console_pages_have_a_strict_csp_and_are_not_cached(app, auditor_token):
    console = Console(app, auditor_token)
    r = console.get("/console/ledger")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"


def test_the_language_follows_the_browser_and_can_be_switched(app, auditor_token):
    console = Console(app, auditor_token, language="zh-CN,zh;q=0.9")
    assert '<html lang="zh-CN">' in console.page("/console/ledger")
    console.language = "en"
    assert '<html lang="en">' in console.page("/console/ledger")
    r = console.get("/console/language/zh?next=/console/checkpoint")
    assert r.status_code == 303 and r.headers["Location"] == "/console/checkpoint"
    assert '<html lang="zh-CN">' in console.page("/console/checkpoint"), "the switch outranks the browser"


def test_an_unknown_console_address_is_a_page_not_json(app, auditor_token):
    r = Console(app, auditor_token).get("/console/no/such/page")
    assert r.status_code == 404 and r.mimetype == "text/html"


def test_a_console_address_asked_the_wrong_way_is_a_page_with_allow_not_json(app, auditor_token):
    console = Console(app, auditor_token)
    for method, path in (("DELETE", "/console/ledger"), ("PUT", "/console/checkpoint"), ("PATCH", "/console/")):
        r = console.http.open(path, method=method)
        assert (r.status_code, r.mimetype) == (405, "text/html"), (method, path, r.get_data(as_text=True)[:300])
        assert r.headers["Allow"] == "GET" and 'role="alert"' in r.get_data(as_text=True)
    r = console.post("/console/ledger", {}, from_page="/console/ledger")  # a real form token: past the CSRF check
    assert (r.status_code, r.headers["Allow"]) == (405, "GET")
    r = console.http.get("/console/sign-out")
    assert (r.status_code, r.headers["Allow"]) == (405, "POST")
    assert console.http.delete("/console/no/such/page").status_code == 404
