"""Payout accounts with four eyes, and the provider's own view (DESIGN §9).

A change of bank details takes two officers of the provider's home region; the
number is masked (****1234) in every response and absent from every ledger entry,
which carries its SHA-256 instead. The provider's view is read against the ledger's
balances after a lifecycle driven through the API, redeemed, then settled.
"""
from __future__ import annotations

import hashlib
import json

import pytest
from helpers import (
    account_balances,
    assert_problem,
    assert_rule,
    current_month,
    make_uscc,
    nothing_changes,
    ok,
    redeem,
)
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.models import Account, LedgerEntry
from voucher_service.programme.context import Context
from voucher_service.providers import payout_accounts

NUMBER = "6222021001098765432"
OTHER_NUMBER = "95588000123456789012"
ACCOUNT = {"account_name": "昆山市质量技术监督综合检验检测中心", "bank_name": "中国工商银行昆山支行",
           "account_no": NUMBER}
KS_PROVIDER, SH_PROVIDER = "prv-ks-002", "prv-sh-001"


def sha256(number: str) -> str:
    return hashlib.sha256(number.encode("ascii")).hexdigest()


def new_ks_provider(actors) -> str:
    body = {"name": "Payout test provider", "uscc": make_uscc(), "region": "KS", "categories": ["testing"]}
    return ok(actors.officer("KS").post("/providers", json=body), 201)["id"]


def path(provider_id: str, tail: str = "") -> str:
    return f"/providers/{provider_id}/payout-account{tail}"


def entries(app, kind_prefix: str = "") -> list[dict]:
    with app.app_context(), Session(get_engine()) as session:
        rows = session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)).all()
        return [json.loads(bytes(r.canonical)) for r in rows if r.kind.startswith(kind_prefix)]


def assert_masked(response, *numbers):
    raw = response.get_data(as_text=True)
    for number in numbers:
        assert number not in raw, raw


def assert_no_ledger_entry_holds(app, *numbers):
    with app.app_context(), Session(get_engine()) as session:
        for row in session.exec(select(LedgerEntry)).all():
            for number in numbers:
                assert number.encode() not in bytes(row.canonical), (row.seq, row.kind)


# --- four eyes ------------------------------------------------------------------------

def test_a_change_takes_two_officers_of_the_home_region(app, actors):
    provider = new_ks_provider(actors)
    proposer, confirmer = actors.officer("KS"), actors.officer("KS")
    with nothing_changes(app):
        assert_rule(confirmer.post(path(provider, "/confirm"), json={}), "payout_change_pending")

    r = proposer.put(path(provider), json=ACCOUNT)
    proposed = ok(r, 202)
    assert r.headers["Location"].endswith(path(provider))
    assert proposed["in_effect"] is None
    pending = proposed["pending"]
    assert (pending["account_no_masked"], pending["account_sha256"]) == ("****5432", sha256(NUMBER))
    assert (pending["account_name"], pending["bank_name"]) == (ACCOUNT["account_name"], ACCOUNT["bank_name"])
    assert "account_no" not in pending
    assert_masked(r, NUMBER)
    # Pending is not in effect: the payout file gets nothing for this provider yet.
    assert accounts(app, [provider]) == {}

    with nothing_changes(app):
        body = assert_rule(proposer.post(path(provider, "/confirm"), json={}), "four_eyes")
        assert provider in body["detail"]
    confirmed = ok(confirmer.post(path(provider, "/confirm"), json={"change_id": pending["id"]}))
    assert confirmed["pending"] is None
    in_effect = confirmed["in_effect"]
    assert in_effect["account_no_masked"] == "****5432" and in_effect["change_id"] == pending["id"]
    assert in_effect["proposed_by"] == pending["proposed_by"] != in_effect["confirmed_by"]
    assert accounts(app, [provider]) == {provider: payout_accounts.PayoutAccountDetails(
        ACCOUNT["account_name"], ACCOUNT["bank_name"], NUMBER)}

    with nothing_changes(app):
        assert_rule(confirmer.post(path(provider, "/confirm"), json={}), "payout_change_pending")
        # The account already in effect is no change.
        assert_rule(proposer.put(path(provider), json=ACCOUNT), "payout_account_changes")

    kinds = [(e["kind"], e["region"]) for e in entries(app, "provider.payout_account")
             if e["refs"]["provider"] == provider]
    assert kinds == [("provider.payout_account_proposed", "KS"), ("provider.payout_account_changed", "KS")]


def test_a_second_proposal_replaces_the_pending_one(app, actors):
    provider = new_ks_provider(actors)
    first, second = actors.officer("KS"), actors.officer("KS")
    replaced = ok(first.put(path(provider), json=ACCOUNT), 202)["pending"]
    r = second.put(path(provider), json={**ACCOUNT, "account_no": OTHER_NUMBER, "bank_name": "中国银行"})
    pending = ok(r, 202)["pending"]
    assert pending["id"] != replaced["id"] and pending["account_no_masked"] == "****9012"
    assert pending["proposed_by"] == second.get(path(provider)).get_json()["pending"]["proposed_by"]

    with nothing_changes(app):
        # A confirmer who reviewed the first change does not confirm the second unseen,
        assert_rule(first.post(path(provider, "/confirm"), json={"change_id": replaced["id"]}),
                    "payout_change_current", pending["id"])
        # and the replacer is now the proposer: it may not confirm its own.
        assert_rule(second.post(path(provider, "/confirm"), json={}), "four_eyes")
    confirmed = ok(first.post(path(provider, "/confirm"), json={"change_id": pending["id"]}))
    assert confirmed["in_effect"]["account_sha256"] == sha256(OTHER_NUMBER)
    assert confirmed["in_effect"]["bank_name"] == "中国银行"

    proposed = [e for e in entries(app, "provider.payout_account_proposed") if e["refs"]["provider"] == provider]
    assert [e["data"].get("replaces") for e in proposed] == [None, replaced["id"]]


def test_a_confirmed_change_replaces_the_account_in_effect(app, actors):
    provider = new_ks_provider(actors)
    a, b = actors.officer("KS"), actors.officer("KS")
    ok(a.put(path(provider), json=ACCOUNT), 202)
    ok(b.post(path(provider, "/confirm")))
    ok(b.put(path(provider), json={**ACCOUNT, "account_no": OTHER_NUMBER}), 202)
    state = ok(a.get(path(provider)))
    # Until confirmed, payouts still go to the old account.
    assert state["in_effect"]["account_no_masked"] == "****5432"
    assert state["pending"]["account_no_masked"] == "****9012"
    assert accounts(app, [provider])[provider].account_no == NUMBER
    ok(a.post(path(provider, "/confirm")))
    assert accounts(app, [provider])[provider].account_no == OTHER_NUMBER
    changed = [e for e in entries(app, "provider.payout_account_changed") if e["refs"]["provider"] == provider]
    assert changed[-1]["data"]["previous_account_sha256"] == sha256(NUMBER)
    assert changed[-1]["data"]["account_sha256"] == sha256(OTHER_NUMBER)


# --- the number, never shown ------------------------------------------------------------

def test_the_number_is_masked_in_every_response_and_absent_from_every_entry(app, actors):
    provider = new_ks_provider(actors)
    a, b = actors.officer("KS"), actors.officer("KS")
    calls = [lambda: a.put(path(provider), json=ACCOUNT), lambda: a.post(path(provider, "/confirm")),
             lambda: b.post(path(provider, "/confirm")),
             lambda: a.put(path(provider), json={**ACCOUNT, "account_no": OTHER_NUMBER})]
    readers = [actors.provider(provider), a, actors.finance("KS"), actors.finance("SH"), actors.auditor(),
               actors.client("admin")]
    calls += [lambda reader=reader: reader.get(path(provider)) for reader in readers]
    calls += [lambda reader=reader: reader.get(f"/providers/{provider}/account")
              for reader in (actors.provider(provider), a, actors.auditor())]
    auditor = actors.auditor()
    calls += [lambda: auditor.get("/ledger/export"), lambda: auditor.get("/ledger/entries?limit=1000"),
              lambda: auditor.get("/ledger/beancount")]
    statuses = []
    for call in calls:
        r = call()
        statuses.append(r.status_code)
        assert_masked(r, NUMBER, OTHER_NUMBER)  # read at once: export and beancount stream
    assert statuses == [202, 409, 200, 202] + [200] * 12, statuses
    assert_no_ledger_entry_holds(app, NUMBER, OTHER_NUMBER)

    for entry in entries(app, "provider.payout_account"):
        if entry["refs"]["provider"] != provider:
            continue
        data = entry["data"]
        assert data["account_sha256"] in (sha256(NUMBER), sha256(OTHER_NUMBER))
        assert data["account_name"] == ACCOUNT["account_name"] and data["bank_name"] == ACCOUNT["bank_name"]
        assert not {"account_no", "account_no_masked"} & set(data), data


# --- validation and access --------------------------------------------------------------

@pytest.mark.parametrize("account_no", [
    pytest.param("1234567", id="7-digits"),
    pytest.param("1" * 31, id="31-digits"),
    pytest.param("12345678a", id="a-letter"),
    pytest.param("1234 5678 9012", id="spaces"),
    pytest.param("1234-5678-9012", id="dashes"),
    pytest.param("１２３４５６７８９０", id="full-width-digits"),
    pytest.param("١٢٣٤٥٦٧٨٩٠", id="arabic-indic-digits"),
    pytest.param("123456789\n", id="trailing-newline"),
    pytest.param("", id="empty"),
    pytest.param(12345678901, id="a-number"),
    pytest.param(None, id="null"),
])
def test_a_malformed_account_number_is_422(app, actors, account_no):
    officer = actors.officer("KS")
    with nothing_changes(app):
        body = assert_problem(officer.put(path(KS_PROVIDER), json={**ACCOUNT, "account_no": account_no}), 422)
    assert "account_no" in json.dumps(body.get("errors")), body


@pytest.mark.parametrize("body", [
    pytest.param({k: v for k, v in ACCOUNT.items() if k != "account_name"}, id="no-name"),
    pytest.param({k: v for k, v in ACCOUNT.items() if k != "bank_name"}, id="no-bank"),
    pytest.param({k: v for k, v in ACCOUNT.items() if k != "account_no"}, id="no-number"),
    pytest.param({**ACCOUNT, "account_name": ""}, id="empty-name"),
    pytest.param({**ACCOUNT, "bank_name": "x" * 201}, id="long-bank"),
    pytest.param({**ACCOUNT, "extra": 1}, id="unknown-field"),
])
def test_a_malformed_proposal_is_422(app, actors, body):
    with nothing_changes(app):
        assert_problem(actors.officer("KS").put(path(KS_PROVIDER), json=body), 422)


def test_only_the_home_regions_officers_change_it(app, actors):
    provider = new_ks_provider(actors)
    with nothing_changes(app):
        for client in (actors.officer("SH"), actors.officer("WJ"), actors.finance("KS"), actors.provider(provider),
                       actors.sme("ent-ks-003"), actors.auditor(), actors.client("admin")):
            assert_problem(client.put(path(provider), json=ACCOUNT), 403)
        assert_problem(actors.officer("KS").put(path("prv-does-not-exist"), json=ACCOUNT), 404)
    ok(actors.officer("KS").put(path(provider), json=ACCOUNT), 202)
    with nothing_changes(app):
        for client in (actors.officer("SH"), actors.finance("KS"), actors.provider(provider), actors.auditor()):
            assert_problem(client.post(path(provider, "/confirm")), 403)
        assert_problem(actors.officer("KS").post(path("prv-does-not-exist", "/confirm")), 404)


def test_who_reads_it(app, actors):
    provider = new_ks_provider(actors)
    for client in (actors.provider(provider), actors.officer("KS"), actors.finance("SH"), actors.auditor()):
        assert ok(client.get(path(provider)))["provider_id"] == provider
    for client in (actors.provider(KS_PROVIDER), actors.officer("SH"), actors.sme("ent-ks-003")):
        assert_problem(client.get(path(provider)), 403)
    assert_problem(actors.auditor().get(path("prv-does-not-exist")), 404)
    for client in (actors.provider(provider), actors.officer("KS"), actors.officer("SH"), actors.auditor()):
        assert ok(client.get(f"/providers/{provider}/account"))["provider_id"] == provider
    for client in (actors.provider(KS_PROVIDER), actors.finance("KS"), actors.sme("ent-ks-003")):
        assert_problem(client.get(f"/providers/{provider}/account"), 403)
    assert_problem(actors.auditor().get("/providers/prv-does-not-exist/account"), 404)


# --- the finance payout file's source ----------------------------------------------------

def accounts(app, provider_ids):
    with app.app_context(), Session(get_engine()) as session:
        ctx = Context(session=session, signer=None, actor="test")
        return payout_accounts.accounts_for_payout(ctx, provider_ids)


def test_accounts_for_payout_gives_the_accounts_in_effect_unmasked(app, actors):
    with_account, pending_only, without = new_ks_provider(actors), new_ks_provider(actors), new_ks_provider(actors)
    a, b = actors.officer("KS"), actors.officer("KS")
    ok(a.put(path(with_account), json=ACCOUNT), 202)
    ok(b.post(path(with_account, "/confirm")))
    ok(a.put(path(pending_only), json={**ACCOUNT, "account_no": OTHER_NUMBER}), 202)
    found = accounts(app, [with_account, pending_only, without, with_account])
    assert found == {with_account: payout_accounts.PayoutAccountDetails(
        ACCOUNT["account_name"], ACCOUNT["bank_name"], NUMBER)}
    assert accounts(app, []) == {}


# --- the provider's own view --------------------------------------------------------------

def balances_of(app, provider_id: str) -> dict[str, int]:
    return {name: balance for name, balance in account_balances(app).items()
            if name.endswith(f":{provider_id}") and name.split(":")[0] in ("payable", "paid", "receivable")}


def test_the_providers_view_follows_the_ledger_through_redemption_and_settlement(fresh_app, fresh_actors):
    app, actors = fresh_app, fresh_actors
    me = actors.provider(SH_PROVIDER)
    before = ok(me.get(f"/providers/{SH_PROVIDER}/account"))
    ks_amount, sh_amount = 250_005, 70_000
    redeem(actors, "ent-ks-003", SH_PROVIDER, ks_amount)
    redeem(actors, "ent-sh-001", SH_PROVIDER, sh_amount)

    view = ok(me.get(f"/providers/{SH_PROVIDER}/account"))
    owed = {row["region"]: row["amount_fen"] for row in view["owed"]}
    owed_before = {row["region"]: row["amount_fen"] for row in before["owed"]}
    assert owed["KS"] - owed_before.get("KS", 0) == ks_amount
    assert owed["SH"] - owed_before.get("SH", 0) == sh_amount
    assert view["owed_fen"] == sum(owed.values())
    assert view["payout_lines"] == before["payout_lines"]
    assert_view_is_the_ledger(app, view)

    creator = actors.finance("KS")
    batch = ok(creator.post("/settlements", json={"period": current_month()}), 201)
    ok(actors.finance("KS").post(f"/settlements/{batch['id']}/approve"))
    ok(actors.finance("SH").post(f"/settlements/{batch['id']}/approve"))
    line = next(l for l in batch["lines"] if l["provider_id"] == SH_PROVIDER)
    drafted = ok(me.get(f"/providers/{SH_PROVIDER}/account"))
    assert drafted["payout_lines"][-1] == {"settlement_id": batch["id"], "region": "KS", "period": current_month(),
                                           "status": "approved", "amount_fen": line["amount_fen"],
                                           "redemption_count": line["redemption_count"], "offset_fen": 0,
                                           "net_fen": line["amount_fen"], "result": None}
    assert drafted["owed"] == view["owed"]  # approved is not yet paid
    ok(creator.post(f"/settlements/{batch['id']}/execute"))

    settled = ok(me.get(f"/providers/{SH_PROVIDER}/account"))
    owed = {row["region"]: row["amount_fen"] for row in settled["owed"]}
    assert owed["KS"] == 0 and owed["SH"] - owed_before.get("SH", 0) == sh_amount
    assert settled["paid_fen"] - before["paid_fen"] == line["amount_fen"] >= ks_amount
    assert settled["payout_lines"][-1]["status"] == "executed"
    assert settled["receivable_fen"] == 0 and settled["receivable"] == []
    assert_view_is_the_ledger(app, settled)
    # The officer of the home region and an auditor see the same figures.
    for reader in (actors.officer("SH"), actors.auditor()):
        assert ok(reader.get(f"/providers/{SH_PROVIDER}/account")) == settled


def assert_view_is_the_ledger(app, view):
    ledger = balances_of(app, view["provider_id"])
    shown = {f"payable:{row['region']}:{view['provider_id']}": row["amount_fen"] for row in view["owed"]}
    shown |= {f"receivable:{row['region']}:{view['provider_id']}": row["amount_fen"] for row in view["receivable"]}
    if view["paid_fen"] or f"paid:{view['provider_id']}" in ledger:
        shown[f"paid:{view['provider_id']}"] = view["paid_fen"]
    assert shown == ledger


def test_receivables_appear_by_their_account_name(fresh_app, fresh_actors):
    """Recoveries (another part of DESIGN §9) post to receivable:{R}:{P}: the view reads
    them by name, so they show as soon as the ledger has them. Here the account row is
    written directly, as a recovery's append would; look-alike names do not count."""
    app = fresh_app
    with app.app_context(), Session(get_engine()) as session:
        for name, balance in ((f"receivable:KS:{SH_PROVIDER}", 1_234), (f"receivable:WJ:{SH_PROVIDER}", 66),
                              (f"receivable:KS:{SH_PROVIDER}x", 5), (f"receivable:KS:x{SH_PROVIDER}", 7),
                              (f"payable:KS:SH:{SH_PROVIDER}", 9)):
            session.add(Account(name=name, balance_fen=balance))
        session.commit()
    view = ok(fresh_actors.provider(SH_PROVIDER).get(f"/providers/{SH_PROVIDER}/account"))
    assert view["receivable"] == [{"region": "KS", "amount_fen": 1_234}, {"region": "WJ", "amount_fen": 66}]
    assert view["receivable_fen"] == 1_300
    assert "KS:SH" not in {row["region"] for row in view["owed"]}


def test_the_view_shows_the_payout_account_masked(app, actors):
    provider = new_ks_provider(actors)
    a, b = actors.officer("KS"), actors.officer("KS")
    ok(a.put(path(provider), json=ACCOUNT), 202)
    ok(b.post(path(provider, "/confirm")))
    r = actors.provider(provider).get(f"/providers/{provider}/account")
    view = ok(r)
    assert view["payout_account"]["in_effect"]["account_no_masked"] == "****5432"
    assert (view["owed"], view["paid_fen"], view["payout_lines"]) == ([], 0, [])
    assert_masked(r, NUMBER)
