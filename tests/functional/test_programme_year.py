"""A programme year (DESIGN §8): member regions added at run time, policies
adopted for the future only, budgets funded per fiscal year, and what happens
at the turn of the year: caps count the new year, unspent budget carries over."""
from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone

import pytest
from helpers import SHANGHAI, account_balances, assert_problem, assert_rule, ledger_size, nothing_changes, ok, published_checkpoint

from voucher_service.programme import writes

POLICY = {"effective_from": "2026-01-01", "enterprise_cap_fen": 20_000_000, "team_cap_fen": 5_000_000,
          "subsidy_ratio_bp": 5000, "validity_days": 365, "payout_cycle": "monthly", "budget_fen": 100_000_000}


def region_body(code="HZ", **policy):
    return {"code": code, "name_zh": "杭州", "name_en": "Hangzhou", "policy": {**POLICY, **policy}}


def today_local() -> date:
    return datetime.now(SHANGHAI).date()


def entries(client, kind, region=None):
    query = f"/ledger/entries?kind={kind}&limit=100" + (f"&region={region}" if region else "")
    return ok(client.get(query))["items"]


def at(moment: datetime):
    return lambda: moment.astimezone(timezone.utc)


# --- new member regions ------------------------------------------------------------------

def test_a_new_region_is_registered_with_its_key_policy_and_budget(fresh_app, fresh_actors):
    admin, auditor = fresh_actors.client("admin"), fresh_actors.auditor()
    response = admin.post("/regions", json=region_body())
    region = ok(response, 201)
    assert response.headers["Location"].endswith("/api/v1/regions/HZ")
    assert (region["code"], region["currency"], region["timezone"]) == ("HZ", "CNY", "Asia/Shanghai")
    assert region["policy"]["effective_from"] == "2026-01-01" and region["budget_remaining_fen"] == 100_000_000

    kinds = [e["kind"] for e in ok(auditor.get("/ledger/entries?region=HZ"))["items"]]
    assert kinds == ["region.registered", "policy.adopted", "budget.funded"]
    funded = entries(auditor, "budget.funded", "HZ")[0]
    assert funded["postings"] == [{"source": "treasury:HZ", "destination": "budget:HZ", "amount": 100_000_000}]
    assert funded["data"]["fiscal_year"] == today_local().year

    keys = [k for k in ok(fresh_actors.anonymous().get("/ledger/keys"))["keys"] if k["region"] == "HZ"]
    assert len(keys) == 1 and keys[0]["valid_until"] is None
    assert {e["sig"]["key_id"] for e in ok(auditor.get("/ledger/entries?region=HZ"))["items"]} == {keys[0]["key_id"]}
    # The next published checkpoint covers its entries; it is the log key's, as every checkpoint is.
    note = published_checkpoint(fresh_app)
    assert int(note.splitlines()[1]) == ledger_size(fresh_app)
    assert "\n\u2014 vouchers.example/ledger " in note and "/HZ " not in note

    # Its officers and finance officers act at once, with tokens bound to it.
    assert ok(fresh_actors.client("finance", region="HZ").get("/regions/HZ/budget"))["remaining_fen"] == 100_000_000


def test_a_new_region_that_starts_next_year_is_funded_from_its_first_policy(fresh_app, fresh_actors):
    start = date(today_local().year + 1, 1, 1).isoformat()
    region = ok(fresh_actors.client("admin").post("/regions", json=region_body("NB", effective_from=start)), 201)
    assert region["policy"] is None and region["policies"][0]["effective_from"] == start
    assert region["budget_remaining_fen"] == POLICY["budget_fen"]


@pytest.mark.parametrize("body, field", [
    (region_body("hz"), "code"), (region_body("H"), "code"), (region_body("HANGZHOUX"), "code"),
    ({k: v for k, v in region_body().items() if k != "policy"}, "policy"),
    (region_body(subsidy_ratio_bp=0), "policy"), (region_body(subsidy_ratio_bp=10_001), "policy"),
    (region_body(budget_fen=-1), "policy"), (region_body(budget_fen=1.5), "policy"),
    (region_body(payout_cycle="weekly"), "policy"), (region_body(effective_from="2026-02-30"), "policy"),
    ({**region_body(), "name_zh": ""}, "name_zh"),
])
def test_bad_region_bodies_are_422_and_change_nothing(app, actors, body, field):
    with nothing_changes(app):
        problem = assert_problem(actors.client("admin").post("/regions", json=body), 422)
    assert field in problem["errors"], problem


def test_a_member_code_cannot_join_twice(app, actors):
    admin = actors.client("admin")
    with nothing_changes(app):
        assert_rule(admin.post("/regions", json=region_body("KS")), "region_code_unique")


def test_only_the_operator_adds_regions(app, actors):
    with nothing_changes(app):
        for client in (actors.officer("KS"), actors.finance("KS"), actors.auditor()):
            assert_problem(client.post("/regions", json=region_body("XA")), 403)
        assert_problem(actors.anonymous().post("/regions", json=region_body("XA")), 401)


def test_vouchers_regions_add_does_the_same_from_the_command_line(fresh_app, fresh_actors, tmp_path):
    path = tmp_path / "region.json"
    path.write_text(json.dumps(region_body("JX")), encoding="utf-8")
    runner = fresh_app.test_cli_runner()
    result = runner.invoke(args=["regions", "add", str(path)])
    assert result.exit_code == 0, result.output
    assert "region JX" in result.output and "budget.funded" in result.output
    region = ok(fresh_actors.auditor().get("/regions/JX"))
    assert region["budget_remaining_fen"] == POLICY["budget_fen"]
    entry = entries(fresh_actors.auditor(), "region.registered", "JX")[0]
    assert entry["actor"] == "system:regions"

    size = ledger_size(fresh_app)
    again = runner.invoke(args=["regions", "add", str(path)])
    assert again.exit_code != 0 and "already a member" in again.output
    path.write_text(json.dumps(region_body("jx")), encoding="utf-8")
    bad = runner.invoke(args=["regions", "add", str(path)])
    assert bad.exit_code != 0 and "code" in bad.output
    path.write_text("{not json", encoding="utf-8")
    assert runner.invoke(args=["regions", "add", str(path)]).exit_code != 0
    assert ledger_size(fresh_app) == size


def test_a_region_added_under_a_mistyped_passphrase_is_refused_before_its_key_is_made(fresh_app, tmp_path,
                                                                                      monkeypatch):
    """The new key would be encrypted with the wrong passphrase: the service could not
    sign for the region, and rotation (which needs the outgoing key) could not mend it."""
    from voucher_service.journal.keys import KeyRing
    path = tmp_path / "region.json"
    path.write_text(json.dumps(region_body("JY")), encoding="utf-8")
    right = fresh_app.extensions["vouchers_keyring"]
    keys_before = sorted(os.listdir(right.keys_dir))
    monkeypatch.setitem(fresh_app.extensions, "vouchers_keyring", KeyRing(right.keys_dir, "mistyped"))
    with nothing_changes(fresh_app):
        result = fresh_app.test_cli_runner().invoke(args=["regions", "add", str(path)])
    assert result.exit_code != 0 and "VOUCHERS_KEY_PASSPHRASE" in result.output, result.output
    assert sorted(os.listdir(right.keys_dir)) == keys_before


# --- policies -----------------------------------------------------------------------------

def test_policies_are_adopted_for_the_future_only(fresh_app, fresh_actors):
    officer = fresh_actors.officer("KS")
    today = today_local()
    with nothing_changes(fresh_app):
        for day in (today, today - timedelta(days=1), date(2021, 1, 1)):
            assert_rule(officer.post("/regions/KS/policies", json={**POLICY, "effective_from": day.isoformat()}),
                        "policy_retroactive")
    before = ok(officer.get("/regions/KS"))["policy"]
    tomorrow = (today + timedelta(days=1)).isoformat()
    adopted = ok(officer.post("/regions/KS/policies", json={**POLICY, "effective_from": tomorrow}), 201)
    assert adopted["effective_from"] == tomorrow and adopted["ledger"]["seq"] >= 0
    region = ok(officer.get("/regions/KS"))
    assert region["policy"] == before  # not in effect before its day
    assert region["policies"][-1]["effective_from"] == tomorrow
    entry = entries(fresh_actors.auditor(), "policy.adopted", "KS")[-1]
    assert entry["data"]["effective_from"] == tomorrow and entry["data"]["subsidy_ratio_bp"] == 5000
    with nothing_changes(fresh_app):
        assert_rule(officer.post("/regions/KS/policies", json={**POLICY, "effective_from": tomorrow}),
                    "policy_date_taken")


def test_a_region_adopts_its_own_policies_only(app, actors):
    body = {**POLICY, "effective_from": (today_local() + timedelta(days=40)).isoformat()}
    with nothing_changes(app):
        assert_problem(actors.officer("SH").post("/regions/KS/policies", json=body), 403)
        assert_problem(actors.finance("KS").post("/regions/KS/policies", json=body), 403)
        assert_problem(actors.officer("KS").post("/regions/KS/policies", json={**body, "validity_days": 0}), 422)


# --- budgets ------------------------------------------------------------------------------

def test_finance_funds_the_current_fiscal_year(fresh_app, fresh_actors):
    finance, year = fresh_actors.finance("KS"), today_local().year
    before = ok(finance.get("/regions/KS/budget"))
    response = finance.post("/regions/KS/budget", json={"amount_fen": 123_456, "fiscal_year": year,
                                                        "reference": "昆财教〔2026〕88号"})
    after = ok(response, 201)
    assert response.headers["Location"].endswith("/api/v1/regions/KS/budget")
    assert after["remaining_fen"] == before["remaining_fen"] + 123_456
    assert after["years"][-1]["funded_fen"] == before["years"][-1]["funded_fen"] + 123_456
    assert after["fundings"][-1]["reference"] == "昆财教〔2026〕88号"
    assert after["fundings"][-1]["amount_fen"] == 123_456 and after["fundings"][-1]["fiscal_year"] == year
    assert ok(fresh_actors.auditor().get("/regions/KS"))["budget_remaining_fen"] == after["remaining_fen"]
    entry = entries(fresh_actors.auditor(), "budget.funded", "KS")[-1]
    assert entry["data"] == {"amount_fen": 123_456, "fiscal_year": year, "reference": "昆财教〔2026〕88号"}
    assert entry["postings"] == [{"source": "treasury:KS", "destination": "budget:KS", "amount": 123_456}]


@pytest.mark.parametrize("body, status", [
    ({"amount_fen": 0, "fiscal_year": 2026, "reference": "r"}, 422),
    ({"amount_fen": 10.0, "fiscal_year": 2026, "reference": "r"}, 422),
    ({"amount_fen": "10", "fiscal_year": 2026, "reference": "r"}, 422),
    ({"amount_fen": 10, "fiscal_year": "2026", "reference": "r"}, 422),
    ({"amount_fen": 10, "fiscal_year": 2026}, 422),
    ({"amount_fen": 10, "fiscal_year": 2026, "reference": ""}, 422),
])
def test_bad_fundings_are_refused_and_change_nothing(app, actors, body, status):
    with nothing_changes(app):
        assert_problem(actors.finance("KS").post("/regions/KS/budget", json=body), status)


def test_a_budget_is_funded_and_read_by_its_own_region(app, actors):
    body = {"amount_fen": 10, "fiscal_year": today_local().year, "reference": "r"}
    with nothing_changes(app):
        for client in (actors.finance("SH"), actors.officer("KS"), actors.auditor(), actors.client("admin")):
            assert_problem(client.post("/regions/KS/budget", json=body), 403)
        for year in (today_local().year - 1, today_local().year + 1):
            assert_rule(actors.finance("KS").post("/regions/KS/budget", json={**body, "fiscal_year": year}),
                        "fiscal_year_not_current")
    for client in (actors.finance("KS"), actors.officer("KS"), actors.auditor()):
        assert ok(client.get("/regions/KS/budget"))["region"] == "KS"
    for client in (actors.finance("SH"), actors.officer("WJ"), actors.sme("ent-ks-001")):
        assert_problem(client.get("/regions/KS/budget"), 403)
    assert_problem(actors.auditor().get("/regions/ZZ/budget"), 404)


# --- the turn of the year -----------------------------------------------------------------

def test_at_the_turn_of_the_year_caps_restart_and_unspent_budget_carries_over(fresh_app, fresh_actors,
                                                                               monkeypatch):
    officer, finance, sme = fresh_actors.officer("KS"), fresh_actors.finance("KS"), fresh_actors.sme("ent-ks-001")
    year = today_local().year
    # The next year's policy, adopted in advance: a lower enterprise cap.
    next_policy = {**POLICY, "effective_from": f"{year + 1}-01-01", "enterprise_cap_fen": 1_000_000}
    ok(officer.post("/regions/KS/policies", json=next_policy), 201)
    cap_this_year = ok(officer.get("/regions/KS"))["policy"]["enterprise_cap_fen"]

    def apply(amount_fen):
        return ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "year end"}), 201)["id"]

    last_minute = datetime(year, 12, 31, 23, 59, tzinfo=SHANGHAI)
    first_minute = datetime(year + 1, 1, 1, 0, 0, tzinfo=SHANGHAI)
    monkeypatch.setattr(writes, "utc_now", at(last_minute))
    ok(officer.post(f"/applications/{apply(cap_this_year)}/approve", json={}))
    waiting = apply(500_000)
    with nothing_changes(fresh_app):
        assert_rule(officer.post(f"/applications/{waiting}/approve", json={}), "annual_cap")
    december = ok(finance.get("/regions/KS/budget"))

    monkeypatch.setattr(writes, "utc_now", at(first_minute))
    # The same application, a minute later: a new year's cap (the new policy's), counted from zero.
    voucher = ok(officer.post(f"/applications/{waiting}/approve", json={}))["voucher"]
    assert voucher["valid_from"] == f"{year + 1}-01-01"
    over = apply(500_001)
    with nothing_changes(fresh_app):
        assert_rule(officer.post(f"/applications/{over}/approve", json={}), "annual_cap")
    # Last year's budget can no longer be funded; this year's can.
    with nothing_changes(fresh_app):
        assert_rule(finance.post("/regions/KS/budget", json={"amount_fen": 1, "fiscal_year": year,
                                                              "reference": "late"}), "fiscal_year_not_current")
    ok(finance.post("/regions/KS/budget", json={"amount_fen": 700_000, "fiscal_year": year + 1,
                                                "reference": "new year"}), 201)

    budget = ok(finance.get("/regions/KS/budget"))
    this, following = budget["years"][-2], budget["years"][-1]
    assert (this["fiscal_year"], following["fiscal_year"]) == (year, year + 1)
    assert this == december["years"][-1]
    assert this["granted_fen"] >= cap_this_year
    assert following["carried_over_fen"] == this["remaining_fen"]  # unspent budget carries over
    assert (following["funded_fen"], following["granted_fen"], following["returned_fen"]) == (700_000, 500_000, 0)
    assert following["remaining_fen"] == this["remaining_fen"] + 700_000 - 500_000 == budget["remaining_fen"]
    assert account_balances(fresh_app)["budget:KS"] == budget["remaining_fen"]
    for row in budget["years"]:
        assert row["remaining_fen"] == (row["carried_over_fen"] + row["funded_fen"] + row["returned_fen"]
                                        - row["granted_fen"])
