"""A fourth member region joins a running multi-worker server (DESIGN §8,
POST /regions) and takes part like a seeded one, with no restart: one of its
vouchers is redeemed at a provider of another region, settled with both
regions' approvals, reconciled in a signed statement that verifies, and the
checkpoint that follows covers its entries and verifies offline."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import add_evidence_over_http, current_month, make_uscc, wait_for_checkpoint
from server import seeded_server as server  # noqa: F401 (the module's fixture)
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.ledger.statement import verify_statement

BIN = os.path.dirname(sys.executable)
NEW = "HZ"
POLICY = {"effective_from": "2026-01-01", "enterprise_cap_fen": 20_000_000, "team_cap_fen": 5_000_000,
          "subsidy_ratio_bp": 6000, "validity_days": 365, "payout_cycle": "monthly", "budget_fen": 300_000_000}


def call(server, method, path, token, body=None, status=200):
    reply = server.client.api(method, path, token, body)
    assert reply.status == status, (method, path, reply.raw)
    return reply.json


def test_a_fourth_region_joins_a_running_server_and_is_settled_and_reconciled(server, tmp_path):
    tokens = server.actors.token
    admin = tokens("admin")
    region = call(server, "POST", "/regions", admin,
                  {"code": NEW, "name_zh": "杭州", "name_en": "Hangzhou", "policy": POLICY}, status=201)
    assert region["code"] == NEW and region["budget_remaining_fen"] == POLICY["budget_fen"]
    assert region["policy"]["subsidy_ratio_bp"] == 6000
    # Every worker answers for it at once: ask several times, any worker may take each call.
    for _ in range(8):
        assert call(server, "GET", f"/regions/{NEW}", admin)["code"] == NEW
    keys = call(server, "GET", "/ledger/keys", None)
    assert [k["region"] for k in keys["keys"]].count(NEW) == 1

    officer, finance, finance_second = (tokens("officer", region=NEW), tokens("finance", region=NEW),
                                        tokens("finance", region=NEW))
    enterprise = call(server, "POST", "/enterprises", officer, {
        "name": "杭州某科技有限公司", "uscc": make_uscc("330100"), "region": NEW, "kind": "enterprise"}, status=201)
    sme = tokens("sme", enterprise_id=enterprise["id"])
    application = call(server, "POST", "/applications", sme, {"amount_fen": 500_000, "purpose": "testing"},
                       status=201)
    voucher = call(server, "POST", f"/applications/{application['id']}/approve", officer, {})["voucher"]
    assert voucher["region"] == NEW

    # Spent at a Shanghai provider, under the new region's 60% subsidy ratio.
    provider = "prv-sh-001"
    redemption = call(server, "POST", "/redemptions", sme, {
        "voucher_id": voucher["id"], "provider_id": provider, "catalog_code": "TS-01",
        "service_fee_fen": 200_000, "amount_fen": 100_000}, status=201)
    rid = redemption["id"]
    provider_token = tokens("provider", provider_id=provider)
    add_evidence_over_http(server.client, rid, provider_token)
    call(server, "POST", f"/redemptions/{rid}/claim", provider_token,
         {"invoice_no": "HZ-INV-1", "service_fee_fen": 200_000, "amount_fen": 100_000})
    call(server, "POST", f"/redemptions/{rid}/confirm", sme, {})
    assert call(server, "POST", f"/redemptions/{rid}/approve", officer, {})["status"] == "redeemed"

    batch = call(server, "POST", "/settlements", finance, {"period": current_month()}, status=201)
    assert batch["approvals_required"] == sorted([NEW, "SH"]) and batch["total_fen"] == 100_000
    call(server, "POST", f"/settlements/{batch['id']}/approve", finance_second, {})
    call(server, "POST", f"/settlements/{batch['id']}/approve", tokens("finance", region="SH"), {})
    assert call(server, "POST", f"/settlements/{batch['id']}/execute", finance, {})["status"] == "executed"

    statement = call(server, "GET", f"/regions/{NEW}/reconciliation?period={current_month()}", finance)
    keys = call(server, "GET", "/ledger/keys", None)
    verify_statement(statement, keys)  # signed by the new region's key; every check ok
    assert all(check["ok"] for check in statement["checks"])

    # The next published checkpoint covers the new region's entries, and the whole log verifies offline.
    export = server.client.api("GET", "/ledger/export", admin, headers={"Accept": "*/*"})
    assert export.status == 200
    checkpoint = wait_for_checkpoint(server.client, int(export.headers["Ledger-Tree-Size"]))
    (tmp_path / "checkpoint.txt").write_bytes(checkpoint.raw)
    (tmp_path / "ledger.jsonl").write_bytes(export.raw)
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    verified = subprocess.run([os.path.join(BIN, "vouchers"), "verify", str(tmp_path / "ledger.jsonl"),
                               "--checkpoint", str(tmp_path / "checkpoint.txt"), "--keys", str(tmp_path / "keys.json")],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    with server.app.app_context(), Session(get_engine()) as session:
        assert check_all(session) == []
