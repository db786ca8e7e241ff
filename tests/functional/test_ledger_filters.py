"""The audit trail's filters (DESIGN §8: GET /ledger/entries?kind=&region=&ref=TYPE:ID&from=&to=):
each filter, and all of them together, gives exactly the entries of the whole ledger that
match it, in seq order, paged by start/next_start, within what the caller may see; bad
filters are 422 problems."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from voucher_service.journal import api as journal_api

from helpers import SHANGHAI, assert_problem, ok


def walk(client, limit=1000, **filters) -> list[dict]:
    """Every entry the filters give, page after page."""
    items, start, pages = [], 0, 0
    while start is not None:
        page = ok(client.get(f"/ledger/entries?{urlencode({**filters, 'start': start, 'limit': limit})}"))
        items.extend(page["items"])
        start, pages = page["next_start"], pages + 1
        assert pages < 10_000
    return items


@pytest.fixture(scope="module")
def voucher(actors):
    """A voucher of ent-ks-003 with a reservation at a Shanghai provider: entries in two regions."""
    sme = actors.sme("ent-ks-003")
    application = ok(sme.post("/applications", json={"amount_fen": 200_000, "purpose": "audit trail"}), 201)
    issued = ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    ok(sme.post("/redemptions", json={"voucher_id": issued["id"], "provider_id": "prv-sh-001",
                                      "catalog_code": "TS-01", "service_fee_fen": 100_000,
                                      "amount_fen": 50_000}), 201)
    return issued


@pytest.fixture
def everything(actors, voucher):
    return walk(actors.auditor())


def test_kind_gives_exactly_the_entries_of_that_kind(actors, everything):
    auditor = actors.auditor()
    for kind in ("voucher.issued", "redemption.reserved", "budget.funded"):
        expected = [e for e in everything if e["kind"] == kind]
        assert expected, kind
        assert walk(auditor, kind=kind) == expected
        assert walk(auditor, limit=1, kind=kind) == expected
    assert walk(auditor, kind="no.such_kind") == []


def test_region_gives_the_entries_it_recorded(actors, everything):
    for region in ("SH", "KS", "WJ"):
        expected = [e for e in everything if e["region"] == region]
        assert expected, region
        assert walk(actors.auditor(), limit=3, region=region) == expected


def test_ref_matches_type_and_id(actors, voucher, everything):
    auditor = actors.auditor()
    of_voucher = walk(auditor, ref=f"voucher:{voucher['id']}")
    assert [e["kind"] for e in of_voucher] == ["voucher.issued", "redemption.reserved"]
    assert of_voucher == [e for e in everything if e["refs"].get("voucher") == voucher["id"]]
    of_enterprise = walk(auditor, limit=2, ref="enterprise:ent-ks-003")
    assert of_enterprise == [e for e in everything if e["refs"].get("enterprise") == "ent-ks-003"]
    assert len(of_enterprise) >= 3  # registered, applied, approved, issued, reserved
    # The id alone is not enough: it must be the ref of that type.
    assert walk(auditor, ref="provider:ent-ks-003") == []
    assert walk(auditor, ref=f"application:{voucher['id']}") == []
    region_refs = walk(auditor, ref="region:KS")
    assert region_refs and all(e["refs"]["region"] == "KS" for e in region_refs)


def test_time_window_from_inclusive_to_exclusive(actors, voucher, everything):
    auditor = actors.auditor()
    issued = next(e for e in everything if e["kind"] == "voucher.issued" and e["refs"]["voucher"] == voucher["id"])
    after = walk(auditor, **{"from": issued["ts"]})
    assert after == [e for e in everything if e["ts"] >= issued["ts"]] and after[0]["ts"] == issued["ts"]
    before = walk(auditor, to=issued["ts"])
    assert before == [e for e in everything if e["ts"] < issued["ts"]]
    assert walk(auditor, **{"from": issued["ts"], "to": issued["ts"]}) == []
    # An offset other than Z names the same instant.
    moment = datetime.fromisoformat(issued["ts"].replace("Z", "+00:00")).astimezone(SHANGHAI)
    assert walk(auditor, **{"from": moment.isoformat()}) == after
    # Dates are midnight in Asia/Shanghai: today's window holds today's entries.
    today = datetime.now(SHANGHAI).date()
    todays = walk(auditor, **{"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()})
    midnight = datetime(today.year, today.month, today.day, tzinfo=SHANGHAI)
    bounds = [(midnight + timedelta(days=d)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
              for d in (0, 1)]
    assert todays == [e for e in everything if bounds[0] <= e["ts"] < bounds[1]]
    assert issued in todays


def test_filters_combine_with_each_other_and_with_visibility(actors, voucher, everything):
    filters = {"kind": "redemption.reserved", "region": "KS", "ref": "enterprise:ent-ks-003",
               "from": everything[0]["ts"]}
    expected = [e for e in everything if e["kind"] == "redemption.reserved" and e["region"] == "KS"
                and e["refs"].get("enterprise") == "ent-ks-003"]
    assert expected
    assert walk(actors.auditor(), **filters) == expected
    # The SME sees the same (they concern it); another region's officer only what concerns its region.
    assert walk(actors.sme("ent-ks-003"), **filters) == expected
    sh = walk(actors.officer("SH"), kind="redemption.reserved")
    assert all("SH" in (e["region"], *e["refs"].values()) or e["refs"].get("provider", "").startswith("prv-sh")
               for e in sh)
    mine = {e["seq"] for e in walk(actors.officer("SH"))}
    assert sh == [e for e in everything if e["kind"] == "redemption.reserved" and e["seq"] in mine]
    assert walk(actors.sme("ent-ks-003"), kind="budget.funded", region="SH") == []


def test_a_page_stops_after_scanning_too_many_refs_of_another_type(actors, everything, monkeypatch):
    """`voucher:KS` matches ledger_ref rows (KS is a region ref) but no entry: pages
    are short, yet bounded, and following next_start ends."""
    monkeypatch.setattr(journal_api, "MAX_SCANNED_ROWS", 2)
    auditor = actors.auditor()
    first = ok(auditor.get("/ledger/entries?ref=voucher:KS&limit=1"))
    assert first["items"] == [] and first["next_start"] is not None
    assert walk(auditor, limit=1, ref="voucher:KS") == []


@pytest.mark.parametrize("query, field", [
    ("kind=Voucher.Issued", "kind"), ("kind=voucher", "kind"), ("kind=voucher.issued%0A", "kind"),
    ("kind=" + "a." * 40 + "b", "kind"),
    ("region=ks", "region"), ("region=K", "region"),
    ("ref=voucher", "ref"), ("ref=:vch_1", "ref"), ("ref=voucher:", "ref"), ("ref=Voucher:vch_1", "ref"),
    ("ref=voucher:a%20b", "ref"), ("ref=voucher:" + "x" * 81, "ref"),
    ("from=yesterday", "from"), ("from=2025-02-30", "from"), ("to=2025-01-02T08:00:00", "to"),
    ("to=2025-13-01T00:00:00Z", "to"), ("from=99999-01-01", "from"),
    ("from=2025-02-01&to=2025-01-31", "from"), ("from=2025-01-02T00:00:01Z&to=2025-01-02T00:00:00Z", "from"),
])
def test_bad_filters_are_422_problems(actors, query, field):
    body = assert_problem(actors.auditor().get(f"/ledger/entries?{query}"), 422)
    assert field in str(body), body
