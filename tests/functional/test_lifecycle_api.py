"""The unified process end to end through the API (DESIGN §2, §3, §5): the acceptance
scenario of the foundation issue, every programme rule with its 409, a full lifecycle in
a third region, and the ledger each of them writes.

A refused request must change nothing: every 409 here is checked against the ledger
size and the balances before and after.
"""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.models import LedgerEntry, SigningKeyRecord

from helpers import (
    add_evidence,
    account_balances,
    adopt_catalogue_change,
    assert_problem,
    ledger_size,
    make_uscc,
    nothing_changes,
    ok,
    unique_invoice,
)

PROBLEM_JSON = "application/problem+json"


# --- helpers ------------------------------------------------------------------------

def assert_rule(response, rule: str, *phrases: str):
    """A 409 whose `rule` member is `rule` and whose detail names it in words."""
    body = assert_problem(response, 409)
    assert body.get("rule") == rule, body
    detail = body["detail"].lower()
    assert any(phrase in detail for phrase in phrases), (phrases, body["detail"])
    return body


def balances(client, voucher_id):
    v = ok(client.get(f"/vouchers/{voucher_id}"))
    return v["available_fen"], v["held_fen"], v["redeemed_fen"]


class LedgerWatch:
    """Reads the entries appended since the last look, from the ledger table."""

    def __init__(self, app):
        self.app = app
        self.seen = ledger_size(app)

    def new(self) -> list[dict]:
        with self.app.app_context(), Session(get_engine()) as session:
            rows = session.exec(select(LedgerEntry).where(LedgerEntry.seq >= self.seen)
                                .order_by(LedgerEntry.seq)).all()
            key_regions = {k.key_id: k.region for k in session.exec(select(SigningKeyRecord)).all()}
        entries = []
        for row in rows:
            entry = json.loads(row.canonical)
            assert entry["seq"] == row.seq == self.seen + len(entries), "seq must be gapless"
            assert entry["kind"] == row.kind and entry["v"] == 1
            assert entry["sig"]["alg"] == "ed25519" and entry["sig"]["value"]
            assert key_regions[entry["sig"]["key_id"]] == entry["region"], "signed by the recording region's key"
            entries.append(entry)
        self.seen += len(entries)
        return entries

    def one(self, kind: str, **refs) -> dict:
        entries = self.new()
        assert [e["kind"] for e in entries] == [kind], [e["kind"] for e in entries]
        entry = entries[0]
        for name, value in refs.items():
            assert entry["refs"].get(name) == value, (name, entry["refs"])
        return entry

    def none(self):
        assert self.new() == []


def postings(entry) -> list[tuple[str, str, int]]:
    return [(p["source"], p["destination"], p["amount"]) for p in entry["postings"]]


def apply(sme, amount_fen, purpose="innovation services"):
    return ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": purpose}), 201)


def issue(actors, enterprise_id, region, amount_fen):
    sme = actors.sme(enterprise_id)
    application = apply(sme, amount_fen)
    decided = ok(actors.officer(region).post(f"/applications/{application['id']}/approve", json={}))
    return sme, decided["voucher"]


def reservation(voucher_id, provider_id, catalog_code, service_fee_fen, amount_fen):
    return {"voucher_id": voucher_id, "provider_id": provider_id, "catalog_code": catalog_code,
            "service_fee_fen": service_fee_fen, "amount_fen": amount_fen}


# --- the acceptance scenario ---------------------------------------------------------

def test_acceptance_scenario_with_its_ledger(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    sme, ks, sh = actors.sme("ent-ks-003"), actors.officer("KS"), actors.officer("SH")
    provider = actors.provider("prv-sh-001")
    ledger = LedgerWatch(app)
    budget_before = ok(ks.get("/regions/KS"))["budget_remaining_fen"]

    # A KS enterprise applies; a KS officer approves; the voucher is whole.
    application = apply(sme, 1_000_000, "product certification")
    assert (application["status"], application["region"], application["enterprise_id"]) == \
        ("submitted", "KS", "ent-ks-003")
    ledger.one("application.submitted", application=application["id"])
    decided = ok(ks.post(f"/applications/{application['id']}/approve", json={}))
    voucher = decided["voucher"]
    vid = voucher["id"]
    assert decided["status"] == "approved" and decided["voucher_id"] == vid
    assert voucher["face_fen"] == voucher["available_fen"] == 1_000_000
    assert (voucher["held_fen"], voucher["redeemed_fen"], voucher["status"]) == (0, 0, "active")
    entry = ledger.one("voucher.issued", voucher=vid, application=application["id"])
    assert postings(entry) == [("budget:KS", f"voucher:{vid}", 1_000_000)]
    assert ok(ks.get("/regions/KS"))["budget_remaining_fen"] == budget_before - 1_000_000

    # The SME reserves at an SH provider; the same Idempotency-Key twice holds once.
    body = reservation(vid, "prv-sh-001", "TS-01", 600_000, 300_000)
    first = sme.post("/redemptions", json=body, headers={"Idempotency-Key": "acceptance-1"})
    rdm = ok(first, 201)
    rid = rdm["id"]
    assert (rdm["status"], rdm["amount_fen"], rdm["region"]) == ("reserved", 300_000, "KS")
    entry = ledger.one("redemption.reserved", redemption=rid, voucher=vid)
    assert postings(entry) == [(f"voucher:{vid}", f"voucher:{vid}:held", 300_000)]
    again = sme.post("/redemptions", json=body, headers={"Idempotency-Key": "acceptance-1"})
    assert again.status_code == 201 and again.get_json() == rdm
    assert again.headers["Location"] == first.headers["Location"]
    ledger.none()
    assert balances(sme, vid) == (700_000, 300_000, 0)
    with nothing_changes(app):
        other = sme.post("/redemptions", json={**body, "amount_fen": 200_000},
                         headers={"Idempotency-Key": "acceptance-1"})
        assert_problem(other, 422)
    assert balances(sme, vid) == (700_000, 300_000, 0)

    # More than fee × ratio: 409 naming the rule.
    with nothing_changes(app):
        r = sme.post("/redemptions", json={**body, "amount_fen": 300_001})
        assert_rule(r, "subsidy_ratio", "subsidy ratio")
        # Approval before the claim, confirmation before the claim.
        assert_rule(ks.post(f"/redemptions/{rid}/approve"), "state_machine", "state machine")
        assert_rule(sme.post(f"/redemptions/{rid}/confirm"), "state_machine", "state machine")
        # A claim may lower the amount, never raise it.
        r = provider.post(f"/redemptions/{rid}/claim",
                          json={"invoice_no": "INV-1", "service_fee_fen": 700_000, "amount_fen": 300_001})
        assert_rule(r, "claim_not_raising", "raise")
    ledger.none()

    # The provider claims less; the difference goes back to the voucher at once.
    add_evidence(provider, rid)
    assert [e["kind"] for e in ledger.new()] == ["redemption.document_added"] * 2
    claimed = ok(provider.post(f"/redemptions/{rid}/claim",
                               json={"invoice_no": "INV-1", "service_fee_fen": 500_000, "amount_fen": 250_000}))
    assert (claimed["status"], claimed["amount_fen"], claimed["invoice_no"]) == ("claimed", 250_000, "INV-1")
    assert claimed["claimed_at"]
    entry = ledger.one("redemption.claimed", redemption=rid)
    assert postings(entry) == [(f"voucher:{vid}:held", f"voucher:{vid}", 50_000)]
    assert balances(sme, vid) == (750_000, 250_000, 0)

    confirmed = ok(sme.post(f"/redemptions/{rid}/confirm"))
    assert confirmed["status"] == "confirmed" and confirmed["confirmed_at"]
    assert postings(ledger.one("redemption.confirmed", redemption=rid)) == []

    # The provider's region may not approve; the issuing region does.
    with nothing_changes(app):
        assert_problem(sh.post(f"/redemptions/{rid}/approve"), 403)
    redeemed = ok(ks.post(f"/redemptions/{rid}/approve"))
    assert redeemed["status"] == "redeemed" and redeemed["redeemed_at"]
    entry = ledger.one("redemption.redeemed", redemption=rid, provider="prv-sh-001")
    assert postings(entry) == [(f"voucher:{vid}:held", "payable:KS:prv-sh-001", 250_000)]
    assert balances(sme, vid) == (750_000, 0, 250_000)

    # DESIGN §3 on the account table: the ledger's balances are the voucher's.
    accounts = account_balances(app)
    assert accounts[f"voucher:{vid}"] == 750_000
    assert accounts[f"voucher:{vid}:held"] == 0
    assert accounts["payable:KS:prv-sh-001"] == 250_000
    assert sum(accounts.values()) == 0
    assert all(v >= 0 for k, v in accounts.items() if not k.startswith("treasury:"))

    # Voiding gives what is left back to the budget.
    voided = ok(ks.post(f"/vouchers/{vid}/void", json={"reason": "enterprise left the programme"}))
    assert (voided["status"], voided["available_fen"], voided["redeemed_fen"]) == ("voided", 0, 250_000)
    assert postings(ledger.one("voucher.voided", voucher=vid)) == [(f"voucher:{vid}", "budget:KS", 750_000)]
    assert ok(ks.get("/regions/KS"))["budget_remaining_fen"] == budget_before - 250_000
    accounts = account_balances(app)
    assert (accounts[f"voucher:{vid}"], accounts[f"voucher:{vid}:held"]) == (0, 0)
    assert sum(accounts.values()) == 0


def test_a_cancelled_reservation_releases_its_hold(app, actors):
    sme, voucher = issue(actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 60_000, 30_000)), 201)["id"]
    assert balances(sme, vid) == (70_000, 30_000, 0)
    with nothing_changes(app):  # only the SME cancels
        assert_problem(actors.provider("prv-sh-001").post(f"/redemptions/{rid}/cancel", json={}), 403)
    ledger = LedgerWatch(app)
    cancelled = ok(sme.post(f"/redemptions/{rid}/cancel", json={"reason": "changed plans"}))
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] and cancelled["reason"] == "changed plans"
    ledger.one("redemption.cancelled", redemption=rid, voucher=vid)
    assert balances(sme, vid) == (100_000, 0, 0)


@pytest.mark.parametrize("action", ["cancel", "reject"])
def test_releasing_a_hold_posts_it_back_to_the_voucher(fresh_app, fresh_actors, action):
    """DESIGN §3: cancel/reject post voucher:V:held -> voucher:V. Without that posting the ledger keeps
    the value held while the voucher row says it is available, and the next reserve or void of it
    trips the ledger invariant (a 500)."""
    sme, voucher = issue(fresh_actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 60_000, 30_000)), 201)["id"]
    ledger = LedgerWatch(fresh_app)
    if action == "cancel":
        ok(sme.post(f"/redemptions/{rid}/cancel", json={}))
    else:
        ok(fresh_actors.officer("KS").post(f"/redemptions/{rid}/reject", json={"reason": "not delivered"}))
    entry = ledger.one("redemption.cancelled" if action == "cancel" else "redemption.rejected", redemption=rid)
    assert postings(entry) == [(f"voucher:{vid}:held", f"voucher:{vid}", 30_000)]
    assert balances(sme, vid) == (100_000, 0, 0)
    accounts = account_balances(fresh_app)
    assert (accounts[f"voucher:{vid}"], accounts[f"voucher:{vid}:held"]) == (100_000, 0)
    assert sum(accounts.values()) == 0
    # The released value can be spent again in full.
    rid2 = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 200_000, 100_000)), 201)["id"]
    ok(sme.post(f"/redemptions/{rid2}/cancel", json={}))
    ledger.new()
    # Voiding afterwards returns the whole face value to the budget.
    r = fresh_actors.officer("KS").post(f"/vouchers/{vid}/void", json={"reason": "closed"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert postings(ledger.one("voucher.voided", voucher=vid)) == [(f"voucher:{vid}", "budget:KS", 100_000)]


def test_a_voided_voucher_cannot_be_spent(fresh_actors, fresh_app):
    sme, voucher = issue(fresh_actors, "ent-ks-003", "KS", 100_000)
    ledger = LedgerWatch(fresh_app)
    ok(fresh_actors.officer("KS").post(f"/vouchers/{voucher['id']}/void", json={"reason": "fraud"}))
    assert postings(ledger.one("voucher.voided", voucher=voucher["id"])) == \
        [(f"voucher:{voucher['id']}", "budget:KS", 100_000)]
    with nothing_changes(fresh_app):
        r = sme.post("/redemptions", json=reservation(voucher["id"], "prv-sh-001", "TS-01", 20_000, 10_000))
        assert_rule(r, "voucher_active", "voided")
        assert_rule(fresh_actors.officer("KS").post(f"/vouchers/{voucher['id']}/void", json={"reason": "again"}),
                    "state_machine", "state machine")


# --- the rules of DESIGN §2, one by one ----------------------------------------------

def test_region_budget(fresh_app, fresh_actors):
    """Exhaust WJ's budget with grants that each respect the enterprise cap; the next grant is refused."""
    wj = fresh_actors.officer("WJ")
    region = ok(wj.get("/regions/WJ"))
    remaining, cap = region["budget_remaining_fen"], region["policy"]["enterprise_cap_fen"]
    assert 0 < remaining <= 30 * cap, "the seed budget should take a handful of grants to exhaust"
    while remaining:
        enterprise = ok(wj.post("/enterprises", json={"name": f"WJ enterprise {remaining}", "uscc": make_uscc("320509"),
                                                      "region": "WJ", "kind": "enterprise"}), 201)
        amount = min(cap, remaining)
        application = apply(fresh_actors.sme(enterprise["id"]), amount)
        ok(wj.post(f"/applications/{application['id']}/approve", json={}))
        remaining -= amount
    assert ok(wj.get("/regions/WJ"))["budget_remaining_fen"] == 0

    application = apply(fresh_actors.sme("ent-wj-001"), 1)  # far under its own cap
    with nothing_changes(fresh_app):
        assert_rule(wj.post(f"/applications/{application['id']}/approve", json={}), "region_budget", "budget")
    assert ok(wj.get(f"/applications/{application['id']}"))["status"] == "submitted"


def test_annual_caps_differ_for_enterprises_and_teams(fresh_app, fresh_actors):
    ks = fresh_actors.officer("KS")
    policy = ok(ks.get("/regions/KS"))["policy"]
    enterprise_cap, team_cap = policy["enterprise_cap_fen"], policy["team_cap_fen"]
    assert team_cap < enterprise_cap
    enterprise, team = fresh_actors.sme("ent-ks-003"), fresh_actors.sme("ent-ks-002")  # ent-ks-002 is a team

    # The same amount, just above the team cap: fine for an enterprise, refused for a team.
    ok(ks.post(f"/applications/{apply(enterprise, team_cap + 1)['id']}/approve", json={}))
    too_much = apply(team, team_cap + 1)
    with nothing_changes(fresh_app):
        body = assert_rule(ks.post(f"/applications/{too_much['id']}/approve", json={}), "annual_cap", "annual cap")
    assert str(team_cap) in body["detail"]

    # Each up to exactly its cap, then one fen more is refused.
    ok(ks.post(f"/applications/{apply(team, team_cap)['id']}/approve", json={}))
    ok(ks.post(f"/applications/{apply(enterprise, enterprise_cap - team_cap - 1)['id']}/approve", json={}))
    for sme in (team, enterprise):
        one_more = apply(sme, 1)
        with nothing_changes(fresh_app):
            assert_rule(ks.post(f"/applications/{one_more['id']}/approve", json={}), "annual_cap", "annual cap")


def test_validity_may_not_end_before_it_starts(app, actors):
    ks = actors.officer("KS")
    application = apply(actors.sme("ent-ks-003"), 10_000)
    with nothing_changes(app):
        assert_rule(ks.post(f"/applications/{application['id']}/approve", json={"valid_until": "2000-01-01"}),
                    "validity_window", "valid")
    voucher = ok(ks.post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    assert voucher["valid_from"] <= voucher["valid_until"]


def test_registry_codes_are_unique(app, actors):
    ks, sh = actors.officer("KS"), actors.officer("SH")
    with nothing_changes(app):
        # prv-ks-001's code, registered again (in the officer's own region).
        assert_rule(ks.post("/providers", json={"name": "Copy", "uscc": "9132058355122684XM", "region": "KS",
                                                "categories": ["rd"]}), "uscc_unique", "uscc")
        assert_rule(ks.post("/enterprises", json={"name": "Copy", "uscc": "91320583798312547Q", "region": "KS",
                                                  "kind": "enterprise"}), "uscc_unique", "uscc")
        assert_rule(sh.post("/catalog", json={"code": "TS-01", "category": "testing", "name_zh": "重复",
                                              "name_en": "Duplicate", "max_subsidy_ratio_bp": 5000}),
                    "catalog_code_unique", "unique")


def test_approved_amount_may_not_exceed_requested(app, actors):
    ks = actors.officer("KS")
    application = apply(actors.sme("ent-ks-003"), 100_000)
    with nothing_changes(app):
        assert_rule(ks.post(f"/applications/{application['id']}/approve", json={"amount_fen": 100_001}),
                    "approved_within_requested", "approved amount", "requested")
    decided = ok(ks.post(f"/applications/{application['id']}/approve", json={"amount_fen": 80_000}))
    assert decided["approved_fen"] == 80_000
    assert decided["voucher"]["face_fen"] == decided["voucher"]["available_fen"] == 80_000


@pytest.mark.parametrize("enterprise, region, provider, item, fee, limit", [
    pytest.param("ent-ks-003", "KS", "prv-sh-001", "TS-01", 10_000, 5_000, id="KS-50%-item-50%"),
    pytest.param("ent-ks-003", "KS", "prv-sh-001", "TS-03", 10_000, 3_000, id="KS-50%-item-30%"),
    pytest.param("ent-ks-003", "KS", "prv-sh-003", "IP-02", 10_000, 3_000, id="KS-50%-IP-02-30%"),
    pytest.param("ent-wj-001", "WJ", "prv-ks-002", "TS-01", 10_000, 4_000, id="WJ-policy-40%-item-50%"),
    pytest.param("ent-wj-001", "WJ", "prv-ks-002", "TS-03", 10_000, 3_000, id="WJ-policy-40%-item-30%"),
    pytest.param("ent-ks-003", "KS", "prv-sh-001", "TS-03", 10_003, 3_000, id="floor-not-round"),
])
def test_subsidy_ratio_is_the_stricter_of_item_and_policy(app, actors, enterprise, region, provider, item, fee,
                                                          limit):
    sme, voucher = issue(actors, enterprise, region, 100_000)
    with nothing_changes(app):
        r = sme.post("/redemptions", json=reservation(voucher["id"], provider, item, fee, limit + 1))
        assert_rule(r, "subsidy_ratio", "subsidy ratio")
    assert balances(sme, voucher["id"]) == (100_000, 0, 0)
    rid = ok(sme.post("/redemptions", json=reservation(voucher["id"], provider, item, fee, limit)), 201)["id"]
    # The claim is held to the same ratio: a lower fee must lower the amount.
    with nothing_changes(app):
        r = actors.provider(provider).post(f"/redemptions/{rid}/claim",
                                           json={"invoice_no": "INV-R", "service_fee_fen": fee - 1000,
                                                 "amount_fen": limit})
        assert_rule(r, "subsidy_ratio", "subsidy ratio")


def test_available_balance(app, actors):
    sme, voucher = issue(actors, "ent-ks-003", "KS", 10_000)
    vid = voucher["id"]
    ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 20_000, 6_000)), 201)
    with nothing_changes(app):
        assert_rule(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 20_000, 4_001)),
                    "available_balance", "available balance")
    ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 20_000, 4_000)), 201)
    assert balances(sme, vid) == (0, 10_000, 0)
    with nothing_changes(app):
        assert_rule(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 2, 1)),
                    "available_balance", "available balance")


def test_suspended_provider(fresh_app, fresh_actors):
    sme, voucher = issue(fresh_actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    sh = fresh_actors.officer("SH")
    ledger = LedgerWatch(fresh_app)
    with nothing_changes(fresh_app):  # prv-sh-005 is seeded suspended
        assert_rule(sme.post("/redemptions", json=reservation(vid, "prv-sh-005", "IP-01", 20_000, 10_000)),
                    "provider_active", "suspended")

    open_rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-004", "TS-01", 20_000, 10_000)), 201)["id"]
    ledger.one("redemption.reserved")
    assert ok(sh.post("/providers/prv-sh-004/suspend"))["status"] == "suspended"
    ledger.one("provider.suspended", provider="prv-sh-004")
    claim = {"invoice_no": "I", "service_fee_fen": 20_000, "amount_fen": 10_000}
    with nothing_changes(fresh_app):
        assert_rule(sme.post("/redemptions", json=reservation(vid, "prv-sh-004", "TS-01", 20_000, 10_000)),
                    "provider_active", "suspended")
        assert_rule(fresh_actors.provider("prv-sh-004").post(f"/redemptions/{open_rid}/claim", json=claim),
                    "provider_active", "suspended")
        assert_rule(sh.post("/providers/prv-sh-004/suspend"), "state_machine", "already")

    assert ok(sh.post("/providers/prv-sh-004/reinstate"))["status"] == "active"
    ledger.one("provider.reinstated", provider="prv-sh-004")
    add_evidence(fresh_actors.provider("prv-sh-004"), open_rid)
    ok(fresh_actors.provider("prv-sh-004").post(f"/redemptions/{open_rid}/claim", json=claim))


@pytest.mark.parametrize("provider, item", [("prv-sh-002", "TS-01"), ("prv-sh-003", "RD-01"),
                                            ("prv-ks-002", "IP-01")])
def test_provider_must_be_accredited_for_the_items_category(app, actors, provider, item):
    sme, voucher = issue(actors, "ent-ks-003", "KS", 100_000)
    with nothing_changes(app):
        assert_rule(sme.post("/redemptions", json=reservation(voucher["id"], provider, item, 20_000, 1_000)),
                    "provider_accredited", "accredit")


def test_related_party(app, actors):
    sme, voucher = issue(actors, "ent-ks-001", "KS", 100_000)  # ent-ks-001 shares an owner with prv-ks-004
    with nothing_changes(app):
        assert_rule(sme.post("/redemptions", json=reservation(voucher["id"], "prv-ks-004", "TS-01", 20_000, 1_000)),
                    "related_party", "related")
    # The same service at an unrelated provider is fine.
    ok(sme.post("/redemptions", json=reservation(voucher["id"], "prv-ks-002", "TS-01", 20_000, 1_000)), 201)


def test_inactive_catalogue_item(fresh_app, fresh_actors):
    sme, voucher = issue(fresh_actors, "ent-ks-003", "KS", 100_000)
    ledger = LedgerWatch(fresh_app)
    # A change of the shared catalogue is proposed, then approved by every other region.
    proposal = adopt_catalogue_change(fresh_actors, "PATCH", "/catalog/TS-02", {"active": False})
    appended = ledger.new()
    assert [e["kind"] for e in appended] == ["catalog.proposed", "catalog.proposal_approved",
                                             "catalog.proposal_approved", "catalog.item_updated"]
    entry = appended[-1]
    assert entry["refs"] == {"catalog_item": "TS-02", "catalog_proposal": proposal["id"]}
    assert entry["data"]["after"] == {"active": False}
    assert ok(sme.get("/catalog/TS-02"))["active"] is False
    with nothing_changes(fresh_app):
        assert_rule(sme.post("/redemptions", json=reservation(voucher["id"], "prv-sh-001", "TS-02", 20_000, 1_000)),
                    "catalog_item_active", "not active", "inactive")
    adopt_catalogue_change(fresh_actors, "PATCH", "/catalog/TS-02", {"active": True}, region="KS")
    ok(sme.post("/redemptions", json=reservation(voucher["id"], "prv-sh-001", "TS-02", 20_000, 1_000)), 201)


def test_void_with_an_open_redemption_is_refused(app, actors):
    sme, voucher = issue(actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    ks = actors.officer("KS")
    rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 20_000, 10_000)), 201)["id"]
    with nothing_changes(app):
        assert_rule(ks.post(f"/vouchers/{vid}/void", json={"reason": "x"}), "open_redemptions", "open redemption")
    assert ok(sme.get(f"/vouchers/{vid}"))["status"] == "active"
    # Once the redemption is settled with the provider, nothing is held and the voucher can be voided.
    add_evidence(actors.provider("prv-sh-001"), rid)
    ok(actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim",
                                          json={"invoice_no": unique_invoice(), "service_fee_fen": 20_000,
                                                "amount_fen": 10_000}))
    ok(sme.post(f"/redemptions/{rid}/confirm"))
    ok(ks.post(f"/redemptions/{rid}/approve"))
    ledger = LedgerWatch(app)
    voided = ok(ks.post(f"/vouchers/{vid}/void", json={"reason": "x"}))
    assert (voided["status"], voided["available_fen"], voided["redeemed_fen"]) == ("voided", 0, 10_000)
    assert postings(ledger.one("voucher.voided", voucher=vid)) == [(f"voucher:{vid}", "budget:KS", 90_000)]


def test_state_machine(app, actors):
    ks = actors.officer("KS")
    sme, voucher = issue(actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    provider = actors.provider("prv-sh-001")
    claim = {"invoice_no": "INV-S", "service_fee_fen": 20_000, "amount_fen": 10_000}

    def refused(response):
        assert_rule(response, "state_machine", "state machine")

    def reserve():
        return ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 20_000, 10_000)), 201)["id"]

    with nothing_changes(app):
        approved_application = voucher["application_id"]
        refused(ks.post(f"/applications/{approved_application}/approve", json={}))
        refused(ks.post(f"/applications/{approved_application}/reject", json={"reason": "late"}))
    rejected_application = apply(sme, 1_000)["id"]
    ok(ks.post(f"/applications/{rejected_application}/reject", json={"reason": "no budget line"}))
    with nothing_changes(app):
        refused(ks.post(f"/applications/{rejected_application}/approve", json={}))

    cancelled = reserve()
    ok(sme.post(f"/redemptions/{cancelled}/cancel", json={}))
    claimed = reserve()
    add_evidence(provider, claimed)
    ok(provider.post(f"/redemptions/{claimed}/claim", json=claim))
    redeemed = reserve()
    add_evidence(provider, redeemed)
    ok(provider.post(f"/redemptions/{redeemed}/claim", json={**claim, "invoice_no": "INV-S2"}))
    ok(sme.post(f"/redemptions/{redeemed}/confirm"))
    ok(ks.post(f"/redemptions/{redeemed}/approve"))
    state = balances(sme, vid)
    assert state == (80_000, 10_000, 10_000)

    with nothing_changes(app):
        refused(provider.post(f"/redemptions/{cancelled}/claim", json=claim))   # claim after cancel
        refused(sme.post(f"/redemptions/{cancelled}/cancel", json={}))          # cancel twice
        refused(ks.post(f"/redemptions/{cancelled}/reject", json={"reason": "x"}))
        refused(sme.post(f"/redemptions/{claimed}/cancel", json={}))            # cancel after claim
        refused(provider.post(f"/redemptions/{claimed}/claim", json=claim))     # claim twice
        refused(ks.post(f"/redemptions/{claimed}/approve"))                     # approve before confirm
        refused(ks.post(f"/redemptions/{redeemed}/approve"))                    # approve twice
        refused(ks.post(f"/redemptions/{redeemed}/reject", json={"reason": "x"}))
        refused(sme.post(f"/redemptions/{redeemed}/cancel", json={}))
        refused(sme.post(f"/redemptions/{redeemed}/confirm"))
    assert balances(sme, vid) == state


@pytest.mark.parametrize("stage", ["reserved", "claimed", "confirmed"])
def test_reject_by_the_issuing_region_releases_the_hold(app, actors, stage):
    sme, voucher = issue(actors, "ent-ks-003", "KS", 100_000)
    vid = voucher["id"]
    rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-sh-001", "TS-01", 40_000, 20_000)), 201)["id"]
    if stage in ("claimed", "confirmed"):
        add_evidence(actors.provider("prv-sh-001"), rid)
        ok(actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim",
                                              json={"invoice_no": unique_invoice(), "service_fee_fen": 30_000,
                                                    "amount_fen": 15_000}))
    if stage == "confirmed":
        ok(sme.post(f"/redemptions/{rid}/confirm"))
    assert balances(sme, vid)[2] == 0 and balances(sme, vid)[1] > 0
    with nothing_changes(app):  # the region that registered the provider is not the one that pays
        assert_problem(actors.officer("SH").post(f"/redemptions/{rid}/reject", json={"reason": "x"}), 403)
    ledger = LedgerWatch(app)
    rejected = ok(actors.officer("KS").post(f"/redemptions/{rid}/reject", json={"reason": "not delivered"}))
    assert rejected["status"] == "rejected" and rejected["reason"] == "not delivered"
    ledger.one("redemption.rejected", redemption=rid)
    assert balances(sme, vid) == (100_000, 0, 0)


def test_full_lifecycle_in_a_third_region(fresh_app, fresh_actors):
    """A WJ enterprise spends at a KS provider; WJ, not KS, approves and pays."""
    actors = fresh_actors
    wj, ks, sh = actors.officer("WJ"), actors.officer("KS"), actors.officer("SH")
    sme, provider = actors.sme("ent-wj-001"), actors.provider("prv-ks-002")
    ledger = LedgerWatch(fresh_app)

    application = apply(sme, 500_000)
    assert application["region"] == "WJ"
    assert ledger.one("application.submitted")["region"] == "WJ"
    with nothing_changes(fresh_app):
        assert_problem(ks.post(f"/applications/{application['id']}/approve", json={}), 404)
    voucher = ok(wj.post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    vid = voucher["id"]
    assert voucher["region"] == "WJ" and voucher["face_fen"] == voucher["available_fen"] == 500_000
    assert postings(ledger.one("voucher.issued", voucher=vid)) == [("budget:WJ", f"voucher:{vid}", 500_000)]

    # WJ's 40% policy is stricter than TS-01's 50%.
    with nothing_changes(fresh_app):
        assert_rule(sme.post("/redemptions", json=reservation(vid, "prv-ks-002", "TS-01", 100_000, 40_001)),
                    "subsidy_ratio", "subsidy ratio")
    rid = ok(sme.post("/redemptions", json=reservation(vid, "prv-ks-002", "TS-01", 100_000, 40_000)), 201)["id"]
    ledger.one("redemption.reserved", redemption=rid)
    add_evidence(provider, rid)
    assert [e["kind"] for e in ledger.new()] == ["redemption.document_added"] * 2
    ok(provider.post(f"/redemptions/{rid}/claim", json={"invoice_no": "WJ-1", "service_fee_fen": 90_000,
                                                         "amount_fen": 36_000}))
    ledger.one("redemption.claimed", redemption=rid)
    ok(sme.post(f"/redemptions/{rid}/confirm"))
    ledger.one("redemption.confirmed", redemption=rid)
    with nothing_changes(fresh_app):
        assert_problem(ks.post(f"/redemptions/{rid}/approve"), 403)  # KS sees it (its provider) but does not pay
        assert_problem(sh.post(f"/redemptions/{rid}/approve"), 404)  # SH is not involved at all
    assert ok(wj.post(f"/redemptions/{rid}/approve"))["status"] == "redeemed"
    entry = ledger.one("redemption.redeemed", redemption=rid)
    assert entry["region"] == "WJ"
    assert postings(entry) == [(f"voucher:{vid}:held", "payable:WJ:prv-ks-002", 36_000)]
    assert balances(sme, vid) == (464_000, 0, 36_000)
    accounts = account_balances(fresh_app)
    assert accounts["payable:WJ:prv-ks-002"] == 36_000
    assert accounts[f"voucher:{vid}"] == 464_000 and accounts[f"voucher:{vid}:held"] == 0
    assert sum(accounts.values()) == 0
