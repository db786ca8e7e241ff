"""The SME's reservation form in Chromium against a real server: sme.js works
the subsidy out as the user types, to the fen the server's "Work it out"
button gives (form_input.subsidy_fen), for the voucher chosen; what it
cannot read it says so; and its parser reads yuan exactly as the server's
does, for typed text of every shape."""
from __future__ import annotations

import random

import pytest

from voucher_service.console.filters import yuan
from voucher_service.console.form_input import YuanError, parse_yuan, subsidy_fen
from helpers import ok
from server import seeded_server  # noqa: F401  (the module's server)

ENTERPRISE, ITEM, PROVIDER = "ent-ks-003", "TS-03", "prv-sh-001"  # TS-03: a 30% item, stricter than KS's 50%
ITEM_RATIO_BP, REGION_RATIO_BP = 3000, 5000
PAYS = "The voucher pays {subsidy} of the {fee} price; you pay the provider {rest}."


@pytest.fixture(scope="module")
def base_url(seeded_server):  # noqa: F811
    return seeded_server.base


@pytest.fixture(scope="module")
def vouchers(seeded_server):  # noqa: F811
    """A large voucher and one with 300 yuan available, the order the form lists them in."""
    actors = seeded_server.actors
    made = []
    for amount_fen in (5_000_000, 30_000):
        application = ok(actors.sme(ENTERPRISE).post("/applications", json={"amount_fen": amount_fen,
                                                                            "purpose": "browser"}), 201)
        made.append(ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"])
    return made


@pytest.fixture(scope="module")
def form(seeded_server, vouchers, _module_page):  # noqa: F811
    page, _guard = _module_page
    page.goto("/console/sign-in")
    page.get_by_label("Your access token").fill(seeded_server.actors.token("sme", enterprise_id=ENTERPRISE))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.goto(f"/console/catalogue/{ITEM}/reserve")
    return page


def expected(fee_fen: int, available_fen: int) -> str:
    paid = subsidy_fen(fee_fen, ITEM_RATIO_BP, REGION_RATIO_BP, available_fen)
    return PAYS.format(subsidy=yuan(paid), fee=yuan(fee_fen), rest=yuan(fee_fen - paid))


def shown(page) -> str:
    return page.locator("#subsidy").inner_text().strip()


def test_the_subsidy_follows_the_price_as_it_is_typed(page, form, vouchers):
    assert shown(page) == "Enter the price to see what the voucher pays."
    price = page.get_by_label("Price of the service (yuan)")
    price.press_sequentially("1234.5")
    assert shown(page) == expected(123_450, vouchers[0]["available_fen"])
    for typed, fee_fen in (("1,000.01", 100_001), ("0.03", 3), ("99999.99", 9_999_999), ("¥ 20", 2000)):
        price.fill(typed)
        assert shown(page) == expected(fee_fen, vouchers[0]["available_fen"]), typed


def test_the_voucher_chosen_caps_the_subsidy_at_what_it_has(page, form, vouchers):
    price = page.get_by_label("Price of the service (yuan)")
    price.fill("5000")
    assert shown(page) == expected(500_000, vouchers[0]["available_fen"])
    page.get_by_label("Voucher").select_option(vouchers[1]["id"])
    assert shown(page) == expected(500_000, 30_000)
    assert "¥300.00" in shown(page), "the small voucher pays what it has, not 30% of the price"
    page.get_by_label("Voucher").select_option(vouchers[0]["id"])


def test_what_cannot_be_read_is_said_and_an_empty_price_prompts(page, form):
    price = page.get_by_label("Price of the service (yuan)")
    for typed in ("12.345", "-1", "abc", "1e3"):
        price.fill(typed)
        assert shown(page) == "Enter the price in yuan, with at most two decimals.", typed
    price.fill("")
    assert shown(page) == "Enter the price to see what the voucher pays."


def test_the_server_works_out_the_figure_the_script_showed(page, form, vouchers):
    page.get_by_label("Service provider").select_option(PROVIDER)
    page.get_by_label("Price of the service (yuan)").fill("777.77")
    live = shown(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Work it out").click()
    assert shown(page) == live == expected(77_777, vouchers[0]["available_fen"])


def _typed_texts(count: int) -> list[str]:
    rng = random.Random(16)
    alphabet = "0123456789.,-¥ e"
    texts = ["", "0", "0.00", "00.10", "12.", ".5", "1,2,3", "¥¥5", "12345678901", "9999999999.99", "١٢"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(count)]
    texts += [f"{rng.randint(0, 10**7)}.{rng.randint(0, 999)}" for _ in range(count)]
    return texts


def test_the_script_reads_yuan_exactly_as_the_server_does(page, form, app_context):
    texts = _typed_texts(150)
    in_browser = page.evaluate("""async (texts) => {
        const sme = await import("/console/static/console/sme.js");
        return texts.map((t) => { const fen = sme.parseYuan(t); return fen === null ? null : fen.toString(); });
    }""", texts)
    for text, fen in zip(texts, in_browser):
        try:
            on_server = str(parse_yuan(text))
        except YuanError:
            on_server = None
        assert fen == on_server, text


@pytest.fixture
def app_context(seeded_server):  # noqa: F811
    """parse_yuan's refusals are translated: they need a request's locale."""
    with seeded_server.app.test_request_context():
        yield


@pytest.mark.parametrize("path", [f"/console/catalogue/{ITEM}/reserve", "/console/vouchers", "/console/catalogue",
                                  "/console/reservations", "/console/apply"])
def test_the_smes_pages_fit_a_phone(page, form, path):
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 375 px phone"
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


def test_the_providers_pages_fit_a_phone(browser, seeded_server, vouchers):  # noqa: F811
    reservation = ok(seeded_server.actors.sme(ENTERPRISE).post("/redemptions", json={
        "voucher_id": vouchers[0]["id"], "provider_id": PROVIDER, "catalog_code": ITEM, "service_fee_fen": 100_000,
        "amount_fen": 30_000}), 201)
    context = browser.new_context(base_url=seeded_server.base, viewport={"width": 375, "height": 800})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(seeded_server.base)
                  else route.abort("blockedbyclient"))
    try:
        page = context.new_page()
        page.goto("/console/sign-in")
        page.get_by_label("Your access token").fill(seeded_server.actors.token("provider", provider_id=PROVIDER))
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        for path in ("/console/provider/reservations", "/console/provider/account",
                     f"/console/provider/reservations/{reservation['id']}/claim"):
            assert page.goto(path).status == 200, path
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} is {overflow} px wider than a 375 px phone"
    finally:
        context.close()
