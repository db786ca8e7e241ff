"""Who may do what (DESIGN §5, normative): every /api/v1 operation against every kind
of principal, including cross-tenant attempts, and the 401s of missing, malformed,
unknown, revoked and expired tokens.

Convention checked throughout: a principal that may not even *see* a resource gets
404 (its existence must not leak); one that can see it but may not act on it gets
403; a refused request changes nothing (no ledger entry).
"""
from __future__ import annotations

import itertools
import os
import secrets
from datetime import date, datetime, timedelta, timezone

import pytest
from conftest import REPO
from helpers import (
    add_evidence,
    assert_problem,
    current_month,
    ledger_size,
    make_uscc,
    pdf_bytes,
    propose_catalogue_change,
    publish,
    unique_invoice,
    upload_document,
)
from sqlmodel import Session

from voucher_service.clock import local_date, utc_now
from voucher_service.db import get_engine
from voucher_service.http import access, auth

PROBLEM_JSON = "application/problem+json"

# name -> (role, binding). "Owner" objects below belong to ent-ks-003 (a KS enterprise)
# and are spent at prv-sh-001 (an SH provider), so both the KS and the SH side are involved.
PRINCIPALS = {
    "sme_owner": ("sme", {"enterprise_id": "ent-ks-003"}),
    "sme_other_ks": ("sme", {"enterprise_id": "ent-ks-001"}),
    "sme_sh": ("sme", {"enterprise_id": "ent-sh-001"}),
    "prv_sh1": ("provider", {"provider_id": "prv-sh-001"}),
    "prv_sh4": ("provider", {"provider_id": "prv-sh-004"}),
    "prv_ks2": ("provider", {"provider_id": "prv-ks-002"}),
    "off_ks": ("officer", {"region": "KS"}),
    "off_sh": ("officer", {"region": "SH"}),
    "off_wj": ("officer", {"region": "WJ"}),
    "fin_ks": ("finance", {"region": "KS"}),
    "fin_sh": ("finance", {"region": "SH"}),
    "auditor": ("auditor", {}),
    "admin": ("admin", {}),
}
EVERYONE = list(PRINCIPALS)

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def who(actors):
    clients = {name: actors.client(role, **binding) for name, (role, binding) in PRINCIPALS.items()}
    clients["anon"] = actors.anonymous()
    # Finance officers outside the matrix: they create and co-approve batches,
    # so that the matrix's own principals are never a batch's creator.
    for name, region in (("_fin_ks_creator", "KS"), ("_fin_ks_second", "KS"), ("_fin_sh_second", "SH")):
        clients[name] = actors.client("finance", region=region)
    # An officer outside the matrix proposes payout account changes, so that the
    # matrix's KS officer is never the proposer of the change it confirms.
    clients["_off_ks_proposer"] = actors.client("officer", region="KS")
    # Officers of the regions the matrix adds (POST /regions): under the default
    # quorum, every member region must approve a catalogue change.
    clients["_officer_of"] = lambda region: actors.client("officer", region=region)
    clients["_app"] = actors.app
    return clients


# --- building blocks, through the API ----------------------------------------------

def issue_voucher(who, sme="sme_owner", officer="off_ks", amount_fen=100_000):
    r = who[sme].post("/applications", json={"amount_fen": amount_fen, "purpose": "access test"})
    assert r.status_code == 201, r.get_json()
    r = who[officer].post(f"/applications/{r.get_json()['id']}/approve", json={})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["voucher"]


def reserve(who, voucher_id, provider_id="prv-sh-001", sme="sme_owner"):
    r = who[sme].post("/redemptions", json={"voucher_id": voucher_id, "provider_id": provider_id,
                                            "catalog_code": "TS-01", "service_fee_fen": 20_000,
                                            "amount_fen": 10_000})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def setup_application(who):
    r = who["sme_owner"].post("/applications", json={"amount_fen": 50_000, "purpose": "access test"})
    assert r.status_code == 201, r.get_json()
    return {"id": r.get_json()["id"]}


def setup_voucher(who):
    voucher = issue_voucher(who)
    return {"id": voucher["id"], "valid_until": voucher["valid_until"]}


def setup_reserved(who):
    return {"id": reserve(who, issue_voucher(who)["id"])}


def setup_reserved_at_ks(who):
    return {"id": reserve(who, issue_voucher(who)["id"], provider_id="prv-ks-002")}


def setup_evidenced(who):
    """Reserved, with the contract and invoice a claim needs."""
    target = setup_reserved(who)
    add_evidence(who["prv_sh1"], target["id"])
    return target


def setup_document(who):
    """Reserved, with one document."""
    target = setup_reserved(who)
    r = upload_document(who["prv_sh1"], target["id"], "contract")
    assert r.status_code == 201, r.get_json()
    return {**target, "sha256": r.get_json()["sha256"]}


def setup_claimed(who):
    rid = setup_evidenced(who)["id"]
    r = who["prv_sh1"].post(f"/redemptions/{rid}/claim",
                            json={"invoice_no": unique_invoice(), "service_fee_fen": 20_000, "amount_fen": 10_000})
    assert r.status_code == 200, r.get_json()
    return {"id": rid}


def setup_confirmed(who):
    rid = setup_claimed(who)["id"]
    assert who["sme_owner"].post(f"/redemptions/{rid}/confirm").status_code == 200
    return {"id": rid}


def setup_provider_ks(who):
    r = who["off_ks"].post("/providers", json={"name": f"KS provider {next(_counter)}", "uscc": make_uscc(),
                                               "region": "KS", "categories": ["testing"]})
    assert r.status_code == 201, r.get_json()
    return {"id": r.get_json()["id"]}


def setup_suspended_provider_ks(who):
    target = setup_provider_ks(who)
    assert who["off_ks"].post(f"/providers/{target['id']}/suspend").status_code == 200
    return target


def setup_provider_sh(who):
    r = who["off_sh"].post("/providers", json={"name": f"SH provider {next(_counter)}", "uscc": make_uscc("310115"),
                                               "region": "SH", "categories": ["testing"]})
    assert r.status_code == 201, r.get_json()
    return {"id": r.get_json()["id"]}


def setup_excluded_provider(who):
    """An SH provider that KS excludes for its vouchers."""
    target = setup_provider_sh(who)
    r = who["off_ks"].post("/regions/KS/excluded-providers", json={"provider_id": target["id"], "reason": "access"})
    assert r.status_code == 201, r.get_json()
    return target


PAYOUT_ACCOUNT = {"account_name": "Access test account", "bank_name": "Bank of Kunshan", "account_no": "6222000011112222"}


def setup_pending_payout_account(who):
    """A new KS provider with a payout account change proposed by a KS officer outside the matrix."""
    target = setup_provider_ks(who)
    r = who["_off_ks_proposer"].put(f"/providers/{target['id']}/payout-account", json=PAYOUT_ACCOUNT)
    assert r.status_code == 202, r.get_json()
    return target


def setup_catalog_proposal(who):
    """An open proposal of SH's to add an item (SH's approval is its first)."""
    code = f"AC-{secrets.token_hex(4).upper()}"
    proposal = propose_catalogue_change(who["off_sh"], "POST", "/catalog", {
        "code": code, "category": "testing", "name_zh": "访问测试", "name_en": "Access test",
        "max_subsidy_ratio_bp": 5000})
    return {"id": proposal["id"], "code": code}


def setup_catalog_item(who):
    """An item in the catalogue: SH proposed it, every other member region approved it."""
    target = setup_catalog_proposal(who)
    others = [region["code"] for region in who["off_sh"].get("/regions").get_json() if region["code"] != "SH"]
    for region in others:
        r = who["_officer_of"](region).post(f"/catalog/proposals/{target['id']}/approve")
        assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "adopted", r.get_json()
    return {"id": target["code"]}


def setup_world(_who):
    return {"id": None}


def setup_redeemed(who):
    rid = setup_confirmed(who)["id"]
    assert who["off_ks"].post(f"/redemptions/{rid}/approve").status_code == 200
    return {"id": rid}


def setup_settlement(who):
    """A draft KS batch paying prv-sh-001 (SH): it touches KS and SH."""
    setup_redeemed(who)
    r = who["_fin_ks_creator"].post("/settlements", json={"period": current_month()})
    assert r.status_code == 201, r.get_json()
    return {"id": r.get_json()["id"]}


def setup_approved_settlement(who):
    target = setup_settlement(who)
    for approver in ("_fin_ks_second", "_fin_sh_second"):
        r = who[approver].post(f"/settlements/{target['id']}/approve")
        assert r.status_code == 200, r.get_json()
    return target


def setup_executed_settlement(who):
    target = setup_approved_settlement(who)
    r = who["_fin_ks_creator"].post(f"/settlements/{target['id']}/execute")
    assert r.status_code == 200, r.get_json()
    return {**target, "redemption_ids": [rid for line in r.get_json()["lines"] for rid in line["redemption_ids"]]}


def setup_redeemed_amount(who):
    rid = setup_redeemed(who)["id"]
    return {"id": rid, "amount_fen": who["off_ks"].get(f"/redemptions/{rid}").get_json()["amount_fen"]}


def setup_receivable(who):
    """prv-sh-001 owes KS back 1,000 fen: a settled redemption, partly recovered."""
    target = setup_executed_settlement(who)
    r = who["off_ks"].post(f"/redemptions/{target['redemption_ids'][0]}/recover",
                           json={"amount_fen": 1_000, "reason": "access test"})
    assert r.status_code == 200, r.get_json()
    return {"id": "prv-sh-001"}


def setup_entry(who):
    """The voucher.issued entry of a voucher of the owner (a KS enterprise)."""
    r = who["sme_owner"].post("/applications", json={"amount_fen": 20_000, "purpose": "ledger access"})
    r = who["off_ks"].post(f"/applications/{r.get_json()['id']}/approve", json={})
    assert r.status_code == 200, r.get_json()
    publish(who["_app"])  # so that its receipt exists
    return {"id": r.get_json()["ledger"]["seq"]}


SETUPS = {f.__name__.removeprefix("setup_"): f for f in (
    setup_application, setup_voucher, setup_reserved, setup_reserved_at_ks, setup_evidenced, setup_document,
    setup_claimed, setup_confirmed, setup_provider_ks, setup_suspended_provider_ks, setup_pending_payout_account,
    setup_provider_sh, setup_excluded_provider,
    setup_catalog_proposal, setup_catalog_item, setup_world, setup_entry, setup_redeemed, setup_settlement,
    setup_approved_settlement, setup_executed_settlement, setup_redeemed_amount, setup_receivable)}


def new_catalog_body(_target):
    return {"code": f"AC-{secrets.token_hex(4).upper()}", "category": "testing", "name_zh": "新服务",
            "name_en": "New service", "max_subsidy_ratio_bp": 4000}


def new_party_body(kind):
    def body(_target):
        base = {"name": f"New {kind} {next(_counter)}", "uscc": make_uscc(), "region": "KS"}
        return {**base, "categories": ["testing"]} if kind == "provider" else {**base, "kind": "enterprise"}
    return body


def new_redemption_body(target):
    return {"voucher_id": target["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
            "service_fee_fen": 20_000, "amount_fen": 10_000}


def extend_body(target):
    later = date.fromisoformat(target["valid_until"]) + timedelta(days=1)
    return {"valid_until": later.isoformat(), "reason": "delivery delayed"}


POLICY_BODY = {"enterprise_cap_fen": 20_000_000, "team_cap_fen": 5_000_000, "subsidy_ratio_bp": 5000,
               "validity_days": 365, "payout_cycle": "monthly", "budget_fen": 100_000_000}


def new_region_body(_target):
    code = "X" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
    return {"code": code, "name_zh": "新成员", "name_en": "New member",
            "policy": {**POLICY_BODY, "effective_from": local_date(utc_now()).isoformat()}}


def future_policy_body(_target):
    # One policy a day per region: every call a later day.
    return {**POLICY_BODY, "effective_from": (local_date(utc_now()) + timedelta(days=30 + next(_counter))).isoformat()}


def funding_body(_target):
    return {"amount_fen": 1_000, "fiscal_year": datetime.now(timezone(timedelta(hours=8))).year,
            "reference": f"KS-{next(_counter)}"}


def const(body):
    return lambda _target: body


class Upload:
    """A multipart/form-data body: a document of this kind (a fresh PDF)."""

    def __init__(self, kind):
        self.kind = kind


def new_document_body(_target):
    return Upload("acceptance")


def claim_body(_target):
    return {"invoice_no": unique_invoice(), "service_fee_fen": 20_000, "amount_fen": 9_000}


# op -> (method, path template, setup, body factory or None)
OPERATIONS = {
    "list_regions": ("GET", "/regions", "world", None),
    "get_region": ("GET", "/regions/KS", "world", None),
    "create_region": ("POST", "/regions", "world", new_region_body),
    "adopt_policy_ks": ("POST", "/regions/KS/policies", "world", future_policy_body),
    "fund_budget_ks": ("POST", "/regions/KS/budget", "world", funding_body),
    "get_budget_ks": ("GET", "/regions/KS/budget", "world", None),
    "list_catalog": ("GET", "/catalog", "world", None),
    "get_catalog_item": ("GET", "/catalog/TS-01", "world", None),
    "list_catalog_categories": ("GET", "/catalog/categories", "world", None),
    "create_catalog_item": ("POST", "/catalog", "world", new_catalog_body),
    "update_catalog_item": ("PATCH", "/catalog/{id}", "catalog_item", const({"name_en": "Renamed service"})),
    "list_catalog_proposals": ("GET", "/catalog/proposals", "world", None),
    "get_catalog_proposal": ("GET", "/catalog/proposals/{id}", "catalog_proposal", None),
    "approve_catalog_proposal": ("POST", "/catalog/proposals/{id}/approve", "catalog_proposal", None),
    "withdraw_catalog_proposal": ("POST", "/catalog/proposals/{id}/withdraw", "catalog_proposal", None),
    "list_providers": ("GET", "/providers", "world", None),
    "get_provider": ("GET", "/providers/prv-ks-002", "world", None),
    "create_provider_ks": ("POST", "/providers", "world", new_party_body("provider")),
    "suspend_provider_ks": ("POST", "/providers/{id}/suspend", "provider_ks", None),
    "reinstate_provider_ks": ("POST", "/providers/{id}/reinstate", "suspended_provider_ks", None),
    "list_excluded_providers": ("GET", "/regions/KS/excluded-providers", "world", None),
    "get_excluded_provider": ("GET", "/regions/KS/excluded-providers/{id}", "excluded_provider", None),
    "exclude_provider": ("POST", "/regions/KS/excluded-providers", "provider_sh",
                         lambda target: {"provider_id": target["id"], "reason": "access test"}),
    "readmit_provider": ("DELETE", "/regions/KS/excluded-providers/{id}", "excluded_provider", None),
    "get_payout_account": ("GET", "/providers/prv-ks-002/payout-account", "world", None),
    "propose_payout_account": ("PUT", "/providers/{id}/payout-account", "provider_ks", const(PAYOUT_ACCOUNT)),
    "confirm_payout_account": ("POST", "/providers/{id}/payout-account/confirm", "pending_payout_account", None),
    "provider_account": ("GET", "/providers/prv-ks-002/account", "world", None),
    "list_enterprises": ("GET", "/enterprises", "world", None),
    "get_enterprise": ("GET", "/enterprises/ent-ks-003", "world", None),
    "create_enterprise_ks": ("POST", "/enterprises", "world", new_party_body("enterprise")),
    "list_applications": ("GET", "/applications", "world", None),
    "submit_application": ("POST", "/applications", "world", const({"amount_fen": 10_000, "purpose": "x"})),
    "get_application": ("GET", "/applications/{id}", "application", None),
    "approve_application": ("POST", "/applications/{id}/approve", "application", const({})),
    "reject_application": ("POST", "/applications/{id}/reject", "application", const({"reason": "no"})),
    "list_vouchers": ("GET", "/vouchers", "world", None),
    "get_voucher": ("GET", "/vouchers/{id}", "voucher", None),
    "void_voucher": ("POST", "/vouchers/{id}/void", "voucher", const({"reason": "fraud"})),
    "extend_voucher": ("POST", "/vouchers/{id}/extend", "voucher", extend_body),
    "list_redemptions": ("GET", "/redemptions", "world", None),
    "reserve": ("POST", "/redemptions", "voucher", new_redemption_body),
    "get_redemption": ("GET", "/redemptions/{id}", "reserved", None),
    "get_redemption_at_ks": ("GET", "/redemptions/{id}", "reserved_at_ks", None),
    "claim": ("POST", "/redemptions/{id}/claim", "evidenced", claim_body),
    "upload_document": ("POST", "/redemptions/{id}/documents", "reserved", new_document_body),
    "list_documents": ("GET", "/redemptions/{id}/documents", "document", None),
    "get_document": ("GET", "/redemptions/{id}/documents/{sha256}", "document", None),
    "confirm": ("POST", "/redemptions/{id}/confirm", "claimed", None),
    "approve_redemption": ("POST", "/redemptions/{id}/approve", "confirmed", None),
    "approve_redemption_at_ks": ("POST", "/redemptions/{id}/approve", "reserved_at_ks", None),
    "reject_redemption": ("POST", "/redemptions/{id}/reject", "reserved", const({"reason": "no service"})),
    "cancel_redemption": ("POST", "/redemptions/{id}/cancel", "reserved", const({})),
    "recover_redemption": ("POST", "/redemptions/{id}/recover", "redeemed_amount",
                           lambda target: {"amount_fen": target["amount_fen"], "reason": "audit"}),
    "repay_provider": ("POST", "/providers/{id}/repayments", "receivable",
                       const({"amount_fen": 1, "reference": "BANK-1"})),
    "create_settlement": ("POST", "/settlements", "redeemed", lambda _target: {"period": current_month()}),
    "list_settlements": ("GET", "/settlements", "world", None),
    "get_settlement": ("GET", "/settlements/{id}", "settlement", None),
    "approve_settlement": ("POST", "/settlements/{id}/approve", "settlement", None),
    "execute_settlement": ("POST", "/settlements/{id}/execute", "approved_settlement", None),
    "cancel_settlement": ("POST", "/settlements/{id}/cancel", "settlement", const({"reason": "recount"})),
    "settlement_results": ("POST", "/settlements/{id}/results", "executed_settlement", const({"results": [
        {"provider_id": "prv-sh-001", "result": "paid", "bank_reference": "CNAPS-1"}]})),
    "settlement_payouts": ("GET", "/settlements/{id}/payouts", "settlement", None),
    "reconciliation": ("GET", f"/regions/KS/reconciliation?period={current_month()}", "world", None),
    "ledger_checkpoint": ("GET", "/ledger/checkpoint", "world", None),
    "ledger_keys": ("GET", "/ledger/keys", "world", None),
    "ledger_witnesses": ("GET", "/ledger/witnesses", "world", None),
    "ledger_inclusion": ("GET", "/ledger/proofs/inclusion?index=0&tree_size=2", "world", None),
    "ledger_consistency": ("GET", "/ledger/proofs/consistency?first=1&second=2", "world", None),
    "ledger_entries": ("GET", "/ledger/entries", "world", None),
    "ledger_entry": ("GET", "/ledger/entries/{id}", "entry", None),
    "ledger_receipt": ("GET", "/ledger/receipts/{id}", "entry", None),
    "ledger_export": ("GET", "/ledger/export", "world", None),
    "ledger_beancount": ("GET", "/ledger/beancount", "world", None),
    "reports_programme": ("GET", "/reports/programme", "world", None),
}

ALL_OK = {name: 200 for name in EVERYONE}
ALL_403 = {name: 403 for name in EVERYONE}
# Owner objects: an SME sees its own, officers and finance their region's, auditor and admin all.
OWNED_READ = {"sme_owner": 200, "sme_other_ks": 404, "sme_sh": 404, "prv_sh1": 404, "prv_sh4": 404,
              "prv_ks2": 404, "off_ks": 200, "off_sh": 404, "off_wj": 404, "fin_ks": 200, "fin_sh": 404,
              "auditor": 200, "admin": 200}
# Deciding an application: only an officer of the enterprise's region.
APPLICATION_DECISION = {**{k: (403 if v == 200 else v) for k, v in OWNED_READ.items()}, "off_ks": 200}
# A redemption of a KS voucher at an SH provider is visible to both regions' officers and finance
# and to that provider.
REDEMPTION_READ = {**OWNED_READ, "prv_sh1": 200, "off_sh": 200, "fin_sh": 200}
REDEMPTION_ACT = {k: (403 if v == 200 else v) for k, v in REDEMPTION_READ.items()}

SETTLEMENT_READ = {**{name: 404 for name in EVERYONE}, "fin_ks": 200, "fin_sh": 200, "auditor": 200, "admin": 200}
SETTLEMENT_ACT = {k: (403 if v == 200 else v) for k, v in SETTLEMENT_READ.items()}

EXPECTED = {
    "list_regions": ALL_OK,
    "get_region": ALL_OK,
    # New member regions are the operator's; policies the region's officers', money its finance officers'.
    "create_region": {**ALL_403, "admin": 201},
    "adopt_policy_ks": {**ALL_403, "off_ks": 201},
    "fund_budget_ks": {**ALL_403, "fin_ks": 201},
    "get_budget_ks": {**ALL_403, "off_ks": 200, "fin_ks": 200, "auditor": 200, "admin": 200},
    "list_catalog": ALL_OK,
    "get_catalog_item": ALL_OK,
    "list_catalog_categories": ALL_OK,
    # Any officer proposes a change of the shared catalogue (202: in effect once the regions approve).
    "create_catalog_item": {**ALL_403, "off_ks": 202, "off_sh": 202, "off_wj": 202},
    "update_catalog_item": {**ALL_403, "off_ks": 202, "off_sh": 202, "off_wj": 202},
    # Governance is transparent: every token reads the proposals.
    "list_catalog_proposals": ALL_OK,
    "get_catalog_proposal": ALL_OK,
    # SH proposed: every other region's officer approves once; SH's approval is already counted.
    "approve_catalog_proposal": {**ALL_403, "off_ks": 200, "off_wj": 200, "off_sh": 409},
    # Only the proposing region takes it back.
    "withdraw_catalog_proposal": {**ALL_403, "off_sh": 200},
    "list_providers": ALL_OK,
    "get_provider": ALL_OK,
    # Registered and suspended by the home region's officer only.
    "create_provider_ks": {**ALL_403, "off_ks": 201},
    "suspend_provider_ks": {**ALL_403, "off_ks": 200},
    "reinstate_provider_ks": {**ALL_403, "off_ks": 200},
    # Where a KS voucher may not be spent: everyone reads it; only KS officers decide it.
    "list_excluded_providers": ALL_OK,
    "get_excluded_provider": ALL_OK,
    "exclude_provider": {**ALL_403, "off_ks": 201},
    "readmit_provider": {**ALL_403, "off_ks": 200},
    # Bank details: the provider reads its own, finance of every region (any batch may pay it),
    # the home region's officers, who alone change them, two of them for each change.
    "get_payout_account": {**ALL_403, "prv_ks2": 200, "off_ks": 200, "fin_ks": 200, "fin_sh": 200,
                           "auditor": 200, "admin": 200},
    "propose_payout_account": {**ALL_403, "off_ks": 202},
    "confirm_payout_account": {**ALL_403, "off_ks": 200},
    # What a provider is owed and was paid: itself, its home region's officers, auditors and admins.
    "provider_account": {**ALL_403, "prv_ks2": 200, "off_ks": 200, "off_sh": 200, "off_wj": 200, "auditor": 200,
                         "admin": 200},
    "list_enterprises": {**ALL_OK, "prv_sh1": 403, "prv_sh4": 403, "prv_ks2": 403},
    "get_enterprise": OWNED_READ,
    "create_enterprise_ks": {**ALL_403, "off_ks": 201},
    "list_applications": {**ALL_OK, "prv_sh1": 403, "prv_sh4": 403, "prv_ks2": 403},
    "submit_application": {**ALL_403, "sme_owner": 201, "sme_other_ks": 201, "sme_sh": 201},
    "get_application": OWNED_READ,
    "approve_application": APPLICATION_DECISION,
    "reject_application": APPLICATION_DECISION,
    "list_vouchers": {**ALL_OK, "prv_sh1": 403, "prv_sh4": 403, "prv_ks2": 403},
    "get_voucher": OWNED_READ,
    "void_voucher": {**{k: (403 if v == 200 else v) for k, v in OWNED_READ.items()}, "off_ks": 200},
    "extend_voucher": {**{k: (403 if v == 200 else v) for k, v in OWNED_READ.items()}, "off_ks": 200},
    "list_redemptions": ALL_OK,
    # Spending: only the holder; whoever cannot see the voucher is told it does not exist.
    "reserve": {**{k: (403 if v == 200 else v) for k, v in OWNED_READ.items()}, "sme_owner": 201},
    "get_redemption": REDEMPTION_READ,
    # At a KS provider, SH principals and other providers do not see it.
    "get_redemption_at_ks": {**OWNED_READ, "prv_ks2": 200},
    "claim": {**REDEMPTION_ACT, "prv_sh1": 200},
    # Evidence: the provider of it uploads; the redemption's readers read it, finance officers excepted.
    "upload_document": {**REDEMPTION_ACT, "prv_sh1": 201},
    "list_documents": {**REDEMPTION_READ, "fin_ks": 403, "fin_sh": 403},
    "get_document": {**REDEMPTION_READ, "fin_ks": 403, "fin_sh": 403},
    "confirm": {**REDEMPTION_ACT, "sme_owner": 200},
    "approve_redemption": {**REDEMPTION_ACT, "off_ks": 200},
    "approve_redemption_at_ks": {**{k: (403 if v == 200 else v) for k, v in OWNED_READ.items()},
                                 "prv_ks2": 403, "off_ks": 409},  # reserved, not yet confirmed: a rule, not a role
    "reject_redemption": {**REDEMPTION_ACT, "off_ks": 200},
    "cancel_redemption": {**REDEMPTION_ACT, "sme_owner": 200},
    # Recovered by the issuing region's officers; repayments recorded by the finance officer of the region
    # repaid (SH is owed nothing back: a rule, not a role).
    "recover_redemption": {**REDEMPTION_ACT, "off_ks": 200},
    "repay_provider": {**ALL_403, "fin_ks": 201, "fin_sh": 409},
    # Finance officers of the paying region create; SH pays quarterly, so a month is a rule, not a role.
    "create_settlement": {**ALL_403, "fin_ks": 201, "fin_sh": 409},
    "list_settlements": {**ALL_403, "fin_ks": 200, "fin_sh": 200, "auditor": 200, "admin": 200},
    # A KS batch paying an SH provider: finance of both regions see it; one of each approves.
    "get_settlement": SETTLEMENT_READ,
    "settlement_payouts": SETTLEMENT_READ,
    "approve_settlement": {**SETTLEMENT_ACT, "fin_ks": 200, "fin_sh": 200},
    "execute_settlement": {**SETTLEMENT_ACT, "fin_ks": 200},
    "cancel_settlement": {**SETTLEMENT_ACT, "fin_ks": 200},
    "settlement_results": {**SETTLEMENT_ACT, "fin_ks": 200},
    # KS's signed statement: its finance officers, auditors and admins; another region's finance too is refused.
    "reconciliation": {**ALL_403, "fin_ks": 200, "auditor": 200, "admin": 200},
    # Public: anyone holding the keys checks the log.
    "ledger_checkpoint": ALL_OK,
    "ledger_keys": ALL_OK,
    "ledger_witnesses": ALL_OK,
    "ledger_inclusion": ALL_OK,
    "ledger_consistency": ALL_OK,
    # Everyone lists the entries that concern them; single entries and receipts as the owned objects.
    "ledger_entries": ALL_OK,
    "ledger_entry": OWNED_READ,
    "ledger_receipt": OWNED_READ,
    "ledger_export": {**ALL_403, "auditor": 200, "admin": 200},
    "ledger_beancount": {**ALL_403, "auditor": 200, "admin": 200},
    # The programme's own figures are public.
    "reports_programme": ALL_OK,
}
assert set(EXPECTED) == set(OPERATIONS)
assert all(set(row) == set(EVERYONE) for row in EXPECTED.values())

CASES = [pytest.param(op, name, status, id=f"{op}-{name}-{status}")
         for op, row in EXPECTED.items() for name, status in row.items()]

_targets: dict[str, dict] = {}


def _target(who, setup, fresh):
    if fresh:
        return SETUPS[setup](who)
    if setup not in _targets:
        _targets[setup] = SETUPS[setup](who)
    return _targets[setup]


def _call(client, method, path, body):
    if isinstance(body, Upload):
        return upload_document(client, path.split("/")[2], body.kind, pdf_bytes())
    if method == "GET":
        return client.get(path)
    if method == "PATCH":
        return client.patch(path, json=body)
    if method == "PUT":
        return client.put(path, json=body)
    if method == "DELETE":
        return client.delete(path)
    return client.post(path, json=body)


def endpoint_for(app, method: str, path: str) -> str:
    return app.url_map.bind("localhost").match("/api/v1" + path.split("?")[0], method)[0]


@pytest.mark.parametrize("op, name, expected", CASES)
def test_role_matrix(app, who, op, name, expected):
    method, template, setup, body_factory = OPERATIONS[op]
    endpoint = endpoint_for(app, method, template.replace("{id}", "0"))
    if not access.is_public(endpoint) and PRINCIPALS[name][0] not in access.allowed_roles(endpoint):
        # The policy table refuses this role before the view: the matrix above must
        # agree that it may not act here, and the answer is then always 403.
        assert expected >= 400, f"the access table refuses {name} what the matrix grants on {op}"
        expected = 403
    # A success changes state, so it gets an object of its own; refusals share one.
    target = _target(who, setup, fresh=expected < 300)
    path = template.format(**target)
    body = body_factory(target) if body_factory else ({} if method != "GET" else None)
    before = ledger_size(app)
    r = _call(who[name], method, path, body)
    if expected >= 400:
        assert_problem(r, expected)
        assert ledger_size(app) == before, "a refused request must not change state"
    else:
        assert r.status_code == expected, (r.status_code, r.get_json())
        if method == "GET":
            assert ledger_size(app) == before


def test_every_registered_route_has_an_access_policy(app):
    """A new route without a row in voucher_service/access.py fails here (and is refused to everyone)."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    # The console's pages pass the gate and call the API, held to its rows (tests/functional/console).
    missing = sorted(e for e in endpoints if e not in access.POLICY and e not in access.UNVERSIONED_PUBLIC
                     and not e.startswith(access.CONSOLE_BLUEPRINT + "."))
    assert not missing, missing
    stale = sorted(set(access.POLICY) - endpoints)
    assert not stale, stale
    for endpoint, row in access.POLICY.items():
        assert row == access.PUBLIC or (row and set(row) <= set(access.ROLES)), endpoint
        assert row == access.PUBLIC or set(row.values()) <= set(access.RULES), endpoint


def test_docs_access_page_is_the_table(app):
    with open(os.path.join(REPO, "docs", "access.md"), encoding="utf-8") as handle:
        assert handle.read() == access.render_markdown(access.api_routes(app)), \
            "docs/access.md is stale: python -m voucher_service.http.access > docs/access.md"


CONCRETE_IDS = {"{id}", "KS", "TS-01", "prv-ks-002", "ent-ks-003"}


def test_every_documented_operation_is_in_the_matrix(app):
    """A new /api/v1 endpoint without rows in the access matrix fails here."""
    spec = app.test_client().get("/openapi.json").get_json()

    def shape(path):
        path = path.split("?")[0]
        return "/".join("*" if p.startswith("{") or p in CONCRETE_IDS else p for p in path.split("/"))

    documented = {(method.upper(), shape(path.removeprefix("/api/v1")))
                  for path, item in spec["paths"].items() if path.startswith("/api/v1/")
                  for method in item if method in ("get", "post", "patch", "put", "delete")}
    covered = {(method, shape(template)) for method, template, _setup, _body in OPERATIONS.values()}
    assert documented, "the served OpenAPI document lists no /api/v1 operation"
    assert documented <= covered, sorted(documented - covered)


# --- cross-tenant, spelled out ------------------------------------------------------

def test_another_enterprise_can_neither_read_nor_spend_a_voucher(app, who):
    voucher = issue_voucher(who)
    before = ledger_size(app)
    assert_problem(who["sme_other_ks"].get(f"/vouchers/{voucher['id']}"), 404)
    r = who["sme_other_ks"].post("/redemptions", json={
        "voucher_id": voucher["id"], "provider_id": "prv-sh-001", "catalog_code": "TS-01",
        "service_fee_fen": 20_000, "amount_fen": 10_000})
    assert_problem(r, 404)
    # The 404 of an existing voucher is indistinguishable from that of a missing one.
    missing = who["sme_other_ks"].get("/vouchers/vch_doesnotexist")
    assert_problem(missing, 404)
    assert ledger_size(app) == before
    v = who["sme_owner"].get(f"/vouchers/{voucher['id']}").get_json()
    assert (v["available_fen"], v["held_fen"]) == (100_000, 0)


def test_lists_show_only_what_the_principal_may_see(who):
    voucher = issue_voucher(who)
    rid_sh = reserve(who, voucher["id"])
    rid_ks = reserve(who, voucher["id"], provider_id="prv-ks-002")

    def ids(client, path, **query):
        r = client.get(path, query_string={"limit": 100, **query})
        assert r.status_code == 200, r.get_json()
        return {item.get("id") or item.get("code") for item in r.get_json()["items"]}

    assert voucher["id"] in ids(who["sme_owner"], "/vouchers")
    assert voucher["id"] not in ids(who["sme_other_ks"], "/vouchers")
    # Filtering by somebody else's enterprise does not widen what an SME sees.
    assert ids(who["sme_other_ks"], "/vouchers", enterprise_id="ent-ks-003") == set()
    assert voucher["id"] in ids(who["off_ks"], "/vouchers")
    assert voucher["id"] not in ids(who["off_sh"], "/vouchers")
    assert voucher["id"] not in ids(who["fin_sh"], "/vouchers")
    assert voucher["id"] in ids(who["auditor"], "/vouchers")

    assert {rid_sh, rid_ks} <= ids(who["sme_owner"], "/redemptions")
    assert ids(who["sme_other_ks"], "/redemptions", voucher_id=voucher["id"]) == set()
    assert rid_sh in ids(who["prv_sh1"], "/redemptions")
    assert rid_ks not in ids(who["prv_sh1"], "/redemptions")
    assert {rid_sh, rid_ks} & ids(who["prv_sh4"], "/redemptions") == set()
    assert rid_sh in ids(who["off_sh"], "/redemptions")
    assert rid_ks not in ids(who["off_sh"], "/redemptions")
    assert ids(who["off_wj"], "/redemptions", voucher_id=voucher["id"]) == set()

    assert ids(who["sme_owner"], "/enterprises") == {"ent-ks-003"}
    sh_enterprises = ids(who["off_sh"], "/enterprises")
    assert "ent-sh-001" in sh_enterprises and not any(e.startswith("ent-ks") for e in sh_enterprises)


def test_sh_officer_cannot_decide_for_ks(app, who):
    application = setup_application(who)
    confirmed = setup_confirmed(who)
    before = ledger_size(app)
    # SH cannot see KS applications at all: 404, as for its GET.
    assert_problem(who["off_sh"].get(f"/applications/{application['id']}"), 404)
    assert_problem(who["off_sh"].post(f"/applications/{application['id']}/approve", json={}), 404)
    # SH sees the redemption (it is at an SH provider) but KS pays: 403.
    body = assert_problem(who["off_sh"].post(f"/redemptions/{confirmed['id']}/approve"), 403)
    assert "KS" in body["detail"]
    assert_problem(who["off_sh"].post(f"/redemptions/{confirmed['id']}/reject", json={"reason": "x"}), 403)
    assert_problem(who["off_sh"].post("/providers/prv-ks-001/suspend"), 403)
    assert_problem(who["off_sh"].post("/providers", json={
        "name": "SH registers for KS", "uscc": make_uscc(), "region": "KS", "categories": ["testing"]}), 403)
    assert_problem(who["off_sh"].post("/enterprises", json={
        "name": "SH registers for KS", "uscc": make_uscc(), "region": "KS", "kind": "team"}), 403)
    assert ledger_size(app) == before
    assert who["off_ks"].get(f"/applications/{application['id']}").get_json()["status"] == "submitted"
    assert who["off_ks"].get(f"/redemptions/{confirmed['id']}").get_json()["status"] == "confirmed"
    assert who["off_ks"].get("/providers/prv-ks-001").get_json()["status"] == "active"


def test_a_provider_cannot_claim_another_providers_redemption(app, who):
    rid = setup_reserved(who)["id"]
    before = ledger_size(app)
    r = who["prv_sh4"].post(f"/redemptions/{rid}/claim",
                            json={"invoice_no": unique_invoice(), "service_fee_fen": 20_000, "amount_fen": 10_000})
    assert_problem(r, 404)
    assert ledger_size(app) == before
    assert who["sme_owner"].get(f"/redemptions/{rid}").get_json()["status"] == "reserved"


# --- authentication -----------------------------------------------------------------

def assert_unauthorized(response):
    assert_problem(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers


@pytest.mark.parametrize("header", [
    pytest.param(None, id="no-header"),
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param("Bearer    ", id="blank-token"),
    pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    pytest.param("Token vt_abc", id="other-scheme"),
    pytest.param("vt_abcdef", id="no-scheme"),
    pytest.param("Bearer vt_" + "a" * 43, id="unknown-token"),
    pytest.param("Bearer " + "x" * 5000, id="huge-token"),
    pytest.param("Bearer vt_abc\tdef", id="control-char"),
])
@pytest.mark.parametrize("method, path", [("GET", "/regions"), ("GET", "/vouchers"),
                                          ("POST", "/applications")])
def test_missing_or_malformed_credentials_are_401(app, header, method, path):
    http = app.test_client()
    headers = {} if header is None else {"Authorization": header}
    before = ledger_size(app)
    if method == "GET":
        r = http.get(f"/api/v1{path}", headers=headers)
    else:
        r = http.post(f"/api/v1{path}", json={"amount_fen": 100, "purpose": "x"}, headers=headers)
    assert_unauthorized(r)
    assert ledger_size(app) == before


def test_scheme_is_case_insensitive(actors):
    token = actors.token("auditor")
    r = actors.app.test_client().get("/api/v1/regions", headers={"Authorization": f"bearer {token}"})
    assert r.status_code == 200


PUBLIC = {"ledger_checkpoint", "ledger_keys", "ledger_witnesses", "ledger_inclusion", "ledger_consistency",
          "reports_programme"}


@pytest.mark.parametrize("op", sorted(PUBLIC))
def test_public_operations_need_no_token(app, who, op):
    method, template, _setup, _body = OPERATIONS[op]
    before = ledger_size(app)
    assert _call(who["anon"], method, template, None).status_code == 200
    assert ledger_size(app) == before


@pytest.mark.parametrize("op", sorted(set(OPERATIONS) - PUBLIC))
def test_every_operation_requires_a_token(app, who, op):
    method, template, setup, body_factory = OPERATIONS[op]
    target = _target(who, setup, fresh=False)
    body = body_factory(target) if body_factory else ({} if method != "GET" else None)
    before = ledger_size(app)
    assert_unauthorized(_call(who["anon"], method, template.format(**target), body))
    assert ledger_size(app) == before


@pytest.mark.parametrize("path", ["/applications", "/providers", "/redemptions"])
def test_no_token_is_401_even_with_an_invalid_body(app, path):
    r = app.test_client().post(f"/api/v1{path}", json={})
    assert_unauthorized(r)


def _mint(app, *, now=None, ttl_days=90, **binding):
    with app.app_context(), Session(get_engine()) as session:
        token, row = auth.create_token(session, now=now, ttl_days=ttl_days, **binding)
        session.commit()
        return token, row.id


def _get_vouchers(app, token):
    return app.test_client().get("/api/v1/vouchers", headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_token_is_401(app):
    token, token_id = _mint(app, role="sme", enterprise_id="ent-ks-003")
    assert _get_vouchers(app, token).status_code == 200
    with app.app_context(), Session(get_engine()) as session:
        assert auth.revoke_token(session, token_id)
        session.commit()
    assert_unauthorized(_get_vouchers(app, token))
    r = app.test_client().post("/api/v1/applications", json={"amount_fen": 100, "purpose": "x"},
                               headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "revoked-1"})
    assert_unauthorized(r)


def test_an_expired_token_is_401(app):
    now = datetime.now(timezone.utc)
    expired, _ = _mint(app, role="officer", region="KS", now=now - timedelta(days=2), ttl_days=1)
    assert_unauthorized(_get_vouchers(app, expired))
    # The same binding, still within its lifetime, works: it is the expiry that refuses.
    valid, _ = _mint(app, role="officer", region="KS", now=now - timedelta(days=2), ttl_days=3)
    assert _get_vouchers(app, valid).status_code == 200


# --- the two halves of each binding rule agree ----------------------------------------

LISTS = {  # list path -> (read path of one item, its id field)
    "/catalog/proposals": ("/catalog/proposals/{}", "id"),
    "/applications": ("/applications/{}", "id"),
    "/vouchers": ("/vouchers/{}", "id"),
    "/redemptions": ("/redemptions/{}", "id"),
    "/enterprises": ("/enterprises/{}", "id"),
    "/settlements": ("/settlements/{}", "id"),
    "/ledger/entries": ("/ledger/entries/{}", "seq"),
}


def _walk(client, path) -> set:
    """Every item of a list, through all its pages."""
    seen, query = set(), {"limit": 100}
    for _ in range(1000):
        r = client.get(path, query_string=query)
        if r.status_code != 200:
            return {r.status_code}
        body = r.get_json()
        key = LISTS[path][1]
        seen |= {item[key] for item in body["items"]}
        if path == "/ledger/entries":
            if body["next_start"] is None:
                return seen
            query = {"limit": 100, "start": body["next_start"]}
        else:
            if body["next_cursor"] is None:
                return seen
            query = {"limit": 100, "cursor": body["next_cursor"]}
    raise AssertionError(f"{path} did not end")


@pytest.mark.parametrize("path", sorted(LISTS))
def test_a_list_shows_exactly_the_objects_a_read_allows(who, path):
    """http/access.py holds each rule twice, as a list filter and as a predicate on one
    object: for every principal, the list is exactly what reading each object allows."""
    # Objects on both sides of the scheme, and a settlement touching KS and SH.
    setup_settlement(who)
    sh_voucher = issue_voucher(who, sme="sme_sh", officer="off_sh")
    reserve(who, sh_voucher["id"], provider_id="prv-ks-002", sme="sme_sh")
    everything = _walk(who["auditor"], path)
    assert everything, f"nothing to compare in {path}"
    read = LISTS[path][0]
    for name in EVERYONE:
        listed = _walk(who[name], path)
        if listed in ({403}, {401}):
            # The table refuses the role the list; then it may read none of the objects.
            assert all(who[name].get(read.format(i)).status_code in (403, 404) for i in everything), name
            continue
        readable = {i for i in everything if who[name].get(read.format(i)).status_code == 200}
        assert listed == readable, (name, sorted(listed ^ readable)[:5])
