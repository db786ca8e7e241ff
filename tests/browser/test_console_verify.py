"""The console's verification panels (verify_panel.html, static/console/verify-page.js)
in Chromium, against a real gunicorn server: the auditor and an enterprise
check a receipt on the entry page, the auditor the latest checkpoint, and a
pasted or opened receipt on /console/verify; tampered receipts fail at the
check they should; the keys are pinned on first use and a changed keys
document fails `pinned_keys` until the user trusts it; keys the user lists
decide instead; another enterprise's entry is a 404 with no receipt; and
without JavaScript the button stays hidden and the page says what to do.

Screenshots of the checkpoint page and of a verified entry page (1280×900,
and one at 375 px) go to tests/browser/artifacts/ (not committed).
"""
from __future__ import annotations

import base64
import copy
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from voucher_service.ledger import SigningKey
from voucher_service.ledger.cosignature import Cosigner
from voucher_service.ledger.note import verifier_key
from helpers import ok, redeem, wait_for_checkpoint
from server import seeded_server  # noqa: F401 (the module's server)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
OWNER, STRANGER, PROVIDER = "ent-ks-001", "ent-sh-001", "prv-sh-001"
AMOUNT_FEN = 12_345
KEYS_PATH, WITNESSES_PATH = "/api/v1/ledger/keys", "/api/v1/ledger/witnesses"
DONE = re.compile(r"verify-(valid|invalid)")


@pytest.fixture(scope="module")
def base_url(seeded_server):
    return seeded_server.base


@pytest.fixture(scope="module")
def story(seeded_server):
    """An enterprise's redemption, redeemed and under a published checkpoint: its
    `redemption.redeemed` entry's seq and receipt, the real keys document, and tokens."""
    actors = seeded_server.actors
    rid = redeem(actors, OWNER, PROVIDER, AMOUNT_FEN)
    auditor = actors.auditor()
    [seq] = [e["seq"] for e in ok(auditor.get(f"/ledger/entries?ref=redemption:{rid}"))["items"]
             if e["kind"] == "redemption.redeemed"]
    wait_for_checkpoint(seeded_server.client, seq + 1)
    return {"seq": seq, "rid": rid, "receipt": ok(auditor.get(f"/ledger/receipts/{seq}")),
            "keys": ok(auditor.get("/ledger/keys")), "auditor": actors.token("auditor"),
            "owner": actors.token("sme", enterprise_id=OWNER), "stranger": actors.token("sme", enterprise_id=STRANGER)}


def sign_in(page, token: str, next_path: str = "") -> None:
    """Paste the token into the console's sign-in form; then the page `next_path` (default: the role's home)."""
    page.context.clear_cookies()
    page.goto(f"/console/sign-in?next={next_path}" if next_path else "/console/sign-in")
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "/console/sign-in" not in page.url, page.content()[:2000]


def forget_pins(page) -> None:
    page.evaluate("localStorage.clear()")


def verify(page) -> dict:
    """Click the panel's button and wait for its verdict: {summary, valid, checks: {name: (ok, detail)}}."""
    page.click(".verify-run")
    summary = page.locator(".verify-summary")
    expect(summary).to_have_class(DONE)
    expect(page.locator(".verify-run")).to_be_enabled()
    checks = page.eval_on_selector_all(".verify-results li", """items => items.map(li => [li.dataset.check,
        li.classList.contains('check-ok'), li.querySelector('.verify-detail').textContent,
        li.querySelector('.verify-name').textContent])""")
    return {"summary": summary.inner_text(), "valid": "verify-valid" in summary.get_attribute("class"),
            "checks": {name: (passed, detail) for name, passed, detail, _label in checks},
            "labels": [label for *_rest, label in checks]}


def failing(result: dict) -> set[str]:
    return {name for name, (passed, _) in result["checks"].items() if not passed}


def with_other_log_key(keys: dict) -> dict:
    """The keys document, still valid, with the log key replaced by a fresh one."""
    keys = copy.deepcopy(keys)
    record = next(k for k in keys["keys"] if k["purpose"] == "log")
    public = SigningKey.generate("other").public_key_raw
    record["public_key"] = base64.b64encode(public).decode()
    record["note_key"] = verifier_key(record["note_name"], public)
    return keys


def log_vkey(keys: dict) -> str:
    return next(k["note_key"] for k in keys["keys"] if k["purpose"] == "log")


def fulfil_once(page, path: str, document: dict, times: int = 1) -> list:
    """Answer the next `times` GETs of `path` with `document`; the list of URLs so answered."""
    answered = []

    def answer(route):
        answered.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(document))
    page.route(f"**{path}", answer, times=times)
    return answered


def test_the_auditor_verifies_an_entry_on_this_computer_asking_only_for_the_public_keys(page, story):
    sign_in(page, story["auditor"])
    forget_pins(page)
    page.goto(f"/console/ledger/{story['seq']}")
    asked = []
    page.on("request", lambda request: asked.append(request))
    result = verify(page)
    assert result["valid"], result
    assert result["summary"] == "Valid: checked on this computer."
    assert failing(result) == set()
    assert {"pinned_keys", "keys", "receipt_format", "entry_signature", "leaf_hash", "checkpoint_format",
            "log_signature", "inclusion", "tlog_proof"} <= set(result["checks"])
    assert "first check on this computer" in result["checks"]["pinned_keys"][1]
    assert f"entry {story['seq']} " in result["checks"]["entry_signature"][1]
    assert "The entry's signature" in result["labels"]  # the translated name, not the bare check name
    # Only the two public documents were fetched, without the console's cookie or a token, and the result
    # went nowhere (the page's own static files, such as the favicon, may arrive late).
    base = page.url.split("/console")[0]
    fetched = sorted((r.method, r.url.removeprefix(base)) for r in asked
                     if not (r.method == "GET" and r.url.startswith(f"{base}/console/static/")))
    assert fetched == [("GET", KEYS_PATH), ("GET", WITNESSES_PATH)], fetched
    for request in (r for r in asked if "/api/" in r.url):
        headers = request.all_headers()
        assert "cookie" not in headers and "authorization" not in headers, headers

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "entry-verified-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.locator("section.verify").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "entry-verified-375.png"), full_page=True)
    panel_right = page.eval_on_selector("section.verify", "s => s.getBoundingClientRect().right")
    assert panel_right <= 375, f"the panel is wider than a phone: {panel_right}px"
    page.set_viewport_size({"width": 1280, "height": 900})

    page.reload()  # a later check compares with what the first one pinned
    again = verify(page)
    assert again["valid"], again
    # Pinned a moment ago, and shown as every time in the console is: China Standard Time,
    # though this browser runs in the machine's zone.
    pinned_at = re.search(r"remembered on this computer on (\d{4}-\d\d-\d\d \d\d:\d\d)",
                          again["checks"]["pinned_keys"][1])
    assert pinned_at, again["checks"]["pinned_keys"]
    shown = datetime.strptime(pinned_at[1], "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs(datetime.now(timezone.utc) - shown) < timedelta(minutes=5), (pinned_at[1], "not Asia/Shanghai")


def test_a_pasted_receipt_with_its_amount_edited_or_a_proof_hash_flipped_is_not_valid(page, story):
    page.goto("/console/verify")
    receipt = story["receipt"]
    entry = json.loads(receipt["entry"])
    entry["postings"][0]["amount"] += 100
    edited = dict(receipt, entry=json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False))
    assert f'"amount":{AMOUNT_FEN + 100}' in edited["entry"]
    page.fill("#receipt-text", json.dumps(edited))
    result = verify(page)
    assert not result["valid"] and result["summary"].startswith("NOT valid: "), result
    assert {"entry_signature", "leaf_hash"} <= failing(result), result
    assert "The entry's signature" in result["summary"]
    assert result["checks"]["log_signature"][0], "the checkpoint itself is genuine"

    proof = list(receipt["inclusion_proof"])
    assert proof, "a tree of more than one entry"
    raw = bytearray(base64.b64decode(proof[0]))
    raw[0] ^= 0x01
    proof[0] = base64.b64encode(bytes(raw)).decode()
    page.fill("#receipt-text", json.dumps(dict(receipt, inclusion_proof=proof)))
    result = verify(page)
    assert not result["valid"], result
    assert "inclusion" in failing(result) and "does not lead" in result["checks"]["inclusion"][1], result
    assert result["checks"]["entry_signature"][0] and result["checks"]["leaf_hash"][0]

    page.fill("#receipt-text", "{not a receipt")
    result = verify(page)
    assert not result["valid"] and "receipt_format" in failing(result), result

    page.fill("#receipt-text", "")
    page.click(".verify-run")
    expect(page.locator(".verify-summary")).to_have_text("Paste a receipt or choose its file first.")
    expect(page.locator(".verify-results li")).to_have_count(0)


def test_a_chosen_receipt_file_is_read_into_the_page_and_verifies(page, story):
    page.goto("/console/verify")
    body = json.dumps(story["receipt"], indent=2).encode()
    page.set_input_files("#receipt-file", files=[{"name": f"receipt-{story['seq']}.json",
                                                  "mimeType": "application/json", "buffer": body}])
    result = verify(page)
    assert result["valid"], result
    assert json.loads(page.input_value("#receipt-text")) == story["receipt"]


def test_the_pinned_keys_catch_a_changed_log_key_until_the_user_trusts_the_new_one(page, story):
    page.goto(f"/console/ledger/{story['seq']}")
    assert verify(page)["valid"], "pinned by the first test, the real keys match"
    other = with_other_log_key(story["keys"])
    answered = fulfil_once(page, KEYS_PATH, other, times=2)
    result = verify(page)
    assert len(answered) == 1
    assert not result["valid"] and "pinned_keys" in failing(result), result
    detail = result["checks"]["pinned_keys"][1]
    assert "changed since you first checked on this computer" in detail
    assert log_vkey(other) in detail and log_vkey(story["keys"]) in detail, detail
    trust = page.locator(".verify-trust-new")
    expect(trust).to_be_visible()

    trust.click()  # pins the keys it was shown, then checks again (the second fulfilled answer)
    expect(page.locator(".verify-summary")).to_have_class(DONE)
    result = verify_shown(page)
    assert len(answered) == 2
    assert result["checks"]["pinned_keys"][0], result
    assert not result["valid"] and "log_signature" in failing(result), "the new log key did not sign"
    expect(trust).to_be_hidden()

    result = verify(page)  # the real keys now differ from the pin: trusting them again restores it all
    assert "pinned_keys" in failing(result)
    page.click(".verify-trust-new")
    expect(page.locator(".verify-summary")).to_have_class(DONE)
    assert verify_shown(page)["valid"]


def test_a_witness_the_server_newly_lists_is_a_change_of_keys_too(page, story):
    page.goto(f"/console/ledger/{story['seq']}")
    witness = Cosigner("witness.example/new", SigningKey.generate("w").public_key_raw)
    fulfil_once(page, WITNESSES_PATH, {"published_size": None, "witnesses": [
        {"name": "new", "vkey": witness.vkey, "cosigned_size": None, "cosigned_at": None, "attempted_at": None,
         "ok": False}]})
    result = verify(page)
    assert "pinned_keys" in failing(result) and witness.vkey in result["checks"]["pinned_keys"][1], result
    assert verify(page)["valid"], "the real witnesses are the pinned ones again"


def test_keys_the_user_lists_decide_instead_of_the_pin(page, story):
    page.goto(f"/console/ledger/{story['seq']}")
    own = page.locator("details.verify-own-keys")
    expect(own).to_be_visible()
    own.locator("summary").click()
    stranger = verifier_key("vouchers.example/ledger", SigningKey.generate("x").public_key_raw)
    page.fill("#trusted-vkeys", stranger)
    result = verify(page)
    assert not result["valid"] and "pinned_keys" in failing(result), result
    assert "Not among the keys you listed" in result["checks"]["pinned_keys"][1]
    assert log_vkey(story["keys"]) in result["checks"]["pinned_keys"][1]

    legacy = copy.deepcopy(story["keys"])  # a keys document with its log key gone
    legacy["keys"] = [k for k in legacy["keys"] if k["purpose"] != "log"]
    page.fill("#trusted-vkeys", log_vkey(story["keys"]))
    fulfil_once(page, KEYS_PATH, legacy)
    result = verify(page)
    assert "pinned_keys" in failing(result), result
    assert result["checks"]["pinned_keys"][1].startswith("You listed a log key, but the server publishes none")

    page.fill("#trusted-vkeys", "not a key")
    result = verify(page)
    assert "Line 1 of your trusted keys is not a C2SP vkey." == result["checks"]["pinned_keys"][1]

    # A changed keys document does not matter when the user's own keys match it.
    page.fill("#trusted-vkeys", f"# from the programme's printed notice\n{log_vkey(story['keys'])}\n")
    fulfil_once(page, WITNESSES_PATH, {"published_size": None, "witnesses": []})
    result = verify(page)
    assert result["valid"] and "among the keys you listed" in result["checks"]["pinned_keys"][1], result
    page.reload()
    assert log_vkey(story["keys"]) in page.input_value("#trusted-vkeys"), "kept on this computer"
    expect(own).to_have_attribute("open", "")  # and shown, as they decide
    page.fill("#trusted-vkeys", "")
    assert verify(page)["valid"]
    page.reload()
    assert page.input_value("#trusted-vkeys") == ""


def test_the_auditor_verifies_the_latest_checkpoint(page, story):
    page.goto("/console/checkpoint")
    result = verify(page)
    assert result["valid"], result
    assert {"pinned_keys", "keys", "checkpoint_format", "log_signature"} <= set(result["checks"])
    assert "receipt_format" not in result["checks"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "checkpoint-verified-1280.png"), full_page=True)

    page.click("nav.lang a[hreflang=zh-CN]")  # the Chinese page: its labels, its dates
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    result = verify(page)
    assert result["valid"], result
    page.click("nav.lang a[hreflang=en]")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_the_enterprise_verifies_its_own_redemption_and_cannot_open_another_enterprises(page, story):
    entry_page = f"/console/ledger/{story['seq']}"
    sign_in(page, story["owner"], next_path=entry_page)
    assert page.url.endswith(entry_page)
    result = verify(page)
    assert result["valid"], result

    # Fetched rather than opened, as the browser reports a page that answers 404 as a console error.
    sign_in(page, story["stranger"], next_path="/console/verify")
    reply = page.request.get(entry_page)
    assert reply.status == 404
    html = reply.text()
    assert 'id="verify-data"' not in html and "verify-run" not in html
    assert story["rid"] not in html and story["receipt"]["leaf_hash"] not in html
    assert page.request.get(f"/console/receipts/{story['seq']}.json").status == 404


def test_without_javascript_the_button_stays_hidden_and_the_page_says_what_to_do(browser, base_url, story):
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base_url)
                  else route.abort("blockedbyclient"))
    try:
        page = context.new_page()
        sign_in(page, story["auditor"])  # the sign-in form is a plain form
        page.goto(f"/console/ledger/{story['seq']}")
        expect(page.locator(".verify-run")).to_be_hidden()
        expect(page.locator("details.verify-own-keys")).to_be_hidden()
        # Playwright's text selectors skip <noscript>, where a browser without JavaScript shows the text.
        explained = page.locator("section.verify noscript p.help")
        expect(explained).to_be_visible()
        expect(explained).to_contain_text("Checking in the browser needs JavaScript.")
        expect(page.get_by_role("link", name="Download the receipt")).to_be_visible()
        page.goto("/console/verify")
        expect(page.locator(".verify-run")).to_be_hidden()
        expect(page.locator("section.verify noscript p.help")).to_contain_text(
            "Without it, run `vouchers verify-receipt` on the file.")
    finally:
        context.close()


def verify_shown(page) -> dict:
    """The verdict already on the page (after a click that was not on the verify button)."""
    expect(page.locator(".verify-run")).to_be_enabled()
    summary = page.locator(".verify-summary")
    checks = page.eval_on_selector_all(".verify-results li", """items => items.map(li => [li.dataset.check,
        li.classList.contains('check-ok'), li.querySelector('.verify-detail').textContent])""")
    return {"summary": summary.inner_text(), "valid": "verify-valid" in summary.get_attribute("class"),
            "checks": {name: (passed, detail) for name, passed, detail in checks}}
