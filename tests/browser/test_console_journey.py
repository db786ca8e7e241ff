"""The newcomer's journey through the web console, in Chromium against a real
gunicorn server, without one API call of the test's own after the tokens
(README "The web console"): the SME applies, the officer approves, the SME
reserves with the subsidy worked out as it types, the provider claims with
documents, the SME confirms, the officer approves the claim, finance of two
regions settle, the month shows in the charts, and the auditor checks the
SME's receipt in the browser. Each role's main page is kept as a screenshot
(tests/browser/artifacts/). Every page fails the test on a request to another
host, a console error or a page error."""
from __future__ import annotations

import os
import re
import urllib.parse

import pytest

from helpers import pdf_bytes
from server import seeded_server  # noqa: F401  (the module's server)

from .conftest import ALLOWED_HOST, DEFAULT_TIMEOUT_MS

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
ENTERPRISE, PROVIDER, ITEM = "ent-ks-003", "prv-sh-001", "TS-01"


class Role:
    """One user in a browser window of their own (cookies apart), signed in by pasting a token."""

    def __init__(self, browser, base: str, token: str, name: str, locale: str = "en-US"):
        self.problems: list[str] = []
        # Reduced motion: the charts draw at once (no animation), so a screenshot shows the final bars.
        self.context = browser.new_context(base_url=base, locale=locale, viewport={"width": 1280, "height": 900},
                                           reduced_motion="reduce")
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.set_default_timeout(DEFAULT_TIMEOUT_MS)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"{name}: console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"{name}: page error: {e}"))
        self.name = name
        self.page.goto("/console/")
        self.page.get_by_label("Your access token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        assert "/console/sign-in" not in self.page.url, self.page.content()[:500]

    def _only_local(self, route):
        if urllib.parse.urlsplit(route.request.url).hostname == ALLOWED_HOST:
            route.continue_()
        else:
            self.problems.append(f"{self.name}: request to {route.request.url}")
            route.abort("blockedbyclient")

    def go(self, path: str):
        response = self.page.goto(path)
        assert response.status == 200, (path, response.status, self.page.content()[:800])
        return self.page

    def submit(self, button: str, **kw):
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button, **kw).first.click()
        problem = self.page.locator(".problem")
        assert problem.count() == 0, f"{self.name}: {button}: {problem.first.inner_text()}"
        return self.page

    def screenshot(self, name: str):
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def roles(browser, seeded_server):  # noqa: F811
    actors, base = seeded_server.actors, seeded_server.base
    made = {}

    def role(key, role_name, **binding):
        made[key] = Role(browser, base, actors.token(role_name, **binding), key)
        return made[key]

    yield role
    problems = [p for r in made.values() for p in r.problems]
    for r in made.values():
        r.context.close()
    assert not problems, problems


def test_the_programme_end_to_end_in_the_browser(roles):
    sme = roles("sme", "sme", enterprise_id=ENTERPRISE)
    page = sme.go("/console/apply")
    page.get_by_label("Amount (yuan)").fill("20,000")
    page.get_by_label("What the voucher is for").fill("Product testing of a new servo drive")
    sme.submit("Submit the application")
    assert "submitted" in sme.go("/console/vouchers").content()

    officer = roles("officer", "officer", region="KS")
    page = officer.go("/console/officer/applications")
    officer.screenshot("officer-applications")
    page.get_by_role("row").filter(has_text=ENTERPRISE).first.get_by_role("link").first.click()
    officer.submit("Approve")

    page = sme.go("/console/vouchers")
    sme.screenshot("sme-vouchers")
    page = sme.go(f"/console/catalogue/{ITEM}/reserve")
    page.get_by_label("Service provider").select_option(PROVIDER)
    subsidy = page.locator("#subsidy")
    before = subsidy.inner_text()
    page.get_by_label("Price of the service (yuan)").fill("8,000")
    page.wait_for_function("([el, t]) => el.textContent !== t", arg=[subsidy.element_handle(), before])
    worked_out = subsidy.inner_text()
    assert "¥" in worked_out, worked_out
    sme.submit("Reserve")

    provider = roles("provider", "provider", provider_id=PROVIDER)
    page = provider.go("/console/provider/reservations")
    provider.screenshot("provider-reservations")
    page.get_by_role("link", name=re.compile("claim", re.I)).first.click()
    for kind in ("contract", "invoice"):
        page.get_by_label("What it is").select_option(kind)
        page.get_by_label("File").set_input_files({"name": f"{kind}.pdf", "mimeType": "application/pdf",
                                                   "buffer": pdf_bytes()})
        provider.submit("Upload")
    page.get_by_label("Invoice number").fill("INV-BROWSER-0001")
    page.get_by_label("Final price of the service (yuan)").fill("8,000")
    amount = page.get_by_label("Amount claimed from the voucher (yuan)")
    if not amount.input_value():
        amount.fill(re.sub(r"[^\d.,]", "", worked_out.split("¥", 1)[1].split()[0]))
    provider.submit("Submit the claim")

    page = sme.go("/console/reservations")
    sme.submit("Confirm delivery")

    page = officer.go("/console/officer/claims")
    page.get_by_role("row").filter(has_text=PROVIDER).first.get_by_role("link").first.click()
    officer.submit("Approve")

    maker = roles("finance-ks", "finance", region="KS")
    page = maker.go("/console/finance/batches")
    maker.submit("Create the batch")
    batch_url = maker.page.url
    assert "/console/finance/batches/" in batch_url, batch_url
    checker = roles("finance-ks-2", "finance", region="KS")
    checker.go(batch_url)
    checker.submit("Approve for KS")
    shanghai = roles("finance-sh", "finance", region="SH")
    shanghai.go(batch_url)
    shanghai.submit("Approve for SH")
    maker.go(batch_url)
    maker.submit("Execute the batch")
    maker.screenshot("finance-batch")
    page = maker.go("/console/finance/charts")
    page.wait_for_selector("canvas")
    assert "KS" in page.content()
    maker.screenshot("finance-charts")

    auditor = roles("auditor", "auditor")
    page = auditor.go(f"/console/ledger?ref=enterprise:{ENTERPRISE}")
    auditor.screenshot("auditor-ledger")
    links = page.get_by_role("row").filter(has_text="redemption.").get_by_role("link")
    links.last.click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Verify on this computer").click()
    summary = page.locator(".verify-summary")
    summary.filter(has_text=re.compile("valid", re.I)).wait_for()
    assert page.locator(".verify-results .check-failed").count() == 0, page.locator(".verify-results").inner_text()
    assert page.locator(".verify-results .check-ok").count() >= 4
    auditor.screenshot("auditor-verified-receipt")
