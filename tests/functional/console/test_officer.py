"""The programme officer's console pages (DESIGN §11): the application and claim
queues, catalogue proposals and providers, driven through their forms as a
browser would, each result read back through the API; refusals are the API's,
shown on the page, and change nothing."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from helpers import Console, add_evidence, make_uscc, nothing_changes, ok, unique_invoice

from voucher_service.clock import local_date, utc_now

SH_ENTERPRISE, SH_PROVIDER, KS_PROVIDER = "ent-sh-001", "prv-sh-001", "prv-ks-002"
NUMBER = "6222021001098765432"


@pytest.fixture(scope="module")
def sh(app, actors):
    return Console(app, actors.token("officer", region="SH"))


@pytest.fixture(scope="module")
def ks(app, actors):
    return Console(app, actors.token("officer", region="KS"))


def submitted(actors, amount_fen=200_000, enterprise_id=SH_ENTERPRISE) -> str:
    sme = actors.sme(enterprise_id)
    return ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "console review"}), 201)["id"]


def confirmed_claim(actors, amount_fen=50_000, enterprise_id=SH_ENTERPRISE) -> tuple[str, list[dict]]:
    """A voucher of the enterprise's region (SH by default) spent at an SH provider, claimed with
    evidence and confirmed: awaiting the issuing region's officer."""
    sme, provider = actors.sme(enterprise_id), actors.provider(SH_PROVIDER)
    application_id = submitted(actors, amount_fen, enterprise_id)
    issuer = enterprise_id.split("-")[1].upper()
    voucher = ok(actors.officer(issuer).post(f"/applications/{application_id}/approve", json={}))["voucher"]
    rid = ok(sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": SH_PROVIDER,
                                            "catalog_code": "TS-01", "service_fee_fen": 4 * amount_fen,
                                            "amount_fen": amount_fen}), 201)["id"]
    documents = add_evidence(provider, rid)
    ok(provider.post(f"/redemptions/{rid}/claim", json={"invoice_no": unique_invoice(), "amount_fen": amount_fen,
                                                        "service_fee_fen": 4 * amount_fen}))
    ok(sme.post(f"/redemptions/{rid}/confirm"))
    return rid, documents


def problem_shown(html: str) -> str:
    found = re.search(r'<div class="problem" role="alert">(.*?)</div>', html, re.S)
    assert found, "no problem on the page"
    return found.group(1)


class FormFields(HTMLParser):
    """The ids on a page, the `for` of its labels, and the ids of its visible form fields."""

    def __init__(self):
        super().__init__()
        self.ids, self.labelled, self.fields = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "label" and attrs.get("for"):
            self.labelled.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.fields.append(attrs.get("id"))


def assert_labelled(html: str):
    """Every field has a label that names it, and no id is used twice (labels would point astray)."""
    parsed = FormFields()
    parsed.feed(html)
    assert len(parsed.ids) == len(set(parsed.ids)), sorted(i for i in parsed.ids if parsed.ids.count(i) > 1)
    unlabelled = [field for field in parsed.fields if field is None or field not in parsed.labelled]
    assert not unlabelled, unlabelled


# --- applications -----------------------------------------------------------------------

def test_every_officer_page_renders_with_its_navigation(sh):
    for path, heading in (("/console/officer/applications", "Applications to review"),
                          ("/console/officer/claims", "Claims to review"),
                          ("/console/officer/proposals", "Catalogue proposals"),
                          ("/console/officer/providers", "Service providers")):
        html = sh.page(path)
        assert f"<h1>{heading}</h1>" in html, path
        assert f'href="{path}" aria-current="page"' in html, path
        assert_labelled(html)


def test_the_pages_with_forms_label_every_field_in_both_languages(app, actors, sh):
    rid, _documents = confirmed_claim(actors)
    pages = [f"/console/officer/applications/{submitted(actors)}", f"/console/officer/claims/{rid}",
             f"/console/officer/providers/{SH_PROVIDER}", f"/console/officer/providers/{KS_PROVIDER}"]
    zh = Console(app, actors.token("officer", region="SH"), language="zh-CN")
    for path in pages:
        assert_labelled(sh.page(path))
    for path in pages + ["/console/officer/proposals", "/console/officer/providers"]:
        html = zh.page(path)
        assert '<html lang="zh-CN">' in html
        assert_labelled(html)
    assert "委托研发与技术开发" in zh.page("/console/officer/proposals"), "items named in the reader's language"


def test_an_application_is_approved_from_the_queue(app, actors, sh):
    application_id = submitted(actors, 300_000)
    queue = sh.page("/console/officer/applications")
    assert application_id in queue and "¥3,000.00" in queue
    page = f"/console/officer/applications/{application_id}"
    assert "Approve and issue the voucher" in sh.page(page)
    r = sh.post(f"{page}/approve", {"amount_yuan": "2,500.50", "valid_until": ""}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"] == f"{page}?done=approved"
    decided = ok(actors.officer("SH").get(f"/applications/{application_id}"))
    assert decided["status"] == "approved" and decided["approved_fen"] == 250_050
    voucher = ok(actors.officer("SH").get(f"/vouchers/{decided['voucher_id']}"))
    assert voucher["face_fen"] == 250_050
    html = sh.page(f"{page}?done=approved")
    assert "The application is approved and its voucher is issued." in html and "Approve and issue" not in html
    assert application_id not in sh.page("/console/officer/applications"), "the queue holds what awaits a decision"
    assert application_id in sh.page("/console/officer/applications?status=approved")


def test_an_application_is_rejected_with_its_reason(actors, sh):
    application_id = submitted(actors)
    page = f"/console/officer/applications/{application_id}"
    r = sh.post(f"{page}/reject", {"reason": "The purpose is not an eligible service."}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"] == f"{page}?done=rejected"
    decided = ok(actors.officer("SH").get(f"/applications/{application_id}"))
    assert decided["status"] == "rejected" and decided["reason"] == "The purpose is not an eligible service."


def test_a_validity_beyond_the_policy_is_refused_and_shown_with_what_was_typed(app, actors, sh):
    application_id = submitted(actors)
    page = f"/console/officer/applications/{application_id}"
    too_late = (local_date(utc_now()) + timedelta(days=400)).isoformat()
    with nothing_changes(app):
        r = sh.post(f"{page}/approve", {"amount_yuan": "1000", "valid_until": too_late}, from_page=page)
    assert r.status_code == 409
    html = r.get_data(as_text=True)
    assert "validity" in problem_shown(html).lower()
    assert f'value="{too_late}"' in html and 'value="1000"' in html
    assert ok(actors.officer("SH").get(f"/applications/{application_id}"))["status"] == "submitted"


@pytest.mark.parametrize("typed, message", [("12.345", "at most two decimals"), ("1e3", "at most two decimals"),
                                            ("1,00", "at most two decimals"), ("0.00", "more than zero"),
                                            ("-5", "more than zero")])
def test_an_amount_in_yuan_is_read_exactly_or_refused_beside_its_field(app, actors, sh, typed, message):
    application_id = submitted(actors)
    page = f"/console/officer/applications/{application_id}"
    with nothing_changes(app):
        r = sh.post(f"{page}/approve", {"amount_yuan": typed}, from_page=page)
    assert r.status_code == 422
    assert re.search(rf'id="f-amount_yuan".*?<p class="error">[^<]*{message}', r.get_data(as_text=True), re.S)


def test_a_ks_officer_cannot_see_or_approve_an_sh_application(app, actors, ks):
    application_id = submitted(actors, 123_456)
    page = f"/console/officer/applications/{application_id}"
    r = ks.get(page)
    assert r.status_code == 404 and "¥1,234.56" not in r.get_data(as_text=True)
    assert application_id not in ks.page("/console/officer/applications?status=")
    with nothing_changes(app):
        r = ks.post(f"{page}/approve", {"amount_yuan": ""}, from_page="/console/officer/applications")
    assert r.status_code == 404
    assert problem_shown(r.get_data(as_text=True))
    assert ok(actors.officer("SH").get(f"/applications/{application_id}"))["status"] == "submitted"


def test_the_queue_filters_by_enterprise_and_day_and_pages_with_the_cursor(actors, sh):
    ids = [submitted(actors, enterprise_id="ent-sh-002") for _ in range(21)]
    html = sh.page("/console/officer/applications?enterprise_id=ent-sh-002")
    shown = set(re.findall(r"app_[0-9A-Za-z_-]+", html)) & set(ids)
    assert len(shown) == 20 and '<td class="mono">ent-sh-001</td>' not in html
    next_page = re.search(r'href="(/console/officer/applications\?[^"]*cursor=[^"]+)"', html).group(1)
    rest = sh.page(next_page.replace("&amp;", "&"))
    assert set(ids) - shown <= set(re.findall(r"app_[0-9A-Za-z_-]+", rest))
    tomorrow = (local_date(utc_now()) + timedelta(days=1)).isoformat()
    assert "No applications match." in sh.page(f"/console/officer/applications?submitted_from={tomorrow}")
    r = sh.get("/console/officer/applications?submitted_from=2026-05-01&submitted_to=2026-04-01")
    assert r.status_code == 422 and "submitted_to" in problem_shown(r.get_data(as_text=True))


# --- claims -----------------------------------------------------------------------------

def test_a_claim_is_approved_with_its_evidence_downloaded_then_recovered(app, actors, sh):
    rid, documents = confirmed_claim(actors)
    assert rid in sh.page("/console/officer/claims")
    page = f"/console/officer/claims/{rid}"
    html = sh.page(page)
    for document in documents:
        link = f"/console/claims/{rid}/documents/{document['sha256']}"
        assert f'href="{link}" download' in html
        r = sh.get(link)
        assert r.status_code == 200 and r.mimetype == "application/pdf"
        assert r.headers["Content-Disposition"].startswith("attachment")
        assert hashlib.sha256(r.get_data()).hexdigest() == document["sha256"]
    r = sh.post(f"{page}/approve", {}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"] == f"{page}?done=claim_approved"
    assert ok(actors.officer("SH").get(f"/redemptions/{rid}"))["status"] == "redeemed"
    assert "Recover money not due" in sh.page(page)
    with nothing_changes(app):
        r = sh.post(f"{page}/recover", {"amount_yuan": "600.00", "reason": "more than it paid"}, from_page=page)
    assert r.status_code == 409 and problem_shown(r.get_data(as_text=True))
    with nothing_changes(app):
        r = sh.post(f"{page}/recover", {"amount_yuan": "100.00", "reason": "invoice overstated"}, from_page=page)
    assert r.status_code == 409 and "whole before settlement" in problem_shown(r.get_data(as_text=True))
    assert 'value="¥500.00"' in sh.page(page), "before settlement the form offers the whole amount"
    r = sh.post(f"{page}/recover", {"amount_yuan": "¥500.00", "reason": "invoice overstated"}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"] == f"{page}?done=recovered"
    recovered = ok(actors.officer("SH").get(f"/redemptions/{rid}"))
    assert recovered["status"] == "recovered" and recovered["recovered_fen"] == 50_000


def test_the_queue_holds_the_claims_the_region_decides_and_all_shows_those_at_its_providers(actors, sh):
    ours, _documents = confirmed_claim(actors)
    theirs, _documents = confirmed_claim(actors, enterprise_id="ent-ks-003")  # a KS voucher at an SH provider
    queue = sh.page("/console/officer/claims")
    assert ours in queue and theirs not in queue, "KS decides its own voucher's claim"
    everything = sh.page("/console/officer/claims?status=confirmed&scope=all")
    assert ours in everything and theirs in everything


def test_a_claim_is_rejected_with_its_reason(actors, sh):
    rid, _documents = confirmed_claim(actors)
    page = f"/console/officer/claims/{rid}"
    r = sh.post(f"{page}/reject", {"reason": "the acceptance record is missing"}, from_page=page)
    assert r.status_code == 303
    rejected = ok(actors.officer("SH").get(f"/redemptions/{rid}"))
    assert rejected["status"] == "rejected" and rejected["reason"] == "the acceptance record is missing"


def test_another_regions_officer_reads_neither_the_claim_nor_its_documents(app, actors):
    rid, documents = confirmed_claim(actors)
    wj = Console(app, actors.token("officer", region="WJ"))
    assert wj.get(f"/console/officer/claims/{rid}").status_code == 404
    r = wj.get(f"/console/claims/{rid}/documents/{documents[0]['sha256']}")
    assert r.status_code == 404 and b"%PDF" not in r.get_data()
    with nothing_changes(app):
        r = wj.post(f"/console/officer/claims/{rid}/approve", {}, from_page="/console/officer/claims")
    assert r.status_code == 404
    assert ok(actors.officer("SH").get(f"/redemptions/{rid}"))["status"] == "confirmed"


# --- catalogue proposals ----------------------------------------------------------------

def test_a_ratio_change_approved_by_every_region_in_the_console_is_adopted(app, actors, sh, ks):
    r = sh.post("/console/officer/proposals/change", {"code": "RD-03", "ratio_percent": "35"},
                from_page="/console/officer/proposals")
    assert r.status_code == 303
    page = r.headers["Location"].split("?")[0]
    assert r.headers["Location"].endswith("?done=proposed")
    html = sh.page(page)
    assert "40%" in html and "35%" in html and "Approvals: 1 of 3 needed" in html
    assert ok(actors.officer("SH").get("/catalog/RD-03"))["max_subsidy_ratio_bp"] == 4000, "not yet in effect"
    r = ks.post(f"{page}/approve", {}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=proposal_approved")
    wj = Console(app, actors.token("officer", region="WJ"))
    r = wj.post(f"{page}/approve", {}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=proposal_adopted")
    assert ok(actors.officer("SH").get("/catalog/RD-03"))["max_subsidy_ratio_bp"] == 3500
    assert "Your region&#39;s approval completed the quorum" in wj.page(r.headers["Location"])


def test_a_new_item_is_withdrawn_by_its_region_only(app, actors, sh, ks):
    body = {"code": "IP-09", "category": "ip", "name_zh": "专利导航", "name_en": "Patent navigation",
            "ratio_percent": "37.5", "active": "true"}
    r = sh.post("/console/officer/proposals/new", body, from_page="/console/officer/proposals")
    assert r.status_code == 303
    page = r.headers["Location"].split("?")[0]
    proposal = ok(actors.officer("SH").get(f"/catalog/proposals/{page.rsplit('/', 1)[1]}"))
    assert proposal["change"]["fields"]["max_subsidy_ratio_bp"] == 3750 and proposal["status"] == "open"
    assert "Withdraw your region" not in ks.page(page)
    with nothing_changes(app):
        r = ks.post(f"{page}/withdraw", {}, from_page=page)
    assert r.status_code == 403 and problem_shown(r.get_data(as_text=True))
    r = sh.post(f"{page}/withdraw", {}, from_page=page)
    assert r.status_code == 303
    assert ok(actors.officer("SH").get(f"/catalog/proposals/{proposal['id']}"))["status"] == "withdrawn"


def test_a_proposal_the_api_refuses_keeps_the_form(app, sh):
    with nothing_changes(app):
        r = sh.post("/console/officer/proposals/new", {"code": "bad code", "category": "ip", "name_zh": "x",
                                                       "name_en": "x", "ratio_percent": "120"},
                    from_page="/console/officer/proposals")
        assert r.status_code == 422 and "at most 100" in r.get_data(as_text=True)
        r = sh.post("/console/officer/proposals/new", {"code": "bad code", "category": "ip", "name_zh": "x",
                                                       "name_en": "x", "ratio_percent": "20"},
                    from_page="/console/officer/proposals")
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and 'value="bad code"' in html
    assert re.search(r'id="f-new-code".*?<p class="error">', html, re.S)


# --- providers --------------------------------------------------------------------------

def test_a_provider_is_registered_in_the_officers_region_and_a_bad_uscc_shown_by_its_field(app, actors, sh):
    good = make_uscc("310115")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with nothing_changes(app):
        r = sh.post("/console/officer/providers/register", {"name": "上海测试检测有限公司", "uscc": bad,
                                                             "categories": ["testing"]},
                    from_page="/console/officer/providers")
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and 'value="上海测试检测有限公司"' in html
    assert re.search(r'value="testing" checked> Testing and inspection</label>', html), "named, and kept as ticked"
    assert 'value="instruments"> Shared large scientific instruments</label>' in html, "a category of no item too"
    assert re.search(r'id="f-uscc".*?<p class="error">[^<]*unified social credit code', html, re.S)
    r = sh.post("/console/officer/providers/register", {"name": "上海测试检测有限公司", "uscc": good,
                                                         "categories": ["testing", "instruments"]},
                from_page="/console/officer/providers")
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=registered")
    provider_id = r.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    registered = ok(actors.officer("KS").get(f"/providers/{provider_id}"))
    assert registered["region"] == "SH" and sorted(registered["categories"]) == ["instruments", "testing"]


def test_the_home_region_suspends_and_reinstates_and_another_region_cannot(app, actors, sh, ks):
    page = f"/console/officer/providers/{SH_PROVIDER}"
    with nothing_changes(app):
        r = ks.post(f"{page}/suspend", {}, from_page="/console/officer/providers")
    assert r.status_code == 403 and problem_shown(r.get_data(as_text=True))
    assert "Suspend in every region" not in ks.page(page)
    r = sh.post(f"{page}/suspend", {}, from_page=page)
    assert r.status_code == 303
    assert ok(actors.officer("SH").get(f"/providers/{SH_PROVIDER}"))["status"] == "suspended"
    r = sh.post(f"{page}/reinstate", {}, from_page=page)
    assert r.status_code == 303
    assert ok(actors.officer("SH").get(f"/providers/{SH_PROVIDER}"))["status"] == "active"


def test_a_region_excludes_and_readmits_another_regions_provider(actors, sh):
    page = f"/console/officer/providers/{KS_PROVIDER}"
    r = sh.post(f"{page}/exclude", {"reason": "repeated late reports"}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=excluded")
    assert "SH" in ok(actors.officer("SH").get(f"/providers/{KS_PROVIDER}"))["excluded_in"]
    listing = sh.page("/console/officer/providers")
    assert "repeated late reports" in listing
    r = sh.post(f"{page}/readmit", {}, from_page="/console/officer/providers")
    assert r.status_code == 303
    assert "SH" not in ok(actors.officer("SH").get(f"/providers/{KS_PROVIDER}"))["excluded_in"]


def test_a_payout_account_needs_a_second_officer_to_confirm_it(app, actors, sh):
    provider_id = ok(actors.officer("SH").post("/providers", json={
        "name": "Payout console provider", "uscc": make_uscc("310115"), "region": "SH",
        "categories": ["testing"]}), 201)["id"]
    page = f"/console/officer/providers/{provider_id}"
    r = sh.post(f"{page}/payout-account", {"account_name": "上海某检测公司", "bank_name": "中国银行上海分行",
                                           "account_no": NUMBER}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=account_proposed")
    html = sh.page(page)
    assert "****5432" in html and NUMBER not in html and "Confirm this change" not in html
    pending = ok(actors.officer("SH").get(f"/providers/{provider_id}/payout-account"))["pending"]
    with nothing_changes(app):
        r = sh.post(f"{page}/payout-account/confirm", {"change_id": pending["id"]}, from_page=page)
    assert r.status_code == 409 and "four eyes" in problem_shown(r.get_data(as_text=True)).lower()
    assert ok(actors.officer("SH").get(f"/providers/{provider_id}/payout-account"))["in_effect"] is None

    second = Console(app, actors.token("officer", region="SH"))
    html = second.page(page)
    assert "Confirm this change" in html and hashlib.sha256(NUMBER.encode()).hexdigest() in html
    r = second.post(f"{page}/payout-account/confirm", {"change_id": pending["id"]}, from_page=page)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=account_confirmed")
    state = ok(actors.officer("SH").get(f"/providers/{provider_id}/payout-account"))
    assert state["pending"] is None and state["in_effect"]["account_no_masked"] == "****5432"


# --- roles ------------------------------------------------------------------------------

def test_other_roles_are_sent_home_from_the_officer_pages(app, actors):
    sme = Console(app, actors.token("sme", enterprise_id=SH_ENTERPRISE))
    auditor = Console(app, actors.token("auditor"))
    for path in ("/console/officer/applications", "/console/officer/claims", "/console/officer/proposals",
                 "/console/officer/providers", f"/console/officer/providers/{SH_PROVIDER}"):
        for console in (sme, auditor):
            r = console.get(path)
            assert r.status_code == 302 and r.headers["Location"] == "/console/", (path, r.status_code)


def test_an_officer_is_sent_home_from_the_auditors_pages(sh):
    r = sh.get("/console/ledger")
    assert r.status_code == 302 and r.headers["Location"] == "/console/"
