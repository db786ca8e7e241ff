"""Browser tests in Debian's Chromium, driven by Playwright (sync API).

One browser per session. A module sets where its pages go by defining a
module-scoped `base_url` fixture (a static server, or a real one from
tests/server.py); its tests share one page, so a module loads what it needs
once. The `page` fixture fails the test that made any request to a host other
than 127.0.0.1 (the request is aborted: no test reaches the network) and any
console error or uncaught page error, the browser's word for a broken page.

Without /usr/bin/chromium or the playwright package the tests are skipped,
saying how to get them; with VOUCHERS_REQUIRE_BROWSER=1 (CI) they fail
instead, so a CI run cannot pass by skipping them. Playwright's own browser
download (`playwright install`) is never used.
"""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ALLOWED_HOST = "127.0.0.1"
DEFAULT_TIMEOUT_MS = 15_000
_GUARD = pytest.StashKey["PageGuard"]()


def _unavailable(why: str):
    if os.environ.get("VOUCHERS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why} (VOUCHERS_REQUIRE_BROWSER=1: browser tests must run)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: .venv/bin/pip install -e '.[dev]' (or pip install "
                     "playwright), and Debian's chromium: apt-get install chromium")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no {CHROMIUM}: apt-get install chromium (the tests use Debian's browser, never "
                     f"`playwright install`)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def base_url():
    """Where relative page.goto() URLs point: override it in a module (scope="module")."""
    return None


@dataclass
class PageGuard:
    """What went wrong in the page since the current test began."""
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.problems.append(problem)


@pytest.fixture(scope="module")
def _module_page(browser, base_url):
    guard = PageGuard()
    # A browser far from the programme's zone: a page that shows a time in the computer's
    # zone instead of China Standard Time (as the footer promises) is then visibly wrong.
    context = browser.new_context(base_url=base_url, timezone_id="America/New_York")

    def only_local(route):
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host == ALLOWED_HOST:
            route.continue_()
        else:
            guard.note(f"request to {route.request.url} (only {ALLOWED_HOST} may be asked)")
            route.abort("blockedbyclient")

    context.route("**/*", only_local)
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page.on("console", lambda message: message.type == "error" and guard.note(
        f"console error: {message.text} ({message.location.get('url', '')})"))
    page.on("pageerror", lambda error: guard.note(f"page error: {error}"))
    yield page, guard
    context.close()


@pytest.fixture
def page(request, _module_page):
    """The module's page; the test fails on an outside request, a console error or a page error."""
    instance, guard = _module_page
    guard.problems.clear()
    request.node.stash[_GUARD] = guard
    return instance


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    # Checked after the test body, in its call phase, so that it fails the
    # test itself (a teardown error would be reported as another outcome).
    result = yield
    guard = item.stash.get(_GUARD, None)
    if guard is not None and guard.problems:
        raise AssertionError("the page misbehaved:\n  " + "\n  ".join(guard.problems))
    return result
