"""A region's exclusion of a provider (DESIGN §8): its own vouchers may not be spent
there; every other region's still may, and scheme-wide suspension stays with the
provider's home region.

prv-sh-001 is an SH provider accredited for testing (TS-01); ent-ks-003, ent-sh-001
and ent-wj-001 are enterprises of KS, SH and WJ. Every refusal is checked to change
nothing: no ledger entry, no balance moved. Another worker's exclusion reaching a
warm registry cache is tests/unit/journal/test_reference_cache.py's.
"""
from __future__ import annotations

import json

import pytest
from helpers import add_evidence, assert_problem, ledger_size, nothing_changes, ok, unique_invoice
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.models import LedgerEntry

PROVIDER = "prv-sh-001"
EXCLUSIONS = "/regions/KS/excluded-providers"


def entries_since(app, seq: int) -> list[dict]:
    with app.app_context(), Session(get_engine()) as session:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.seq >= seq).order_by(LedgerEntry.seq)).all()
        return [json.loads(row.canonical) for row in rows]


def issue(actors, enterprise_id, region, amount_fen=1_000_000):
    sme = actors.sme(enterprise_id)
    application = ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "exclusion test"}), 201)
    voucher = ok(actors.officer(region).post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    return sme, voucher["id"]


def reservation(voucher_id, provider_id=PROVIDER, amount_fen=10_000):
    return {"voucher_id": voucher_id, "provider_id": provider_id, "catalog_code": "TS-01",
            "service_fee_fen": 4 * amount_fen, "amount_fen": amount_fen}


def claim(amount_fen=10_000):
    return {"invoice_no": unique_invoice("INV-EXCL"), "service_fee_fen": 4 * amount_fen, "amount_fen": amount_fen}


def assert_excluded(response):
    body = assert_problem(response, 409)
    assert body["rule"] == "provider_excluded", body
    assert body["type"] == "urn:vouchers:problem:provider_excluded"
    assert "KS" in body["detail"] and PROVIDER in body["detail"], body["detail"]
    return body


@pytest.fixture
def world(fresh_app, fresh_actors):
    return fresh_app, fresh_actors, fresh_actors.officer("KS")


def test_an_exclusion_refuses_the_excluding_regions_vouchers_only(world):
    app, actors, ks = world
    ks_sme, ks_voucher = issue(actors, "ent-ks-003", "KS")
    sh_sme, sh_voucher = issue(actors, "ent-sh-001", "SH")
    wj_sme, wj_voucher = issue(actors, "ent-wj-001", "WJ")
    ok(ks_sme.post("/redemptions", json=reservation(ks_voucher)), 201)

    seq = ledger_size(app)
    r = ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "audit found inflated invoices"})
    exclusion = ok(r, 201)
    assert {k: exclusion[k] for k in ("region", "provider_id", "reason")} == \
        {"region": "KS", "provider_id": PROVIDER, "reason": "audit found inflated invoices"}
    assert exclusion["excluded_by"] and exclusion["excluded_at"]
    assert r.headers["Location"].endswith(f"/api/v1/regions/KS/excluded-providers/{PROVIDER}")
    [entry] = entries_since(app, seq)
    assert (entry["kind"], entry["region"]) == ("provider.excluded", "KS")
    assert entry["refs"] == {"provider": PROVIDER, "region": "KS"}
    assert entry["data"] == {"reason": "audit found inflated invoices"} and entry["postings"] == []
    assert exclusion["ledger"]["seq"] == entry["seq"]

    with nothing_changes(app):
        assert_excluded(ks_sme.post("/redemptions", json=reservation(ks_voucher)))
    # Vouchers of the other regions are unaffected: the provider is still recognised there.
    ok(sh_sme.post("/redemptions", json=reservation(sh_voucher)), 201)
    ok(wj_sme.post("/redemptions", json=reservation(wj_voucher)), 201)
    # And KS vouchers are still spent at other providers.
    ok(ks_sme.post("/redemptions", json=reservation(ks_voucher, provider_id="prv-ks-002")), 201)

    # Everyone with a token can see where a KS voucher may not be spent.
    for reader in (ks_sme, actors.provider(PROVIDER), actors.officer("SH"), actors.auditor()):
        listed = ok(reader.get(EXCLUSIONS))
        assert [(e["region"], e["provider_id"]) for e in listed["items"]] == [("KS", PROVIDER)]
        assert ok(reader.get(f"{EXCLUSIONS}/{PROVIDER}"))["reason"] == "audit found inflated invoices"
        assert ok(reader.get(f"/providers/{PROVIDER}"))["excluded_in"] == ["KS"]
    assert ok(ks.get("/regions/SH/excluded-providers"))["items"] == []
    providers = ok(ks_sme.get("/providers", query_string={"limit": 100}))["items"]
    assert {p["id"]: p["excluded_in"] for p in providers}[PROVIDER] == ["KS"]
    assert {p["id"]: p["excluded_in"] for p in providers}["prv-sh-002"] == []


def test_in_flight_redemptions_as_under_suspension(world):
    """docs/decisions.md: as a suspension, an exclusion stops claims of open
    reservations (they can still be cancelled or rejected); what is already
    claimed goes on to be confirmed, approved and paid."""
    app, actors, ks = world
    sme, voucher = issue(actors, "ent-ks-003", "KS")
    provider = actors.provider(PROVIDER)
    reserved = ok(sme.post("/redemptions", json=reservation(voucher)), 201)["id"]
    claimed = ok(sme.post("/redemptions", json=reservation(voucher)), 201)["id"]
    add_evidence(provider, claimed)
    ok(provider.post(f"/redemptions/{claimed}/claim", json=claim()))
    ok(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "under investigation"}), 201)

    with nothing_changes(app):
        assert_excluded(provider.post(f"/redemptions/{reserved}/claim", json=claim()))
    ok(sme.post(f"/redemptions/{claimed}/confirm"))
    assert ok(ks.post(f"/redemptions/{claimed}/approve"))["status"] == "redeemed"
    assert ok(sme.post(f"/redemptions/{reserved}/cancel", json={"reason": "provider excluded"}))["status"] == \
        "cancelled"
    v = ok(sme.get(f"/vouchers/{voucher}"))
    assert (v["available_fen"], v["held_fen"], v["redeemed_fen"]) == (990_000, 0, 10_000)


def test_readmission_lets_the_regions_vouchers_be_spent_again(world):
    app, actors, ks = world
    sme, voucher = issue(actors, "ent-ks-003", "KS")
    provider = actors.provider(PROVIDER)
    reserved = ok(sme.post("/redemptions", json=reservation(voucher)), 201)["id"]
    excluded = ok(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "under investigation"}), 201)
    assert_excluded(sme.post("/redemptions", json=reservation(voucher)))

    seq = ledger_size(app)
    lifted = ok(ks.delete(f"{EXCLUSIONS}/{PROVIDER}"))
    assert {k: lifted[k] for k in ("region", "provider_id", "reason", "excluded_at")} == \
        {k: excluded[k] for k in ("region", "provider_id", "reason", "excluded_at")}
    assert lifted["readmitted_by"] and lifted["readmitted_at"] >= excluded["excluded_at"]
    [entry] = entries_since(app, seq)
    assert (entry["kind"], entry["region"], entry["refs"]) == \
        ("provider.readmitted", "KS", {"provider": PROVIDER, "region": "KS"})
    assert lifted["ledger"]["seq"] == entry["seq"]

    ok(sme.post("/redemptions", json=reservation(voucher)), 201)
    add_evidence(provider, reserved)
    ok(provider.post(f"/redemptions/{reserved}/claim", json=claim()))
    assert ok(ks.get(EXCLUSIONS))["items"] == []
    assert ok(ks.get(f"/providers/{PROVIDER}"))["excluded_in"] == []
    assert_problem(ks.get(f"{EXCLUSIONS}/{PROVIDER}"), 404)
    # Excluded again after a readmission: a new exclusion, a new entry.
    ok(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "second finding"}), 201)
    assert_excluded(sme.post("/redemptions", json=reservation(voucher)))


def test_refusals_change_nothing(app, actors):
    ks, sh = actors.officer("KS"), actors.officer("SH")
    with nothing_changes(app):
        # Only KS officers decide KS's exclusions.
        body = assert_problem(sh.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "SH for KS"}), 403)
        assert "KS" in body["detail"]
        assert_problem(actors.finance("KS").post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "x"}), 403)
        assert_problem(actors.sme("ent-ks-003").post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "x"}),
                       403)
        assert_problem(actors.anonymous().post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "x"}), 401)
        # A home region suspends its own providers instead.
        body = assert_problem(ks.post(EXCLUSIONS, json={"provider_id": "prv-ks-002", "reason": "own"}), 409)
        assert body["rule"] == "provider_home_region" and "suspend" in body["detail"]
        assert_problem(ks.post(EXCLUSIONS, json={"provider_id": "prv-nope", "reason": "unknown"}), 404)
        assert_problem(ks.delete(f"{EXCLUSIONS}/{PROVIDER}"), 404)
        assert_problem(ks.delete(f"{EXCLUSIONS}/prv-nope"), 404)
        assert_problem(ks.get("/regions/XX/excluded-providers"), 404)
        assert_problem(ks.get(f"/regions/XX/excluded-providers/{PROVIDER}"), 404)
        for bad in ({"provider_id": PROVIDER}, {"reason": "no provider"}, {"provider_id": PROVIDER, "reason": ""},
                    {"provider_id": PROVIDER, "reason": "x" * 501}, {"provider_id": 7, "reason": "x"},
                    {"provider_id": PROVIDER, "reason": "x", "extra": 1}):
            body = assert_problem(ks.post(EXCLUSIONS, json=bad), 422)
            assert body["errors"], bad
        assert_problem(ks.post(EXCLUSIONS, data="not json", content_type="application/json"), 400)
        assert_problem(ks.get(EXCLUSIONS, query_string={"limit": 0}), 422)

    ok(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "first"}), 201)
    with nothing_changes(app):
        body = assert_problem(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "again"}), 409)
        assert body["rule"] == "provider_already_excluded"
        assert_problem(sh.delete(f"{EXCLUSIONS}/{PROVIDER}"), 403)
    assert ok(ks.get(f"{EXCLUSIONS}/{PROVIDER}"))["reason"] == "first"


def test_the_list_pages(fresh_app, fresh_actors):
    ks = fresh_actors.officer("KS")
    for provider in ("prv-sh-001", "prv-sh-002", "prv-wj-001"):
        ok(ks.post(EXCLUSIONS, json={"provider_id": provider, "reason": "paging"}), 201)
    first = ok(ks.get(EXCLUSIONS, query_string={"limit": 2}))
    assert [e["provider_id"] for e in first["items"]] == ["prv-sh-001", "prv-sh-002"]
    rest = ok(ks.get(EXCLUSIONS, query_string={"limit": 2, "cursor": first["next_cursor"]}))
    assert [e["provider_id"] for e in rest["items"]] == ["prv-wj-001"] and rest["next_cursor"] is None


def test_an_idempotent_exclusion_replays(fresh_app, fresh_actors):
    ks = fresh_actors.officer("KS")
    body = {"provider_id": PROVIDER, "reason": "retry"}
    first = ks.post(EXCLUSIONS, json=body, headers={"Idempotency-Key": "excl-1"})
    size = ledger_size(fresh_app)
    again = ks.post(EXCLUSIONS, json=body, headers={"Idempotency-Key": "excl-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert ledger_size(fresh_app) == size


def test_a_readmission_whose_answer_was_lost_is_retried_with_its_key(fresh_app, fresh_actors):
    """Every write takes an Idempotency-Key, DELETE too: the retry gets the first answer, not a 404."""
    ks = fresh_actors.officer("KS")
    ok(ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "retry"}), 201)
    first = ks.delete(f"{EXCLUSIONS}/{PROVIDER}", headers={"Idempotency-Key": "readmit-1"})
    size = ledger_size(fresh_app)
    again = ks.delete(f"{EXCLUSIONS}/{PROVIDER}", headers={"Idempotency-Key": "readmit-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert ledger_size(fresh_app) == size
    assert ks.delete(f"{EXCLUSIONS}/{PROVIDER}").status_code == 404, "without the key it is a new request"
    other = ks.post(EXCLUSIONS, json={"provider_id": PROVIDER, "reason": "x"}, headers={"Idempotency-Key": "readmit-1"})
    assert other.status_code == 422, "the key with another method and path is another request"
