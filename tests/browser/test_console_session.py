"""Signing in and out of the console in Chromium against gunicorn, a forged
form refused, and one SME's voucher page closed to another SME."""
from __future__ import annotations

import pytest

from helpers import ok
from server import seeded_server  # noqa: F401 (the module's server)

from .conftest import _GUARD as GUARD


@pytest.fixture(scope="module")
def base_url(seeded_server):  # noqa: F811
    return seeded_server.base


def sign_in(page, token: str, next_path: str = ""):
    page.context.clear_cookies()  # the module's one page: each test is a new visitor
    page.goto("/console/sign-in" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Your access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def expected_refusal(request, path: str) -> None:
    """The browser reports a refused request as a console error: here it is the answer the test expects."""
    guard = request.node.stash[GUARD]
    guard.problems[:] = [p for p in guard.problems if path not in p]


def voucher_of(actors, enterprise_id: str) -> str:
    region = enterprise_id.split("-")[1].upper()
    application = ok(actors.sme(enterprise_id).post("/applications", json={"amount_fen": 500000,
                                                                           "purpose": "browser test"}), 201)
    return ok(actors.officer(region).post(f"/applications/{application['id']}/approve", json={}))["voucher"]["id"]


def test_sign_in_then_sign_out_and_the_pages_are_closed_again(page, seeded_server):  # noqa: F811
    token = seeded_server.actors.token("auditor")
    sign_in(page, token)
    assert page.url.endswith("/console/ledger")
    assert token not in page.content()
    cookie = next(c for c in page.context.cookies() if c["name"] == "vouchers_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert "/console/sign-in" in page.url
    page.goto("/console/ledger")
    assert "/console/sign-in" in page.url, "signed out: the ledger page asks to sign in again"


def test_a_form_with_a_forged_token_is_refused_and_changes_nothing(page, seeded_server, request):  # noqa: F811
    sign_in(page, seeded_server.actors.token("auditor"))
    page.locator("form[action$='/console/sign-out'] input[name=csrf_token]").evaluate("el => el.value = 'forged'")
    with page.expect_response(lambda r: r.url.endswith("/console/sign-out")) as answer:
        page.get_by_role("button", name="Sign out").click()
    assert answer.value.status == 400
    assert "did not come from this console" in page.content()
    page.goto("/console/ledger")
    assert page.url.endswith("/console/ledger"), "the refused sign-out left the session as it was"
    expected_refusal(request, "/console/sign-out")


def test_an_sme_cannot_open_another_smes_voucher_page(page, seeded_server, request):  # noqa: F811
    actors = seeded_server.actors
    theirs = voucher_of(actors, "ent-sh-001")
    sign_in(page, actors.token("sme", enterprise_id="ent-ks-003"), next_path="/console/vouchers")
    response = page.goto(f"/console/vouchers/{theirs}")
    assert response.status == 404
    shown = page.locator("main").inner_text()
    assert "ent-sh-001" not in shown and "5,000.00" not in shown, "nothing of the voucher is shown"
    expected_refusal(request, f"/console/vouchers/{theirs}")
