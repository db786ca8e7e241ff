"""Review queues and voucher validity (DESIGN §8, issue 13 items 1 and 6): the officer's
queues of applications and redemptions, the policy's validity at approval, extending a
voucher, and `vouchers expire --dry-run`.

A refused request changes nothing: each 409 here is checked against the ledger size and
the voucher as it was.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from helpers import add_evidence, SHANGHAI, assert_problem, assert_rule, ledger_size, ok
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.models import Application, LedgerEntry, Redemption

KS_VALIDITY_DAYS = 365  # seeds/regions.json, KS's policy in effect
WJ_VALIDITY_DAYS = 180


def today() -> date:
    return datetime.now(SHANGHAI).date()


def submit(sme, amount_fen=10_000, purpose="review queue"):
    return ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": purpose}), 201)


def issue(sme, officer, amount_fen=10_000, **approval):
    application = submit(sme, amount_fen)
    return ok(officer.post(f"/applications/{application['id']}/approve", json=approval))["voucher"]


def reserve(sme, voucher_id, provider_id="prv-ks-002", amount_fen=1_000):
    return ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": provider_id,
                                             "catalog_code": "TS-01", "service_fee_fen": 2 * amount_fen,
                                             "amount_fen": amount_fen}), 201)


def ids(client, path, **query) -> set[str]:
    """Every id a list returns for this query, through all its pages."""
    seen, query = set(), {"limit": 100, **query}
    while True:
        body = ok(client.get(path, query_string=query))
        seen |= {item["id"] for item in body["items"]}
        if body["next_cursor"] is None:
            return seen
        query["cursor"] = body["next_cursor"]


def set_time(app, model, row_id: str, column: str, moment: str) -> None:
    with app.app_context(), Session(get_engine()) as session:
        row = session.get(model, row_id)
        setattr(row, column, moment)
        session.add(row)
        session.commit()


def last_entry(app) -> dict:
    with app.app_context(), Session(get_engine()) as session:
        row = session.exec(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
        return json.loads(row.canonical)



# --- the application review queue --------------------------------------------------------

@pytest.fixture(scope="module")
def queue(app, actors):
    """Applications in KS (two enterprises) and SH; one KS application decided."""
    ks3, ks2, sh1 = actors.sme("ent-ks-003"), actors.sme("ent-ks-002"), actors.sme("ent-sh-001")
    officer = actors.officer("KS")
    made = {"ks3_a": submit(ks3), "ks3_b": submit(ks3), "ks2": submit(ks2), "sh1": submit(sh1)}
    made["ks3_approved"] = submit(ks3)
    ok(officer.post(f"/applications/{made['ks3_approved']['id']}/approve", json={}))
    return {name: application["id"] for name, application in made.items()}


def test_the_officer_queue_is_its_region_awaiting_decision(actors, queue):
    pending = ids(actors.officer("KS"), "/applications", status="submitted")
    assert {queue["ks3_a"], queue["ks3_b"], queue["ks2"]} <= pending
    assert queue["sh1"] not in pending and queue["ks3_approved"] not in pending
    assert queue["ks3_approved"] in ids(actors.officer("KS"), "/applications", status="approved")
    assert queue["sh1"] in ids(actors.officer("SH"), "/applications", status="submitted")
    assert not {queue["ks3_a"], queue["ks2"]} & ids(actors.officer("SH"), "/applications")


def test_each_role_lists_what_it_may_read(actors, queue):
    everything = ids(actors.auditor(), "/applications")
    assert set(queue.values()) <= everything
    principals = {"sme ks3": actors.sme("ent-ks-003"), "sme sh1": actors.sme("ent-sh-001"),
                  "officer KS": actors.officer("KS"), "officer WJ": actors.officer("WJ"),
                  "finance KS": actors.finance("KS"), "admin": actors.client("admin")}
    for name, client in principals.items():
        listed = ids(client, "/applications")
        readable = {i for i in everything if client.get(f"/applications/{i}").status_code == 200}
        assert listed == readable, name
    assert ids(principals["sme ks3"], "/applications") >= {queue["ks3_a"], queue["ks3_b"]}
    assert queue["ks2"] not in ids(principals["sme ks3"], "/applications")
    assert_problem(actors.provider("prv-sh-001").get("/applications"), 403)
    assert_problem(actors.anonymous().get("/applications"), 401)


def test_filter_by_enterprise_and_page(actors, queue):
    officer = actors.officer("KS")
    mine = ids(officer, "/applications", enterprise_id="ent-ks-003", status="submitted")
    assert {queue["ks3_a"], queue["ks3_b"]} <= mine and queue["ks2"] not in mine
    # Another region's enterprise is not a way round the region filter.
    assert ids(officer, "/applications", enterprise_id="ent-sh-001") == set()
    first = ok(officer.get("/applications", query_string={"limit": 1, "enterprise_id": "ent-ks-003"}))
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = ok(officer.get("/applications", query_string={"limit": 1, "enterprise_id": "ent-ks-003",
                                                           "cursor": first["next_cursor"]}))
    assert second["items"][0]["id"] > first["items"][0]["id"]


def test_submitted_dates_are_local_days_in_shanghai(app, actors):
    officer, sme = actors.officer("KS"), actors.sme("ent-ks-001")
    # 00:30 on 1 April in Shanghai is still 31 March in UTC.
    early = submit(sme)["id"]
    set_time(app, Application, early, "submitted_at", "2026-03-31T16:30:00.000000Z")
    # 23:59 on 31 March in Shanghai.
    late = submit(sme)["id"]
    set_time(app, Application, late, "submitted_at", "2026-03-31T15:59:59.999999Z")

    def listed(**query):
        return ids(officer, "/applications", enterprise_id="ent-ks-001", **query) & {early, late}

    assert listed(submitted_from="2026-04-01", submitted_to="2026-04-01") == {early}
    assert listed(submitted_from="2026-03-31", submitted_to="2026-03-31") == {late}
    assert listed(submitted_from="2026-03-31") == {early, late}
    assert listed(submitted_to="2026-03-30") == set()
    assert listed(submitted_from="2026-04-02") == set()
    now = submit(sme)["id"]
    assert now in ids(officer, "/applications", submitted_from=today().isoformat(), submitted_to=today().isoformat())


@pytest.mark.parametrize("query, field", [
    ({"status": "pending"}, "status"),
    ({"submitted_from": "2026-13-01"}, "submitted_from"),
    ({"submitted_to": "01/04/2026"}, "submitted_to"),
    ({"submitted_from": "0001-01-01"}, "submitted_from"),
    ({"submitted_to": "9999-12-31"}, "submitted_to"),
    ({"submitted_from": "2026-04-02", "submitted_to": "2026-04-01"}, "submitted_to"),
    ({"enterprise_id": "x" * 41}, "enterprise_id"),
    ({"limit": "0"}, "limit"),
    ({"cursor": "not a cursor"}, "cursor"),
])
def test_invalid_queue_filters_are_422(actors, query, field):
    body = assert_problem(actors.officer("KS").get("/applications", query_string=query), 422)
    assert field in json.dumps(body.get("errors", {})), body


# --- the redemption review queue -----------------------------------------------------------

def test_the_officer_finds_confirmed_redemptions_by_provider_enterprise_and_day(app, actors):
    officer, sme3, sme2 = actors.officer("KS"), actors.sme("ent-ks-003"), actors.sme("ent-ks-002")
    voucher3, voucher2 = issue(sme3, officer), issue(sme2, officer)
    at_ks = reserve(sme3, voucher3["id"], "prv-ks-002")["id"]
    at_sh = reserve(sme3, voucher3["id"], "prv-sh-001")["id"]
    other = reserve(sme2, voucher2["id"], "prv-ks-002")["id"]
    for redemption_id, provider in ((at_ks, "prv-ks-002"), (at_sh, "prv-sh-001")):
        add_evidence(actors.provider(provider), redemption_id)
        ok(actors.provider(provider).post(f"/redemptions/{redemption_id}/claim",
                                          json={"invoice_no": "INV-Q", "service_fee_fen": 2_000, "amount_fen": 1_000}))
        ok(sme3.post(f"/redemptions/{redemption_id}/confirm"))
    confirmed = ids(officer, "/redemptions", status="confirmed")
    assert {at_ks, at_sh} <= confirmed and other not in confirmed
    assert ids(officer, "/redemptions", status="confirmed", provider_id="prv-sh-001") & {at_ks, at_sh} == {at_sh}
    assert ids(officer, "/redemptions", enterprise_id="ent-ks-002") & {at_ks, at_sh, other} == {other}
    sh = actors.officer("SH")  # reads the claim at its provider; KS, the issuer, decides it
    assert at_sh in ids(sh, "/redemptions", status="confirmed")
    assert at_sh not in ids(sh, "/redemptions", status="confirmed", region="SH")
    assert {at_ks, at_sh} <= ids(officer, "/redemptions", status="confirmed", region="KS")
    set_time(app, Redemption, at_ks, "reserved_at", "2026-03-31T16:30:00.000000Z")  # 1 April, Shanghai
    assert ids(officer, "/redemptions", reserved_from="2026-04-01", reserved_to="2026-04-01") == {at_ks}
    day = today().isoformat()
    assert at_ks not in ids(officer, "/redemptions", reserved_from=day, reserved_to=day)
    assert {at_sh, other} <= ids(officer, "/redemptions", reserved_from=day, reserved_to=day)


@pytest.mark.parametrize("query, field", [
    ({"reserved_from": "2026-02-30"}, "reserved_from"),
    ({"reserved_from": "2026-04-02", "reserved_to": "2026-04-01"}, "reserved_to"),
    ({"provider_id": "p" * 41}, "provider_id"),
    ({"status": "approved"}, "status"),
])
def test_invalid_redemption_filters_are_422(actors, query, field):
    body = assert_problem(actors.officer("KS").get("/redemptions", query_string=query), 422)
    assert field in json.dumps(body.get("errors", {})), body


# --- validity at approval --------------------------------------------------------------------

def test_approval_may_grant_the_policys_validity_and_not_a_day_more(app, actors):
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    last_day = today() + timedelta(days=KS_VALIDITY_DAYS - 1)
    application = submit(sme)
    size = ledger_size(app)
    body = assert_rule(officer.post(f"/applications/{application['id']}/approve",
                                    json={"valid_until": (last_day + timedelta(days=1)).isoformat()}),
                       "validity_exceeds_policy")
    assert last_day.isoformat() in body["detail"]
    assert ledger_size(app) == size
    assert ok(sme.get(f"/applications/{application['id']}"))["status"] == "submitted"
    voucher = ok(officer.post(f"/applications/{application['id']}/approve",
                              json={"valid_until": last_day.isoformat()}))["voucher"]
    assert voucher["valid_until"] == last_day.isoformat()
    # Without valid_until the policy's full validity is granted.
    assert issue(sme, officer)["valid_until"] == last_day.isoformat()


# --- extending a voucher ---------------------------------------------------------------------

def test_the_issuing_officer_extends_a_voucher_and_the_ledger_records_it(app, actors):
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    voucher = issue(sme, officer, valid_until=(today() + timedelta(days=30)).isoformat())
    end = date.fromisoformat(voucher["valid_until"])
    new_end = end + timedelta(days=KS_VALIDITY_DAYS)  # the most the policy allows
    size = ledger_size(app)
    extended = ok(officer.post(f"/vouchers/{voucher['id']}/extend",
                               json={"valid_until": new_end.isoformat(), "reason": "lab delayed the tests"}))
    assert extended["valid_until"] == new_end.isoformat() and extended["status"] == "active"
    assert extended["ledger"]["seq"] == size and ledger_size(app) == size + 1
    entry = last_entry(app)
    assert entry["kind"] == "voucher.extended" and entry["region"] == "KS" and entry["postings"] == []
    assert entry["refs"] == {"voucher": voucher["id"], "enterprise": "ent-ks-003"}
    assert entry["data"] == {"before": end.isoformat(), "after": new_end.isoformat(),
                             "reason": "lab delayed the tests"}
    assert ok(sme.get(f"/vouchers/{voucher['id']}"))["valid_until"] == new_end.isoformat()
    # The allowance counts from the new end: a second extension may go as far again.
    further = new_end + timedelta(days=KS_VALIDITY_DAYS)
    assert ok(officer.post(f"/vouchers/{voucher['id']}/extend",
                           json={"valid_until": further.isoformat(), "reason": "again"}))["valid_until"] \
        == further.isoformat()


def test_an_extension_is_refused_beyond_the_policy_or_not_later(app, actors):
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    voucher = issue(sme, officer, valid_until=(today() + timedelta(days=10)).isoformat())
    end = date.fromisoformat(voucher["valid_until"])
    size = ledger_size(app)
    cases = [(end + timedelta(days=KS_VALIDITY_DAYS + 1), "validity_exceeds_policy"),
             (date(9999, 12, 31), "validity_exceeds_policy"),
             (end, "extension_after_current_end"),
             (end - timedelta(days=1), "extension_after_current_end")]
    for valid_until, rule in cases:
        assert_rule(officer.post(f"/vouchers/{voucher['id']}/extend",
                                 json={"valid_until": valid_until.isoformat(), "reason": "x"}), rule)
    assert ledger_size(app) == size
    assert ok(sme.get(f"/vouchers/{voucher['id']}"))["valid_until"] == end.isoformat()


def test_only_active_or_exhausted_vouchers_are_extended(app, actors):
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    voided = issue(sme, officer)
    ok(officer.post(f"/vouchers/{voided['id']}/void", json={"reason": "fraud"}))
    size = ledger_size(app)
    later = (date.fromisoformat(voided["valid_until"]) + timedelta(days=1)).isoformat()
    assert_rule(officer.post(f"/vouchers/{voided['id']}/extend", json={"valid_until": later, "reason": "x"}),
                "voucher_extendable")
    assert ledger_size(app) == size
    # Spent in full: exhausted, and value released later could be spent again, so it may be extended.
    spent = issue(sme, officer, amount_fen=1_000)
    redemption = reserve(sme, spent["id"], amount_fen=1_000)
    add_evidence(actors.provider("prv-ks-002"), redemption['id'])
    ok(actors.provider("prv-ks-002").post(f"/redemptions/{redemption['id']}/claim",
                                          json={"invoice_no": "INV-X", "service_fee_fen": 2_000,
                                                "amount_fen": 1_000}))
    ok(sme.post(f"/redemptions/{redemption['id']}/confirm"))
    ok(officer.post(f"/redemptions/{redemption['id']}/approve"))
    assert ok(sme.get(f"/vouchers/{spent['id']}"))["status"] == "exhausted"
    later = (date.fromisoformat(spent["valid_until"]) + timedelta(days=1)).isoformat()
    extended = ok(officer.post(f"/vouchers/{spent['id']}/extend", json={"valid_until": later, "reason": "x"}))
    assert extended["status"] == "exhausted" and extended["valid_until"] == later


def test_who_may_extend(app, actors):
    voucher = issue(actors.sme("ent-ks-003"), actors.officer("KS"))
    body = {"valid_until": (date.fromisoformat(voucher["valid_until"]) + timedelta(days=1)).isoformat(),
            "reason": "x"}
    path = f"/vouchers/{voucher['id']}/extend"
    size = ledger_size(app)
    assert_problem(actors.officer("SH").post(path, json=body), 404)  # may not know it exists
    assert_problem(actors.sme("ent-ks-003").post(path, json=body), 403)
    assert_problem(actors.finance("KS").post(path, json=body), 403)
    assert_problem(actors.auditor().post(path, json=body), 403)
    assert_problem(actors.officer("KS").post("/vouchers/vch_nope/extend", json=body), 404)
    assert ledger_size(app) == size


@pytest.mark.parametrize("body, field", [
    ({"reason": "x"}, "valid_until"),
    ({"valid_until": "2027-02-30", "reason": "x"}, "valid_until"),
    ({"valid_until": "2027-01-01"}, "reason"),
    ({"valid_until": "2027-01-01", "reason": ""}, "reason"),
    ({"valid_until": "2027-01-01", "reason": "x", "face_fen": 1}, "face_fen"),
])
def test_a_bad_extension_body_is_422(actors, body, field):
    voucher = issue(actors.sme("ent-ks-003"), actors.officer("KS"))
    problem = assert_problem(actors.officer("KS").post(f"/vouchers/{voucher['id']}/extend", json=body), 422)
    assert field in json.dumps(problem.get("errors", {})), problem


# --- vouchers expire --dry-run -----------------------------------------------------------------

def test_expire_dry_run_lists_and_changes_nothing(fresh_app, fresh_actors):
    sme, officer = fresh_actors.sme("ent-wj-001"), fresh_actors.officer("WJ")
    soon = issue(sme, officer, valid_until=(today() + timedelta(days=5)).isoformat())
    later = issue(sme, officer)
    assert later["valid_until"] == (today() + timedelta(days=WJ_VALIDITY_DAYS - 1)).isoformat()
    as_of = (today() + timedelta(days=6)).isoformat()
    runner = fresh_app.test_cli_runner()
    size = ledger_size(fresh_app)
    dry = runner.invoke(args=["expire", "--as-of", as_of, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert soon["id"] in dry.output and later["id"] not in dry.output
    assert "1 voucher(s) would expire" in dry.output and "nothing changed" in dry.output
    assert ledger_size(fresh_app) == size
    assert ok(sme.get(f"/vouchers/{soon['id']}"))["status"] == "active"
    assert ok(sme.get(f"/vouchers/{soon['id']}"))["available_fen"] == soon["face_fen"]
    # The real run then expires exactly what the dry run listed.
    real = runner.invoke(args=["expire", "--as-of", as_of])
    assert real.exit_code == 0 and "1 voucher(s) expired" in real.output and soon["id"] in real.output
    assert ledger_size(fresh_app) == size + 1
    assert ok(sme.get(f"/vouchers/{soon['id']}"))["status"] == "expired"
    assert ok(sme.get(f"/vouchers/{later['id']}"))["status"] == "active"
