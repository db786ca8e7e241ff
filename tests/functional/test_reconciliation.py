"""Reconciliation statements through the API (DESIGN §2, §5): exact totals of a
driven lifecycle, positions between regions, every cross-check, the signature
(verified offline with the published keys, in Python and on the command line),
tampering on either side, access, bad periods and exact period boundaries.

State matters everywhere here, so every test runs on a pristine database
(`fresh_app`). Periods are computed from the clock in Asia/Shanghai."""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from helpers import add_evidence, assert_problem, current_month, ok
from sqlalchemy import text
from sqlmodel import Session, func, select

from voucher_service.cli.commands import verify_statement_command
from voucher_service.db import get_engine
from voucher_service.ledger import statement as offline
from voucher_service.ledger.statement import StatementChecksFailed, StatementError, verify_statement
from voucher_service.models import LedgerEntry
from voucher_service.programme import writes

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROBLEM_JSON = "application/problem+json"
KS_SME, KS_OTHER_SME = "ent-ks-003", "ent-ks-001"
SH_PROVIDER, WJ_PROVIDER = "prv-sh-001", "prv-wj-001"
TOTAL_FIELDS = ("funded_fen", "issued_fen", "reserved_fen", "released_fen", "redeemed_fen", "voided_fen",
                "expired_fen", "released_to_budget_fen", "settled_paid_fen")
AS_OF_END_FIELDS = ("budget_fen", "vouchers_available_fen", "vouchers_held_fen", "payable_fen", "paid_fen")
REQUIRED_CHECKS = {"accounts_replay_vs_stored", "budget_replay_vs_stored", "vouchers_available_vs_ledger",
                   "vouchers_held_vs_ledger", "voucher_rows_vs_accounts", "voucher_identity",
                   "payable_vs_unsettled_redemptions", "paid_vs_executed_settlements", "posting_rows_vs_entries",
                   "balances_sum_to_zero"}


def next_month() -> str:
    today = datetime.now(SHANGHAI).date()
    return (today.replace(day=1) + timedelta(days=32)).strftime("%Y-%m")


# --- driving the lifecycle through the API ----------------------------------------------

def issue(actors, enterprise_id, amount_fen):
    application = ok(actors.sme(enterprise_id).post("/applications", json={"amount_fen": amount_fen,
                                                                          "purpose": "reconciliation"}), 201)
    return ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]


def reserve(actors, voucher_id, provider_id, fee_fen, amount_fen, enterprise_id=KS_SME):
    return ok(actors.sme(enterprise_id).post("/redemptions", json={
        "voucher_id": voucher_id, "provider_id": provider_id, "catalog_code": "TS-01",
        "service_fee_fen": fee_fen, "amount_fen": amount_fen}), 201)["id"]


def claim_confirm_redeem(actors, redemption_id, provider_id, fee_fen, amount_fen):
    add_evidence(actors.provider(provider_id), redemption_id)
    ok(actors.provider(provider_id).post(f"/redemptions/{redemption_id}/claim", json={
        "invoice_no": f"INV-{redemption_id[-6:]}", "service_fee_fen": fee_fen, "amount_fen": amount_fen}))
    ok(actors.sme(KS_SME).post(f"/redemptions/{redemption_id}/confirm"))
    return ok(actors.officer("KS").post(f"/redemptions/{redemption_id}/approve"))


def drive_lifecycle(actors) -> dict:
    """A KS enterprise spends one voucher at an SH and a WJ provider (each claim
    lowered), cancels a third reservation; another KS voucher is voided."""
    voucher = issue(actors, KS_SME, 1_000_000)
    at_sh = reserve(actors, voucher["id"], SH_PROVIDER, 600_000, 300_000)
    claim_confirm_redeem(actors, at_sh, SH_PROVIDER, 500_000, 250_000)       # 50_000 released
    at_wj = reserve(actors, voucher["id"], WJ_PROVIDER, 400_000, 200_000)
    claim_confirm_redeem(actors, at_wj, WJ_PROVIDER, 360_000, 180_000)       # 20_000 released
    cancelled = reserve(actors, voucher["id"], SH_PROVIDER, 200_000, 100_000)
    ok(actors.sme(KS_SME).post(f"/redemptions/{cancelled}/cancel", json={"reason": "changed plans"}))
    other = issue(actors, KS_OTHER_SME, 500_000)
    ok(actors.officer("KS").post(f"/vouchers/{other['id']}/void", json={"reason": "duplicate grant"}))
    return {"voucher": voucher["id"], "voided": other["id"], "redemptions": [at_sh, at_wj]}


DRIVEN = {"funded_fen": 0, "issued_fen": 1_500_000, "reserved_fen": 600_000, "released_fen": 170_000,
          "redeemed_fen": 430_000, "voided_fen": 500_000, "expired_fen": 0, "released_to_budget_fen": 0,
          "settled_paid_fen": 0}


# --- reading and checking statements ---------------------------------------------------

def statement_response(client, region, period):
    return client.get(f"/regions/{region}/reconciliation", query_string={"period": period})


def statement_of(client, region, period) -> dict:
    return ok(statement_response(client, region, period))


def published_keys(app) -> dict:
    r = app.test_client().get("/api/v1/ledger/keys")
    assert r.status_code == 200
    return r.get_json()


def checks_by_name(statement: dict) -> dict:
    return {check["name"]: check for check in statement["checks"]}


def failed(statement: dict) -> set[str]:
    return {check["name"] for check in statement["checks"] if not check["ok"]}


def position(statement: dict, part: str, source: str, target: str) -> int:
    rows = [p for p in statement["positions"][part] if (p["from"], p["to"]) == (source, target)]
    assert len(rows) == 1, statement["positions"][part]
    return rows[0]["amount_fen"]


def tree_size(app) -> int:
    with app.app_context(), Session(get_engine()) as session:
        return session.exec(select(func.count()).select_from(LedgerEntry)).one()


# --- the lifecycle, totals and positions ------------------------------------------------

def test_statement_of_a_driven_lifecycle_is_exact_checked_and_signed(fresh_app, fresh_actors, tmp_path):
    auditor, month = fresh_actors.auditor(), current_month()
    before = statement_of(auditor, "KS", month)
    assert not failed(before)
    drive_lifecycle(fresh_actors)
    ks = statement_of(fresh_actors.finance("KS"), "KS", month)

    assert (ks["region"], ks["period"]) == ("KS", month)
    start = datetime.combine(date.fromisoformat(month + "-01"), datetime.min.time(), SHANGHAI)
    assert ks["period_start"] == start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert ks["period_start"] < ks["generated_at"] < ks["period_end"]
    for name in TOTAL_FIELDS:
        assert ks["totals"][name] - before["totals"][name] == DRIVEN[name], name
    end = ks["totals"]["as_of_end"]
    assert end["budget_fen"] == before["totals"]["as_of_end"]["budget_fen"] - 1_500_000 + 500_000
    assert end["vouchers_available_fen"] == 570_000
    assert end["vouchers_held_fen"] == 0
    assert end["payable_fen"] == 430_000
    assert end["paid_fen"] == 0
    assert ks["outstanding_liability_fen"] == 430_000
    assert {row["provider_region"]: row["amount_fen"] for row in ks["outstanding_liability"]} == \
        {"KS": 0, "SH": 250_000, "WJ": 180_000}

    # Every check ran and passed, and says what it compared.
    checks = checks_by_name(ks)
    assert REQUIRED_CHECKS <= set(checks)
    assert not failed(ks), [c for c in ks["checks"] if not c["ok"]]
    assert checks["payable_vs_unsettled_redemptions"]["actual"] == 430_000
    assert checks["vouchers_face_vs_issued"]["actual"] == 1_500_000
    assert checks["posting_rows_vs_entries"]["expected"] > 0
    assert all(isinstance(c["detail"], str) and c["detail"] for c in ks["checks"])

    # What KS owes: exactly what was redeemed at each region's providers.
    assert position(ks, "gross", "KS", "SH") == 250_000
    assert position(ks, "gross", "KS", "WJ") == 180_000
    assert position(ks, "gross", "SH", "KS") == position(ks, "gross", "WJ", "KS") == 0
    assert position(ks, "net", "KS", "SH") == 250_000
    assert position(ks, "net", "KS", "WJ") == 180_000
    assert ks["positions"]["net_fen"] == -430_000
    assert ks["positions"]["within_region_fen"] == 0

    # SH is owed by KS, owes nobody, and has nothing outstanding itself.
    sh = statement_of(auditor, "SH", month)
    assert not failed(sh)
    assert position(sh, "gross", "KS", "SH") == 250_000
    assert position(sh, "net", "KS", "SH") == 250_000
    assert position(sh, "net", "SH", "WJ") == 0
    assert sh["positions"]["net_fen"] == 250_000
    assert sh["outstanding_liability_fen"] == 0
    assert sh["totals"]["redeemed_fen"] == 0
    wj = statement_of(auditor, "WJ", month)
    assert position(wj, "net", "KS", "WJ") == 180_000 and wj["positions"]["net_fen"] == 180_000

    # The tree the statement was computed at, and its signature by KS's key.
    assert ks["ledger"]["tree_size"] == tree_size(fresh_app)
    keys = published_keys(fresh_app)
    ks_keys = {k["key_id"] for k in keys["keys"] if k["region"] == "KS" and k["valid_until"] is None}
    assert ks["signature"]["key_id"] in ks_keys and ks["signature"]["alg"] == "ed25519"
    for signed in (ks, sh):
        summary = verify_statement(signed, keys)
        assert summary.startswith(f"ok: reconciliation statement for {signed['region']}"), summary

    # The files exactly as served verify offline: module entry point and `vouchers verify-statement`.
    keys_file = tmp_path / "keys.json"
    keys_file.write_bytes(fresh_app.test_client().get("/api/v1/ledger/keys").data)
    for region, client in (("KS", fresh_actors.finance("KS")), ("SH", auditor)):
        path = tmp_path / f"{region}.json"
        path.write_bytes(statement_response(client, region, month).data)
        assert offline.main([str(path), "--keys", str(keys_file)]) == 0
        result = CliRunner().invoke(verify_statement_command, [str(path), "--keys", str(keys_file)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"ok: reconciliation statement for {region}")


def test_settled_redemptions_are_paid_in_the_statement(fresh_app, fresh_actors):
    drive_lifecycle(fresh_actors)
    month = current_month()
    creator = fresh_actors.finance("KS")
    batch = ok(creator.post("/settlements", json={"period": month}), 201)
    for region in ("KS", "SH", "WJ"):
        ok(fresh_actors.finance(region).post(f"/settlements/{batch['id']}/approve"))
    ok(creator.post(f"/settlements/{batch['id']}/execute"))

    ks = statement_of(fresh_actors.auditor(), "KS", month)
    assert not failed(ks), [c for c in ks["checks"] if not c["ok"]]
    assert ks["totals"]["settled_paid_fen"] == 430_000
    assert ks["totals"]["as_of_end"]["payable_fen"] == ks["outstanding_liability_fen"] == 0
    assert ks["totals"]["as_of_end"]["paid_fen"] == 430_000
    checks = checks_by_name(ks)
    assert checks["paid_vs_executed_settlements"]["expected"] == checks["paid_vs_executed_settlements"]["actual"] \
        == 430_000
    # Obligations follow redemption, not payment: the positions are unchanged by settling.
    assert position(ks, "net", "KS", "SH") == 250_000
    verify_statement(ks, published_keys(fresh_app))


# --- tampering ------------------------------------------------------------------------

def test_a_tampered_balance_fails_the_checks_of_a_validly_signed_statement(fresh_app, fresh_actors, tmp_path):
    drive_lifecycle(fresh_actors)
    auditor, month = fresh_actors.auditor(), current_month()
    clean = statement_of(auditor, "KS", month)
    with fresh_app.app_context(), Session(get_engine()) as session:
        session.exec(text("UPDATE account SET balance_fen = balance_fen + 1 WHERE name = 'budget:KS'"))
        session.commit()

    r = statement_response(auditor, "KS", month)
    tampered = ok(r)
    checks = checks_by_name(tampered)
    replay, budget = checks["accounts_replay_vs_stored"], checks["budget_replay_vs_stored"]
    assert (replay["ok"], replay["expected"], replay["actual"]) == (False, 0, 1)
    assert "budget:KS" in replay["detail"]
    ledger_budget = clean["totals"]["as_of_end"]["budget_fen"]
    assert (budget["ok"], budget["expected"], budget["actual"]) == (False, ledger_budget, ledger_budget + 1)
    assert checks["balances_sum_to_zero"]["actual"] == 1
    assert failed(tampered) == {"accounts_replay_vs_stored", "budget_replay_vs_stored", "balances_sum_to_zero"}
    # The ledger itself is untouched: its figures do not move.
    assert tampered["totals"] == clean["totals"]

    # Signed as served: the signature verifies, and the verifier names what failed.
    keys = published_keys(fresh_app)
    with pytest.raises(StatementChecksFailed) as raised:
        verify_statement(tampered, keys)
    message = str(raised.value)
    assert "validly signed" in message and "3 of its" in message
    assert f"budget_replay_vs_stored (expected {ledger_budget}, actual {ledger_budget + 1})" in message
    assert "accounts_replay_vs_stored (expected 0, actual 1)" in message
    assert {c["name"] for c in raised.value.failed} == failed(tampered)

    path, keys_file = tmp_path / "statement.json", tmp_path / "keys.json"
    path.write_bytes(r.data)
    keys_file.write_text(json.dumps(keys), encoding="utf-8")
    result = CliRunner().invoke(verify_statement_command, [str(path), "--keys", str(keys_file)])
    assert result.exit_code == 1
    assert "FAILED" in result.output and "budget_replay_vs_stored" in result.output
    assert "Traceback" not in result.output


def test_a_tampered_statement_does_not_verify(fresh_app, fresh_actors, tmp_path):
    drive_lifecycle(fresh_actors)
    signed = statement_of(fresh_actors.auditor(), "KS", current_month())
    keys = published_keys(fresh_app)
    verify_statement(signed, keys)
    for change in (lambda s: s["totals"].update(redeemed_fen=s["totals"]["redeemed_fen"] - 1),
                   lambda s: s["positions"]["net"][0].update(amount_fen=0),
                   lambda s: s["ledger"].update(tree_size=s["ledger"]["tree_size"] + 1),
                   lambda s: s.update(generated_at=s["period_start"])):
        edited = copy.deepcopy(signed)
        change(edited)
        assert edited != signed
        with pytest.raises(StatementError, match="does not verify|valid from") as raised:
            verify_statement(edited, keys)
        assert not isinstance(raised.value, StatementChecksFailed)
    # Another region's statement cannot pass for KS's.
    sh = statement_of(fresh_actors.auditor(), "SH", current_month())
    relabelled = {**sh, "region": "KS"}
    with pytest.raises(StatementError, match="of region SH"):
        verify_statement(relabelled, keys)

    path, keys_file = tmp_path / "statement.json", tmp_path / "keys.json"
    edited = copy.deepcopy(signed)
    edited["outstanding_liability_fen"] += 100
    path.write_text(json.dumps(edited), encoding="utf-8")
    keys_file.write_text(json.dumps(keys), encoding="utf-8")
    result = CliRunner().invoke(verify_statement_command, [str(path), "--keys", str(keys_file)])
    assert result.exit_code == 1 and "does not verify" in result.output


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"region": "KS"}', b"\xff\xfe", b"{" * 100_000])
def test_malformed_statement_files_fail_cleanly(fresh_app, tmp_path, content):
    path, keys_file = tmp_path / "statement.json", tmp_path / "keys.json"
    path.write_bytes(content)
    keys_file.write_bytes(fresh_app.test_client().get("/api/v1/ledger/keys").data)
    result = CliRunner().invoke(verify_statement_command, [str(path), "--keys", str(keys_file)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAILED") and "Traceback" not in result.output
    assert offline.main([str(path), "--keys", str(keys_file)]) == 1
    missing = CliRunner().invoke(verify_statement_command, [str(tmp_path / "nope.json"), "--keys", str(keys_file)])
    assert missing.exit_code == 1 and missing.output.startswith("FAILED")


# --- periods ------------------------------------------------------------------------

def test_a_period_with_nothing_in_it_has_zero_totals(fresh_app, fresh_actors):
    drive_lifecycle(fresh_actors)
    for period in ("2025-10", "2025-Q4"):
        empty = statement_of(fresh_actors.auditor(), "KS", period)
        assert empty["period"] == period
        assert all(empty["totals"][name] == 0 for name in TOTAL_FIELDS)
        # Before the ledger began, nothing was held or owed.
        assert all(empty["totals"]["as_of_end"][name] == 0 for name in AS_OF_END_FIELDS)
        assert empty["outstanding_liability_fen"] == 0
        assert all(p["amount_fen"] == 0 for p in empty["positions"]["gross"] + empty["positions"]["net"])
        assert {p["to"] for p in empty["positions"]["net"]} == {"SH", "WJ"}
        assert not failed(empty)  # the checks are of the ledger now, whatever the period
        verify_statement(empty, published_keys(fresh_app))


def test_a_redemption_redeemed_before_the_period_is_not_in_it(fresh_app, fresh_actors):
    drive_lifecycle(fresh_actors)
    later = statement_of(fresh_actors.auditor(), "KS", next_month())
    assert all(later["totals"][name] == 0 for name in TOTAL_FIELDS)
    assert position(later, "gross", "KS", "SH") == position(later, "gross", "KS", "WJ") == 0
    # ...but is still owed at its end.
    assert later["totals"]["as_of_end"]["payable_fen"] == later["outstanding_liability_fen"] == 430_000
    assert later["totals"]["as_of_end"]["vouchers_available_fen"] == 570_000
    assert not failed(later)


def at(moment: datetime):
    return lambda: moment.astimezone(timezone.utc)


def test_period_boundaries_are_local_midnights_exactly(fresh_app, fresh_actors, monkeypatch):
    """Redeemed at 23:59:59.999999 on 31 December (Asia/Shanghai) is December's; at
    00:00:00 on 1 January it is January's: the entry's ts decides, in local time."""
    voucher = issue(fresh_actors, KS_SME, 1_000_000)
    last_moment = datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=SHANGHAI)
    first_moment = datetime(2026, 1, 1, 0, 0, 0, tzinfo=SHANGHAI)
    for moment, provider, amount in ((last_moment, SH_PROVIDER, 100_000), (first_moment, WJ_PROVIDER, 70_000)):
        rid = reserve(fresh_actors, voucher["id"], provider, 2 * amount, amount)
        add_evidence(fresh_actors.provider(provider), rid)
        ok(fresh_actors.provider(provider).post(f"/redemptions/{rid}/claim", json={
            "invoice_no": "INV-EDGE", "service_fee_fen": 2 * amount, "amount_fen": amount}))
        ok(fresh_actors.sme(KS_SME).post(f"/redemptions/{rid}/confirm"))
        # Only the approval (its ledger entry and redeemed_at) gets the chosen time.
        monkeypatch.setattr(writes, "utc_now", at(moment))
        ok(fresh_actors.officer("KS").post(f"/redemptions/{rid}/approve"))
        monkeypatch.undo()

    auditor = fresh_actors.auditor()
    december, january = statement_of(auditor, "KS", "2025-12"), statement_of(auditor, "KS", "2026-01")
    assert december["period_end"] == january["period_start"] == "2025-12-31T16:00:00.000000Z"
    assert december["totals"]["redeemed_fen"] == 100_000
    assert position(december, "gross", "KS", "SH") == 100_000 and position(december, "gross", "KS", "WJ") == 0
    assert january["totals"]["redeemed_fen"] == 70_000
    assert position(january, "gross", "KS", "WJ") == 70_000 and position(january, "gross", "KS", "SH") == 0
    assert december["totals"]["as_of_end"]["payable_fen"] == 100_000
    assert statement_of(auditor, "KS", "2025-Q4")["totals"]["redeemed_fen"] == 100_000
    assert statement_of(auditor, "KS", "2026-Q1")["totals"]["redeemed_fen"] == 70_000
    assert not failed(january)


# --- access and input -----------------------------------------------------------------

def test_who_may_read_a_statement(fresh_app, fresh_actors):
    month = current_month()
    for client in (fresh_actors.finance("SH"), fresh_actors.auditor(), fresh_actors.client("admin")):
        assert statement_response(client, "SH", month).status_code == 200
    before = tree_size(fresh_app)
    for client in (fresh_actors.finance("KS"), fresh_actors.finance("WJ"), fresh_actors.officer("SH"),
                   fresh_actors.sme("ent-sh-001"), fresh_actors.provider(SH_PROVIDER)):
        body = assert_problem(statement_response(client, "SH", month), 403)
        # Finance of another region is told whose statement it is; other roles, that the role may not.
        assert "SH" in body["detail"] or "may not call reconciliation" in body["detail"]
    assert_problem(statement_response(fresh_actors.anonymous(), "SH", month), 401)
    assert_problem(statement_response(fresh_actors.auditor(), "XX", month), 404)
    assert tree_size(fresh_app) == before, "reading a statement writes nothing to the ledger"


@pytest.mark.parametrize("query", [{}, {"period": ""}, {"period": "2026-13"}, {"period": "2026-00"},
                                   {"period": "2026-Q5"}, {"period": "26-01"}, {"period": "0000-01"},
                                   {"period": "9999-12"}, {"period": "9999-Q4"}, {"period": "2026-1"},
                                   {"period": "２０２６-01"}, {"period": "2026-11\n"}, {"period": "0001-01"}])
def test_a_bad_period_is_422(fresh_actors, query):
    r = fresh_actors.finance("KS").get("/regions/KS/reconciliation", query_string=query)
    body = assert_problem(r, 422)
    assert "period" in body.get("errors", {}), body
