"""Money that can come back (DESIGN §9): recoveries before and after settlement,
repayments, offsets against the next payout, and the bank's payment results,
each through the HTTP API, with the postings §9 names and the §3 invariants."""
from __future__ import annotations

import csv
import json
import io
import os
import subprocess
import sys

import pytest

from helpers import account_balances, assert_problem, assert_rule, current_month, nothing_changes, ok, redeem
from sqlmodel import Session
from test_settlement import KS_ENTERPRISE, SH_PROVIDER, balance, create

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all

PAYABLE, PAID, RECEIVABLE, BUDGET = (f"payable:KS:{SH_PROVIDER}", f"paid:{SH_PROVIDER}",
                                     f"receivable:KS:{SH_PROVIDER}", "budget:KS")


def last_entry(auditor, kind):
    return ok(auditor.get(f"/ledger/entries?kind={kind}&limit=100"))["items"][-1]


def postings(entry):
    return sorted((p["source"], p["destination"], p["amount"]) for p in entry["postings"])


def settle(actors, period=None):
    """A KS batch of what is due, approved by every region it touches, executed: the batch."""
    creator = actors.finance("KS")
    batch = create(creator, period or current_month())
    for region in batch["approvals_required"]:  # a second KS officer: the creator may not approve
        ok(actors.finance(region).post(f"/settlements/{batch['id']}/approve"))
    return ok(creator.post(f"/settlements/{batch['id']}/execute"))


def assert_ledger_sound(app, actors):
    with app.app_context(), Session(get_engine()) as session:
        assert check_all(session) == []
    assert sum(account_balances(app).values()) == 0
    statement = ok(actors.auditor().get(f"/regions/KS/reconciliation?period={current_month()}"))
    assert [c for c in statement["checks"] if not c["ok"]] == []
    return statement


def test_a_recovery_before_settlement_returns_the_money_to_the_budget(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    budget_before, payable_before = balance(app, BUDGET), balance(app, PAYABLE)
    officer = actors.officer("KS")
    with nothing_changes(app):
        assert_rule(officer.post(f"/redemptions/{rid}/recover", json={"amount_fen": 100_001, "reason": "x"}),
                    "recovery_within_amount")
        assert_problem(actors.officer("SH").post(f"/redemptions/{rid}/recover",
                                                 json={"amount_fen": 1, "reason": "x"}), 403)
        assert_problem(officer.post(f"/redemptions/{rid}/recover", json={"amount_fen": 0, "reason": "x"}), 422)
        # Unpaid, it is recovered whole: a batch pays only redeemed redemptions.
        assert_rule(officer.post(f"/redemptions/{rid}/recover", json={"amount_fen": 60_000, "reason": "x"}),
                    "recovery_whole_before_settlement")
    recovered = ok(officer.post(f"/redemptions/{rid}/recover", json={"amount_fen": 100_000,
                                                                     "reason": "audit: service not delivered"}))
    assert recovered["status"] == "recovered" and recovered["recovered_fen"] == 100_000
    assert recovered["recovery_reason"] == "audit: service not delivered" and recovered["recovered_at"]
    assert balance(app, BUDGET) == budget_before + 100_000 and balance(app, PAYABLE) == payable_before - 100_000
    entry = last_entry(actors.auditor(), "redemption.recovered")
    assert postings(entry) == [(PAYABLE, BUDGET, 100_000)]
    assert entry["data"] == {"amount_fen": 100_000, "reason": "audit: service not delivered",
                             "after_settlement": False}
    with nothing_changes(app):  # once only
        assert_rule(officer.post(f"/redemptions/{rid}/recover", json={"amount_fen": 1, "reason": "x"}),
                    "state_machine")
    assert_ledger_sound(app, actors)


def test_a_redemption_in_a_live_batch_is_not_recovered_until_the_batch_is_cancelled(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 50_000)
    batch = create(actors.finance("KS"), current_month())
    with nothing_changes(app):
        assert_rule(actors.officer("KS").post(f"/redemptions/{rid}/recover", json={"amount_fen": 1, "reason": "x"}),
                    "in_live_batch")
    ok(actors.finance("KS").post(f"/settlements/{batch['id']}/cancel", json={"reason": "recovery"}))
    ok(actors.officer("KS").post(f"/redemptions/{rid}/recover", json={"amount_fen": 50_000, "reason": "fraud"}))


def test_after_settlement_the_provider_owes_it_repays_and_the_rest_is_offset(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    settle(actors)
    paid_before = balance(app, PAID)
    recovered = ok(actors.officer("KS").post(f"/redemptions/{rid}/recover",
                                             json={"amount_fen": 80_000, "reason": "duplicate billing"}))
    assert recovered["status"] == "recovered"
    assert balance(app, RECEIVABLE) == 80_000 and balance(app, PAID) == paid_before - 80_000
    assert postings(last_entry(actors.auditor(), "redemption.recovered")) == [(PAID, RECEIVABLE, 80_000)]

    # The provider repays part; finance records it.
    finance = actors.finance("KS")
    with nothing_changes(app):
        assert_rule(finance.post(f"/providers/{SH_PROVIDER}/repayments",
                                 json={"amount_fen": 80_001, "reference": "BANK-1"}), "repayment_within_receivable")
        assert_problem(actors.officer("KS").post(f"/providers/{SH_PROVIDER}/repayments",
                                                 json={"amount_fen": 1, "reference": "BANK-1"}), 403)
        # SH's finance: SH is owed nothing by the provider.
        assert_rule(actors.finance("SH").post(f"/providers/{SH_PROVIDER}/repayments",
                                              json={"amount_fen": 1, "reference": "BANK-1"}),
                    "repayment_within_receivable")
    budget_before = balance(app, BUDGET)
    repaid = ok(finance.post(f"/providers/{SH_PROVIDER}/repayments",
                             json={"amount_fen": 30_000, "reference": "BANK-20261201-7"}), 201)
    assert repaid["receivable_fen"] == 50_000 and repaid["region"] == "KS"
    assert balance(app, BUDGET) == budget_before + 30_000
    assert postings(last_entry(actors.auditor(), "receivable.repaid")) == [(RECEIVABLE, BUDGET, 30_000)]

    # The next batch takes the remaining 50,000 from the provider's 70,000 line.
    redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 70_000)
    batch = create(finance, current_month())
    [line] = batch["lines"]
    assert (line["amount_fen"], line["offset_fen"], line["net_fen"]) == (70_000, 50_000, 20_000)
    # Planned as an offset, the receivable is no longer free to repay.
    with nothing_changes(app):
        assert_rule(finance.post(f"/providers/{SH_PROVIDER}/repayments",
                                 json={"amount_fen": 1, "reference": "BANK-2"}), "repayment_within_receivable")
    ok(actors.finance("KS").post(f"/settlements/{batch['id']}/approve"))
    ok(actors.finance("SH").post(f"/settlements/{batch['id']}/approve"))
    budget_before = balance(app, BUDGET)
    ok(finance.post(f"/settlements/{batch['id']}/execute"))
    assert balance(app, RECEIVABLE) == 0 and balance(app, BUDGET) == budget_before + 50_000
    executed = last_entry(actors.auditor(), "settlement.executed")
    assert postings(executed) == sorted([(PAYABLE, PAID, 70_000), (RECEIVABLE, BUDGET, 50_000)])

    payouts = ok(finance.get(f"/settlements/{batch['id']}/payouts"))["payouts"]
    assert [(p["amount_fen"], p["offset_fen"], p["net_fen"]) for p in payouts] == [(70_000, 50_000, 20_000)]
    raw = finance.get(f"/settlements/{batch['id']}/payouts", headers={"Accept": "text/csv"}).get_data()
    [row] = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert (row["gross_fen"], row["offset_fen"], row["net_fen"], row["amount_cny"]) == ("70000", "50000", "20000",
                                                                                        "200.00")
    statement = assert_ledger_sound(app, actors)
    assert statement["totals"]["receivables"] == {"opened_fen": 80_000, "repaid_fen": 30_000, "offset_fen": 50_000,
                                                  "outstanding_fen": 0}
    assert statement["totals"]["recovered_fen"] == 80_000


def test_payment_results_complete_a_batch_and_a_failed_line_is_paid_by_the_next(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    sh_rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 40_000)
    wj_rid = redeem(actors, KS_ENTERPRISE, "prv-wj-001", 30_000)
    batch = settle(actors)
    assert batch["status"] == "executed", batch
    finance, sid = actors.finance("KS"), batch["id"]
    with nothing_changes(app):
        assert_problem(finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "paid"}]}), 422)  # paid needs its bank reference
        assert_problem(finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "failed"}]}), 422)  # failed needs its reason
        assert_problem(finance.post(f"/settlements/{sid}/results", json={"results": []}), 422)
        assert_rule(finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": "prv-ks-002", "result": "paid", "bank_reference": "B"}]}), "line_in_batch")
        twice = finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "paid", "bank_reference": "B1"},
            {"provider_id": SH_PROVIDER, "result": "failed", "reason": "x"}]})
        assert_problem(twice, 422)
        assert "more than one result" in json.dumps(twice.get_json()), twice.get_json()
        assert_problem(actors.finance("SH").post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "paid", "bank_reference": "B"}]}), 403)

    paid = ok(finance.post(f"/settlements/{sid}/results", json={"results": [
        {"provider_id": SH_PROVIDER, "result": "paid", "bank_reference": "CNAPS-0001"}]}))
    assert paid["status"] == "executed"
    with nothing_changes(app):
        assert_rule(finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "failed", "reason": "late"}]}), "result_recorded")
    payable_before = balance(app, "payable:KS:prv-wj-001")
    completed = ok(finance.post(f"/settlements/{sid}/results", json={"results": [
        {"provider_id": "prv-wj-001", "result": "failed", "reason": "account closed"}]}))
    assert completed["status"] == "completed" and completed["completed_at"]
    results = {l["provider_id"]: (l["result"], l["bank_reference"], l["failure_reason"]) for l in completed["lines"]}
    assert results == {SH_PROVIDER: ("paid", "CNAPS-0001", None), "prv-wj-001": ("failed", None, "account closed")}
    assert balance(app, "payable:KS:prv-wj-001") == payable_before + 30_000
    entry = last_entry(actors.auditor(), "settlement.results_recorded")
    assert postings(entry) == [("paid:prv-wj-001", "payable:KS:prv-wj-001", 30_000)]
    assert ok(actors.auditor().get(f"/redemptions/{wj_rid}"))["status"] == "redeemed"
    assert ok(actors.auditor().get(f"/redemptions/{sh_rid}"))["status"] == "settled"
    with nothing_changes(app):
        assert_rule(finance.post(f"/settlements/{sid}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "paid", "bank_reference": "again"}]}), "state_machine")

    # The failed line's redemption is paid by the next batch.
    again = create(finance, current_month())
    assert [(l["provider_id"], l["redemption_ids"]) for l in again["lines"]] == [("prv-wj-001", [wj_rid])]
    assert_ledger_sound(app, actors)


def test_a_failed_line_with_an_offset_owes_the_offset_again(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    settle(actors)
    ok(actors.officer("KS").post(f"/redemptions/{rid}/recover", json={"amount_fen": 40_000, "reason": "overbilled"}))
    later = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 60_000)
    batch = settle(actors)
    [line] = batch["lines"]
    assert (line["offset_fen"], line["net_fen"]) == (40_000, 20_000) and balance(app, RECEIVABLE) == 0
    finance = actors.finance("KS")
    ok(finance.post(f"/settlements/{batch['id']}/results", json={"results": [
        {"provider_id": SH_PROVIDER, "result": "failed", "reason": "beneficiary bank rejected"}]}))
    # Neither the transfer nor the offset happened: owed 60,000 again, and owed back 40,000 again.
    assert balance(app, RECEIVABLE) == 40_000 and balance(app, PAYABLE) == 60_000
    assert postings(last_entry(actors.auditor(), "settlement.results_recorded")) == sorted(
        [(PAID, PAYABLE, 60_000), (BUDGET, RECEIVABLE, 40_000)])
    assert ok(actors.auditor().get(f"/redemptions/{later}"))["status"] == "redeemed"
    statement = assert_ledger_sound(app, actors)
    assert statement["totals"]["payment_failed_fen"] == 60_000
    assert statement["totals"]["receivables"]["outstanding_fen"] == 40_000


def test_a_line_recovered_from_since_execution_cannot_be_recorded_failed(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    batch = settle(actors)
    ok(actors.officer("KS").post(f"/redemptions/{rid}/recover", json={"amount_fen": 10_000, "reason": "audit"}))
    with nothing_changes(app):
        assert_rule(actors.finance("KS").post(f"/settlements/{batch['id']}/results", json={"results": [
            {"provider_id": SH_PROVIDER, "result": "failed", "reason": "x"}]}), "recovered_in_line")
    done = ok(actors.finance("KS").post(f"/settlements/{batch['id']}/results", json={"results": [
        {"provider_id": SH_PROVIDER, "result": "paid", "bank_reference": "CNAPS-9"}]}))
    assert done["status"] == "completed"
    assert_ledger_sound(app, actors)


def test_the_payout_file_carries_the_bank_account_in_full_for_the_paying_finance_only(fresh_app, fresh_actors):
    actors, number = fresh_actors, "6222021001098765432"
    redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 50_000)
    batch = settle(actors)
    paying = actors.finance("KS")
    [row] = ok(paying.get(f"/settlements/{batch['id']}/payouts"))["payouts"]
    assert (row["account_name"], row["bank_name"], row["account_no"]) == (None, None, None)  # none confirmed yet

    proposed = ok(actors.officer("SH").put(f"/providers/{SH_PROVIDER}/payout-account", json={
        "account_name": "上海市计量测试技术研究院", "bank_name": "中国银行上海分行", "account_no": number}), 202)
    assert number not in str(proposed)
    ok(actors.officer("SH").post(f"/providers/{SH_PROVIDER}/payout-account/confirm"))

    [row] = ok(paying.get(f"/settlements/{batch['id']}/payouts"))["payouts"]
    assert (row["account_name"], row["bank_name"], row["account_no"]) == ("上海市计量测试技术研究院", "中国银行上海分行",
                                                                          number)
    raw = paying.get(f"/settlements/{batch['id']}/payouts", headers={"Accept": "text/csv"}).get_data()
    [csv_row] = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert csv_row["account_no"] == number and csv_row["bank_name"] == "中国银行上海分行"
    # The provider's region's finance officers and auditors read the file, masked.
    for reader in (actors.finance("SH"), actors.auditor()):
        [row] = ok(reader.get(f"/settlements/{batch['id']}/payouts"))["payouts"]
        assert row["account_no"] == "****5432"
        raw = reader.get(f"/settlements/{batch['id']}/payouts", headers={"Accept": "text/csv"}).get_data()
        assert number.encode() not in raw


BEAN_CHECK = os.path.join(os.path.dirname(sys.executable), "bean-check")


@pytest.mark.skipif(not os.path.exists(BEAN_CHECK), reason="bean-check is not installed (pip install beancount)")
def test_the_beancount_export_of_recoveries_and_repayments_passes_bean_check(fresh_app, fresh_actors, tmp_path):
    app, actors = fresh_app, fresh_actors
    rid = redeem(actors, KS_ENTERPRISE, SH_PROVIDER, 100_000)
    settle(actors)
    ok(actors.officer("KS").post(f"/redemptions/{rid}/recover", json={"amount_fen": 30_000, "reason": "audit"}))
    ok(actors.finance("KS").post(f"/providers/{SH_PROVIDER}/repayments",
                                 json={"amount_fen": 10_000, "reference": "BANK-3"}), 201)
    path = tmp_path / "ledger.beancount"
    result = app.test_cli_runner().invoke(args=["export", "beancount", "--output", str(path)])
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert "Assets:Receivable:KS:Xprv-sh-001" in text and "Equity:Unmapped" not in text
    checked = subprocess.run([BEAN_CHECK, str(path)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
