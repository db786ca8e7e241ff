"""Shared governance of the catalogue (DESIGN §8): POST /catalog and PATCH
/catalog/{code} propose a change (202), which takes effect only when officers of
VOUCHERS_CATALOGUE_QUORUM member regions (default `all`) have approved it, the
proposer's region counting as the first. Every state change leaves exactly one
entry of its kind, a refused request none."""
from __future__ import annotations

import json
import secrets

import pytest
from conftest import Actors, dispose, make_config
from helpers import adopt_catalogue_change, assert_problem, ledger_size, ok, propose_catalogue_change

from voucher_service import create_app

KINDS = ("catalog.proposed", "catalog.proposal_approved", "catalog.proposal_withdrawn", "catalog.item_added",
         "catalog.item_updated")


def new_code() -> str:
    return f"GV-{secrets.token_hex(3).upper()}"


def new_item(code: str, **changes) -> dict:
    return {"code": code, "category": "testing", "name_zh": "治理测试", "name_en": "Governance test",
            "max_subsidy_ratio_bp": 4000, **changes}


def entries(auditor, kind: str, proposal_id: str) -> list[dict]:
    return ok(auditor.get("/ledger/entries", query_string={"kind": kind, "ref": f"catalog_proposal:{proposal_id}",
                                                           "limit": 1000}))["items"]


def counts(auditor, proposal_id: str) -> dict[str, int]:
    return {kind: len(entries(auditor, kind, proposal_id)) for kind in KINDS}


def approve(officer, proposal_id):
    return officer.post(f"/catalog/proposals/{proposal_id}/approve")


def withdraw(officer, proposal_id):
    return officer.post(f"/catalog/proposals/{proposal_id}/withdraw")


def refused(app, response, status, rule=None):
    """A refusal is a problem, names its rule, and leaves the ledger as it was (checked by the caller)."""
    body = assert_problem(response, status)
    if rule is not None:
        assert body["rule"] == rule and body["type"] == f"urn:vouchers:problem:{rule}", body
    return body


@pytest.fixture(scope="module")
def officers(actors):
    return {region: actors.officer(region) for region in ("SH", "KS", "WJ")}


def voucher_of_ks_enterprise(actors) -> tuple:
    sme = actors.sme("ent-ks-003")
    application = ok(sme.post("/applications", json={"amount_fen": 1_000_000, "purpose": "governance"}), 201)
    voucher = ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]
    return sme, voucher["id"]


def reserve(sme, voucher_id, amount_fen, fee_fen=20_000, item="TS-01"):
    return sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": "prv-sh-001",
                                          "catalog_code": item, "service_fee_fen": fee_fen, "amount_fen": amount_fen})


def test_a_ratio_change_takes_effect_only_when_every_region_has_approved(fresh_app, fresh_actors):
    actors, app = fresh_actors, fresh_app
    sh, ks, wj, auditor = actors.officer("SH"), actors.officer("KS"), actors.officer("WJ"), actors.auditor()
    sme, voucher_id = voucher_of_ks_enterprise(actors)
    assert ok(sh.get("/catalog/TS-01"))["max_subsidy_ratio_bp"] == 5000

    before = ledger_size(app)
    proposal = propose_catalogue_change(sh, "PATCH", "/catalog/TS-01", {"max_subsidy_ratio_bp": 3000})
    assert ledger_size(app) == before + 1
    assert proposal["status"] == "open" and proposal["decided_at"] is None
    assert proposal["change"] == {"action": "update", "code": "TS-01", "fields": {"max_subsidy_ratio_bp": 3000}}
    assert proposal["region"] == "SH" and proposal["proposed_by"] and proposal["id"].startswith("cpr_")
    # The proposer's region is the first approval; all three members must approve.
    assert [a["region"] for a in proposal["approvals"]] == ["SH"]
    assert proposal["approvals"][0]["approved_by"] == proposal["proposed_by"]
    assert proposal["required_approvals"] == 3
    [entry] = entries(auditor, "catalog.proposed", proposal["id"])
    assert entry["region"] == "SH" and entry["refs"] == {"catalog_proposal": proposal["id"], "catalog_item": "TS-01"}
    assert entry["data"] == {"change": proposal["change"], "required_approvals": 3}

    # Not in effect: the item and a 50% reservation are as before.
    assert ok(sme.get("/catalog/TS-01"))["max_subsidy_ratio_bp"] == 5000
    ok(reserve(sme, voucher_id, 10_000), 201)

    assert ok(approve(ks, proposal["id"]))["approvals"][1]["region"] == "KS"
    before = ledger_size(app)
    # One approval per region: another KS officer, or the proposer's region again.
    refused(app, approve(actors.officer("KS"), proposal["id"]), 409, "catalog_already_approved")
    refused(app, approve(actors.officer("SH"), proposal["id"]), 409, "catalog_already_approved")
    assert ledger_size(app) == before
    current = ok(auditor.get(f"/catalog/proposals/{proposal['id']}"))
    assert current["status"] == "open" and [a["region"] for a in current["approvals"]] == ["SH", "KS"]
    assert ok(sme.get("/catalog/TS-01"))["max_subsidy_ratio_bp"] == 5000
    ok(reserve(sme, voucher_id, 10_000), 201)

    adopted = ok(approve(wj, proposal["id"]))
    assert adopted["status"] == "adopted" and adopted["decided_at"]
    assert [a["region"] for a in adopted["approvals"]] == ["SH", "KS", "WJ"]
    assert ok(sme.get("/catalog/TS-01"))["max_subsidy_ratio_bp"] == 3000
    body = refused(app, reserve(sme, voucher_id, 10_000), 409, "subsidy_ratio")
    assert "30%" in body["detail"]
    ok(reserve(sme, voucher_id, 6_000), 201)

    assert counts(auditor, proposal["id"]) == {"catalog.proposed": 1, "catalog.proposal_approved": 2,
                                               "catalog.proposal_withdrawn": 0, "catalog.item_added": 0,
                                               "catalog.item_updated": 1}
    [updated] = entries(auditor, "catalog.item_updated", proposal["id"])
    assert updated["region"] == "WJ", "recorded under the authority of the approval that adopted it"
    assert updated["data"] == {"before": {"max_subsidy_ratio_bp": 5000}, "after": {"max_subsidy_ratio_bp": 3000}}
    last = entries(auditor, "catalog.proposal_approved", proposal["id"])[-1]
    assert last["region"] == "WJ" and last["data"]["status"] == "adopted"

    # Decided: neither approved nor withdrawn again.
    before = ledger_size(app)
    refused(app, approve(actors.officer("KS"), proposal["id"]), 409, "state_machine")
    refused(app, withdraw(sh, proposal["id"]), 409, "state_machine")
    assert ledger_size(app) == before


def test_withdrawal_by_the_proposing_region_only(app, actors, officers):
    auditor = actors.auditor()
    code = new_code()
    proposal = propose_catalogue_change(officers["KS"], "POST", "/catalog", new_item(code))
    before = ledger_size(app)
    body = refused(app, withdraw(officers["SH"], proposal["id"]), 403)
    assert "KS" in body["detail"]
    refused(app, withdraw(actors.sme("ent-ks-003"), proposal["id"]), 403)
    refused(app, withdraw(officers["KS"], "cpr_doesnotexist"), 404)
    assert ledger_size(app) == before

    ok(approve(officers["SH"], proposal["id"]))
    withdrawn = ok(withdraw(actors.officer("KS"), proposal["id"]))  # any officer of the proposing region
    assert withdrawn["status"] == "withdrawn" and withdrawn["decided_at"]
    assert withdrawn["required_approvals"] == 3
    [entry] = entries(auditor, "catalog.proposal_withdrawn", proposal["id"])
    assert entry["region"] == "KS" and entry["data"]["approved_regions"] == ["KS", "SH"]

    before = ledger_size(app)
    refused(app, approve(officers["WJ"], proposal["id"]), 409, "state_machine")
    refused(app, withdraw(officers["KS"], proposal["id"]), 409, "state_machine")
    assert ledger_size(app) == before
    assert_problem(auditor.get(f"/catalog/{code}"), 404)
    # Withdrawn, the code is free for a new proposal.
    again = propose_catalogue_change(officers["WJ"], "POST", "/catalog", new_item(code))
    assert again["status"] == "open"
    assert counts(auditor, proposal["id"]) == {"catalog.proposed": 1, "catalog.proposal_approved": 1,
                                               "catalog.proposal_withdrawn": 1, "catalog.item_added": 0,
                                               "catalog.item_updated": 0}


def test_a_created_item_is_usable_once_adopted(app, actors, officers):
    auditor = actors.auditor()
    code = new_code()
    proposal = propose_catalogue_change(officers["WJ"], "POST", "/catalog", new_item(code, max_subsidy_ratio_bp=2500))
    assert proposal["change"] == {"action": "create", "code": code, "fields": {
        "category": "testing", "name_zh": "治理测试", "name_en": "Governance test", "max_subsidy_ratio_bp": 2500,
        "active": True}}
    assert_problem(auditor.get(f"/catalog/{code}"), 404)
    sme, voucher_id = voucher_of_ks_enterprise(actors)
    assert_problem(reserve(sme, voucher_id, 1_000, item=code), 404)

    ok(approve(officers["SH"], proposal["id"]))
    assert_problem(auditor.get(f"/catalog/{code}"), 404)
    adopted = ok(approve(officers["KS"], proposal["id"]))
    assert adopted["status"] == "adopted"
    item = ok(auditor.get(f"/catalog/{code}"))
    assert (item["category"], item["max_subsidy_ratio_bp"], item["active"]) == ("testing", 2500, True)
    refused(app, reserve(sme, voucher_id, 5_001, item=code), 409, "subsidy_ratio")
    ok(reserve(sme, voucher_id, 5_000, item=code), 201)
    [added] = entries(auditor, "catalog.item_added", proposal["id"])
    assert added["refs"] == {"catalog_item": code, "catalog_proposal": proposal["id"]}
    assert added["region"] == "KS"
    # Listed among the adopted proposals, by code and by status.
    listed = ok(auditor.get("/catalog/proposals", query_string={"code": code}))["items"]
    assert [p["id"] for p in listed] == [proposal["id"]]
    adopted_ids = {p["id"] for p in ok(actors.sme("ent-ks-003").get(
        "/catalog/proposals", query_string={"status": "adopted", "limit": 100}))["items"]}
    assert proposal["id"] in adopted_ids


def test_proposals_are_checked_as_the_change_itself(app, actors, officers):
    auditor = actors.auditor()
    code = new_code()
    first = propose_catalogue_change(officers["SH"], "POST", "/catalog", new_item(code))
    before = ledger_size(app)
    # Another open proposal for the same code, as a creation or (once it exists) a change.
    body = refused(app, officers["KS"].post("/catalog", json=new_item(code, name_en="Other")), 409,
                   "catalog_proposal_open")
    assert first["id"] in body["detail"]
    # The checks of the change itself.
    refused(app, officers["KS"].post("/catalog", json=new_item("TS-01")), 409, "catalog_code_unique")
    problem = refused(app, officers["KS"].post("/catalog", json=new_item(new_code(), category="astrology")), 422)
    assert "category" in problem["errors"]
    refused(app, officers["KS"].patch("/catalog/NO-SUCH", json={"active": False}), 404)
    refused(app, officers["KS"].patch("/catalog/TS-03", json={"category": "astrology"}), 422)
    refused(app, officers["KS"].patch("/catalog/TS-03", json={"max_subsidy_ratio_bp": 3000}), 409,
            "catalog_change_empty")
    refused(app, officers["KS"].patch("/catalog/TS-03", json={}), 409, "catalog_change_empty")
    refused(app, officers["KS"].patch("/catalog/TS-03", json={"max_subsidy_ratio_bp": 0}), 422)
    assert ledger_size(app) == before

    ok(approve(officers["KS"], first["id"]))
    ok(approve(officers["WJ"], first["id"]))
    change = propose_catalogue_change(officers["KS"], "PATCH", f"/catalog/{code}", {"active": False})
    refused(app, officers["WJ"].patch(f"/catalog/{code}", json={"name_en": "Renamed"}), 409, "catalog_proposal_open")
    ok(withdraw(officers["KS"], change["id"]))
    assert ok(auditor.get(f"/catalog/{code}"))["active"] is True


def test_every_role_with_a_token_reads_the_proposals(app, actors, officers):
    proposal = propose_catalogue_change(officers["SH"], "POST", "/catalog", new_item(new_code()))
    for client in (actors.sme("ent-sh-001"), actors.provider("prv-ks-002"), actors.finance("WJ"), actors.auditor(),
                   actors.client("admin"), officers["KS"]):
        assert ok(client.get(f"/catalog/proposals/{proposal['id']}"))["id"] == proposal["id"]
        listed = ok(client.get("/catalog/proposals", query_string={"status": "open", "limit": 100}))
        assert all(p["status"] == "open" for p in listed["items"])
    assert_problem(actors.anonymous().get(f"/catalog/proposals/{proposal['id']}"), 401)
    assert_problem(officers["KS"].get("/catalog/proposals/cpr_nope"), 404)
    assert_problem(officers["KS"].get("/catalog/proposals?status=pending"), 422)


def test_a_region_that_joins_while_a_proposal_is_open_must_approve_it_too(fresh_app, fresh_actors):
    actors = fresh_actors
    code = new_code()
    proposal = propose_catalogue_change(actors.officer("SH"), "POST", "/catalog", new_item(code))
    ok(approve(actors.officer("KS"), proposal["id"]))
    assert ok(actors.auditor().get(f"/catalog/proposals/{proposal['id']}"))["required_approvals"] == 3

    join_region(actors, "NT")
    assert ok(actors.auditor().get(f"/catalog/proposals/{proposal['id']}"))["required_approvals"] == 4
    still_open = ok(approve(actors.officer("WJ"), proposal["id"]))
    assert still_open["status"] == "open" and still_open["required_approvals"] == 4
    assert_problem(actors.auditor().get(f"/catalog/{code}"), 404)
    adopted = ok(approve(actors.officer("NT"), proposal["id"]))
    assert adopted["status"] == "adopted" and adopted["required_approvals"] == 4
    assert ok(actors.auditor().get(f"/catalog/{code}"))["code"] == code
    last = entries(actors.auditor(), "catalog.proposal_approved", proposal["id"])[-1]
    assert last["region"] == "NT" and last["data"]["required_approvals"] == 4


def join_region(actors, code: str) -> None:
    """A new member region, as the operator adds one (POST /regions)."""
    ok(actors.client("admin").post("/regions", json={
        "code": code, "name_zh": "南通市", "name_en": "Nantong",
        "policy": {"effective_from": "2021-01-01", "enterprise_cap_fen": 20_000_000, "team_cap_fen": 5_000_000,
                   "subsidy_ratio_bp": 5000, "validity_days": 365, "payout_cycle": "monthly", "budget_fen": 0}}),
       201)


@pytest.fixture
def quorum_app(databases, request):
    url = databases.clone()
    application = create_app({**make_config(url, databases.keys_dir), "VOUCHERS_CATALOGUE_QUORUM": request.param})
    yield application
    dispose(application)
    databases.drop(url)


@pytest.mark.parametrize("quorum_app", ["2"], indirect=True)
def test_a_quorum_of_two_adopts_at_the_second_region(quorum_app):
    actors = Actors(quorum_app)
    code = new_code()
    proposal = propose_catalogue_change(actors.officer("KS"), "POST", "/catalog", new_item(code))
    assert proposal["required_approvals"] == 2 and proposal["status"] == "open"
    adopted = ok(approve(actors.officer("WJ"), proposal["id"]))
    assert adopted["status"] == "adopted" and len(adopted["approvals"]) == 2
    assert ok(actors.auditor().get(f"/catalog/{code}"))["code"] == code
    # A third region comes too late: the proposal is decided.
    assert_problem(approve(actors.officer("SH"), proposal["id"]), 409)


@pytest.mark.parametrize("quorum_app", [1], indirect=True)
def test_a_quorum_of_one_adopts_at_once(quorum_app):
    actors = Actors(quorum_app)
    code = new_code()
    size = ledger_size(quorum_app)
    proposal = propose_catalogue_change(actors.officer("SH"), "POST", "/catalog", new_item(code))
    assert proposal["status"] == "adopted" and proposal["required_approvals"] == 1 and proposal["decided_at"]
    assert ok(actors.auditor().get(f"/catalog/{code}"))["code"] == code
    # One entry for the proposal, one for the item it adopted: the response names the last.
    assert ledger_size(quorum_app) == size + 2
    assert proposal["ledger"]["seq"] == size + 1


@pytest.mark.parametrize("quorum", ["0", "-1", "some", "2.5", "", "二", True])
def test_an_invalid_quorum_stops_the_app_from_starting(databases, quorum):
    with pytest.raises(ValueError, match="VOUCHERS_CATALOGUE_QUORUM must be 'all' or a positive integer"):
        create_app({**make_config("sqlite://", databases.keys_dir), "VOUCHERS_CATALOGUE_QUORUM": quorum})


def test_the_quorum_comes_from_the_environment(monkeypatch, databases):
    monkeypatch.setenv("VOUCHERS_CATALOGUE_QUORUM", "3")
    assert create_app(make_config("sqlite://", databases.keys_dir)).config["VOUCHERS_CATALOGUE_QUORUM"] == 3
    monkeypatch.setenv("VOUCHERS_CATALOGUE_QUORUM", "ALL")
    assert create_app(make_config("sqlite://", databases.keys_dir)).config["VOUCHERS_CATALOGUE_QUORUM"] == "all"
    monkeypatch.setenv("VOUCHERS_CATALOGUE_QUORUM", "none")
    with pytest.raises(ValueError, match="not 'none'"):
        create_app(make_config("sqlite://", databases.keys_dir))


def test_the_helper_adopts_whatever_the_quorum(app, actors):
    code = new_code()
    adopt_catalogue_change(actors, "POST", "/catalog", new_item(code), region="KS")
    adopted = adopt_catalogue_change(actors, "PATCH", f"/catalog/{code}", {"name_en": "Renamed"})
    assert adopted["status"] == "adopted"
    assert ok(actors.auditor().get(f"/catalog/{code}"))["name_en"] == "Renamed"


def test_the_categories_are_listed_with_their_names_for_every_role(actors):
    from conftest import REPO
    with open(f"{REPO}/seeds/catalog.json", encoding="utf-8") as seeds:
        seeded = json.load(seeds)["categories"]
    listed = ok(actors.provider("prv-sh-001").get("/catalog/categories"))["items"]
    assert listed == sorted(seeded, key=lambda category: category["code"])
    items = ok(actors.sme("ent-ks-003").get("/catalog", query_string={"limit": 100}))["items"]
    assert {item["category"] for item in items} <= {category["code"] for category in listed}
