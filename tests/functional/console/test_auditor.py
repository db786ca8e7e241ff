"""The auditor's console pages (DESIGN §11): the ledger, filtered, with times in
the programme's time zone; an entry; the export and a receipt as downloads
that are byte for byte what the API serves; and a refused download shown as
a page, never saved as a file that looks like a ledger."""
from __future__ import annotations

import json
import re

import pytest
from helpers import Console, ledger_size, ok, publish

from voucher_service.console.filters import shanghai_date, shanghai_time

ENTERPRISE = "ent-ks-003"


@pytest.fixture(scope="module")
def auditor(app, actors):
    return Console(app, actors.token("auditor"))


def kinds_listed(html: str) -> list[str]:
    return re.findall(r"<td><code>([a-z_.]+)</code></td>", html)


def refusal_page(response, status: int) -> str:
    """A refused download: the console's page with the API's reason, not a file."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html" and "attachment" not in response.headers.get("Content-Disposition", "")
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html, html[:800]
    return html


def test_the_ledger_lists_entries_in_programme_time_and_filters_by_kind(actors, auditor):
    first = ok(actors.auditor().get("/ledger/entries?limit=1"))["items"][0]
    html = auditor.page("/console/ledger")
    assert f'<time datetime="{first["ts"]}">{shanghai_time(first["ts"])}</time>' in html
    assert 'href="/console/ledger/0"' in html
    assert "Asia/Shanghai" in html, "the page says in which time zone its times are"

    assert first["kind"] in kinds_listed(html) and len(set(kinds_listed(html))) > 1
    only = auditor.page(f"/console/ledger?kind={first['kind']}")
    assert kinds_listed(only) and set(kinds_listed(only)) == {first["kind"]}


def test_a_day_filter_counts_days_in_shanghai_as_the_api_does(actors, auditor):
    entry = ok(actors.auditor().get("/ledger/entries?limit=1"))["items"][0]
    day = shanghai_date(entry["ts"])
    html = auditor.page(f"/console/ledger?from={day}")
    api_kinds = [e["kind"] for e in ok(actors.auditor().get(f"/ledger/entries?from={day}&limit=50"))["items"]]
    assert kinds_listed(html) == api_kinds and api_kinds


def test_a_filter_the_api_refuses_is_shown_on_the_page(auditor):
    r = auditor.get("/console/ledger?from=last-tuesday")
    assert r.status_code == 422 and r.mimetype == "text/html"
    assert 'role="alert"' in r.get_data(as_text=True)


def test_an_entry_shows_its_instant_both_in_programme_time_and_as_signed(actors, auditor):
    entry = ok(actors.auditor().get("/ledger/entries/0"))
    html = auditor.page("/console/ledger/0")
    assert shanghai_time(entry["ts"]) in html and entry["ts"] in html and entry["kind"] in html


def test_the_checkpoint_page_dates_each_published_key_in_programme_time(actors, auditor):
    html = auditor.page("/console/checkpoint")
    for key in ok(actors.auditor().get("/ledger/keys"))["keys"]:
        assert f'<time datetime="{key["valid_from"]}">{shanghai_time(key["valid_from"])}</time>' in html, key


def test_the_export_is_the_apis_export_byte_for_byte(actors, auditor):
    whole = auditor.get("/console/ledger/export.jsonl")
    assert whole.status_code == 200 and whole.headers["Content-Disposition"].startswith("attachment")
    assert whole.data == actors.auditor().get("/ledger/export").data
    part = auditor.get("/console/ledger/export.jsonl?start=1&end=3")
    lines = part.data.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    assert part.data == actors.auditor().get("/ledger/export?start=1&end=3").data


@pytest.mark.parametrize("query", ["start=3&end=1", "end=99999999", "start=-1"])
def test_a_refused_export_is_a_page_not_a_downloaded_file(auditor, query):
    html = refusal_page(auditor.get(f"/console/ledger/export.jsonl?{query}"), 422)
    assert "Refused" in html


def test_a_receipt_downloads_as_the_api_gives_it_once_published(app, actors, auditor):
    sme = actors.sme(ENTERPRISE)
    ok(sme.post("/applications", json={"amount_fen": 10_000, "purpose": "a new entry for the receipt"}), 201)
    seq = ledger_size(app) - 1
    refusal_page(auditor.get(f"/console/receipts/{seq}.json"), 409)  # no checkpoint covers it yet

    publish(app)
    r = auditor.get(f"/console/receipts/{seq}.json")
    assert r.status_code == 200 and r.headers["Content-Disposition"] == f"attachment; filename=receipt-{seq}.json"
    assert json.loads(r.data) == ok(actors.auditor().get(f"/ledger/receipts/{seq}"))
    refusal_page(auditor.get("/console/receipts/99999999.json"), 404)


def test_an_enterprise_is_sent_to_its_own_pages_from_the_auditors(app, actors):
    sme = Console(app, actors.token("sme", enterprise_id=ENTERPRISE))
    for path in ("/console/ledger", "/console/ledger/export.jsonl", "/console/checkpoint"):
        r = sme.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/console/"), path
