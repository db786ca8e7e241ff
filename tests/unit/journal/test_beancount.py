"""The ledger as a Beancount file (voucher_service.journal.beancount): a lifecycle
driven through the API, exported by the CLI and over HTTP, checked by the stock
`bean-check`, which replays every entry and asserts the stored balances; a
tampered stored balance fails it; amounts never go through floats; the account
mapping is injective.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from helpers import add_evidence, current_month, ok
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session, select

from voucher_service.db import get_engine, read_only
from voucher_service.journal import beancount as bx
from voucher_service.journal import tree
from voucher_service.models import Account, LedgerEntry

SHANGHAI = ZoneInfo("Asia/Shanghai")
BEAN_CHECK = os.path.join(os.path.dirname(sys.executable), "bean-check")
ACCOUNT_NAME = re.compile(r"^(Assets|Liabilities|Equity|Income|Expenses)(:[A-Z0-9][A-Za-z0-9-]*)+$")

requires_bean_check = pytest.mark.skipif(not os.path.exists(BEAN_CHECK),
                                         reason="bean-check is not installed (pip install beancount)")


def bean_check(path) -> subprocess.CompletedProcess:
    return subprocess.run([BEAN_CHECK, str(path)], capture_output=True, text=True, timeout=60)


def run_lifecycle(actors) -> dict:
    """Issue, reserve, claim lower, confirm, redeem; cancel one reservation; void a
    voucher; settle the month (when the settlement API is there)."""
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")

    def issue(amount_fen):
        application = ok(sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "beancount"}), 201)
        return ok(officer.post(f"/applications/{application['id']}/approve", json={}))["voucher"]

    def reserve(voucher_id, amount_fen):
        return ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": "prv-sh-001",
                                                 "catalog_code": "TS-01", "service_fee_fen": 2 * amount_fen,
                                                 "amount_fen": amount_fen}), 201)["id"]

    voucher = issue(1_000_000)
    rid = reserve(voucher["id"], 300_000)
    add_evidence(actors.provider("prv-sh-001"), rid)
    ok(actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim", json={
        "invoice_no": "INV-BC-1", "service_fee_fen": 500_002, "amount_fen": 250_001}))
    ok(sme.post(f"/redemptions/{rid}/confirm"))
    ok(officer.post(f"/redemptions/{rid}/approve"))
    cancelled = reserve(voucher["id"], 100_000)
    ok(sme.post(f"/redemptions/{cancelled}/cancel", json={}))
    voided = issue(20_001)
    ok(officer.post(f"/vouchers/{voided['id']}/void", json={"reason": "left the programme"}))

    settled = False
    creator = actors.finance("KS")
    r = creator.post("/settlements", json={"period": current_month()})
    if r.status_code == 201:
        sid = r.get_json()["id"]
        for approver in (actors.finance("KS"), actors.finance("SH")):
            ok(approver.post(f"/settlements/{sid}/approve"))
        ok(creator.post(f"/settlements/{sid}/execute"))
        settled = True
    else:  # no settlement API yet: the rest of the lifecycle still exports
        assert r.status_code in (404, 405), (r.status_code, r.get_data(as_text=True))
    return {"voucher": voucher["id"], "voided": voided["id"], "redemption": rid, "settled": settled}


def cli_export(app, path) -> str:
    result = app.test_cli_runner().invoke(args=["export", "beancount", "--output", str(path)])
    assert result.exit_code == 0, result.output
    return path.read_text(encoding="utf-8")


def directives(text_: str, keyword: str) -> list[str]:
    return [line for line in text_.splitlines() if re.match(rf"^\d{{4}}-\d{{2}}-\d{{2}} {keyword} ", line)]


@pytest.fixture
def lifecycle(fresh_app, fresh_actors):
    return run_lifecycle(fresh_actors)


@requires_bean_check
def test_cli_and_http_exports_pass_bean_check(fresh_app, fresh_actors, lifecycle, tmp_path):
    path = tmp_path / "ledger.beancount"
    exported = cli_export(fresh_app, path)
    checked = bean_check(path)
    assert (checked.returncode, checked.stderr, checked.stdout) == (0, "", ""), exported

    r = fresh_actors.auditor().get("/ledger/beancount")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.is_streamed
    served = r.get_data(as_text=True)
    assert served == exported  # nothing was appended in between: the same snapshot
    (tmp_path / "served.beancount").write_text(served, encoding="utf-8")
    checked = bean_check(tmp_path / "served.beancount")
    assert (checked.returncode, checked.stderr) == (0, "")

    with fresh_app.app_context(), Session(get_engine()) as session:
        size = tree.tree_size(session)
        root = tree.b64(tree.root_at(session, size))
        accounts = {a.name: a.balance_fen for a in session.exec(select(Account))}
        entries = session.exec(select(LedgerEntry.seq, LedgerEntry.kind).order_by(LedgerEntry.seq)).all()

    # The header ties the file to the checkpoint of this tree.
    assert f"; tree size {size}, root (base64) {root}\n" in exported
    assert f";   {size}\n;   {root}\n" in exported
    assert 'option "operating_currency" "CNY"' in exported and 'option "title" ' in exported
    # One transaction per entry, seq 0 .. size-1 in order, narration = kind.
    transactions = directives(exported, r"\*")
    assert len(transactions) == size == len(entries)
    assert [int(s) for s in re.findall(r"^  seq: (\d+)$", exported, re.M)] == list(range(size))
    assert [t.split('"')[3] for t in transactions] == [kind for _seq, kind in entries]
    # Every stored account is opened once and asserted once, with its stored balance.
    opened = [line.split()[2] for line in directives(exported, "open")]
    asserted = {line.split()[2]: line.split()[3] for line in directives(exported, "balance")}
    assert sorted(opened) == sorted(bx.beancount_account(name) for name in accounts)
    assert asserted == {bx.beancount_account(name): bx.cny(fen) for name, fen in accounts.items()}
    assert all(ACCOUNT_NAME.match(name) for name in opened), opened
    # The lifecycle's accounts, and its odd amounts to the fen.
    voucher = bx.component(lifecycle["voucher"])
    assert asserted[f"Liabilities:Vouchers:{voucher}:Available"] == "7499.99"
    assert asserted[f"Liabilities:Vouchers:{voucher}:Held"] == "0.00"
    assert asserted[f"Liabilities:Vouchers:{bx.component(lifecycle['voided'])}:Available"] == "0.00"
    if lifecycle["settled"]:
        assert asserted["Expenses:Paid:Xprv-sh-001"] == "2500.01"
        assert asserted["Liabilities:Payable:KS:Xprv-sh-001"] == "0.00"
    else:
        assert asserted["Liabilities:Payable:KS:Xprv-sh-001"] == "2500.01"
    assert "  Liabilities:Payable:KS:Xprv-sh-001  2500.01 CNY\n" in exported
    assert asserted["Equity:Treasury:KS"].startswith("-")


@requires_bean_check
def test_a_tampered_stored_balance_fails_bean_check(fresh_app, lifecycle, tmp_path):
    good = tmp_path / "good.beancount"
    cli_export(fresh_app, good)
    assert bean_check(good).returncode == 0
    account = f"voucher:{lifecycle['voucher']}"
    with fresh_app.app_context(), get_engine().begin() as connection:
        # One fen: Beancount's inferred tolerance (0.01 for two decimals) would let it pass.
        connection.execute(text("UPDATE account SET balance_fen = balance_fen + 1 WHERE name = :name"),
                           {"name": account})
    bad = tmp_path / "bad.beancount"
    cli_export(fresh_app, bad)
    checked = bean_check(bad)
    assert checked.returncode != 0
    assert "Balance failed" in checked.stderr + checked.stdout
    assert bx.beancount_account(account) in checked.stderr + checked.stdout


@requires_bean_check
def test_an_account_missing_from_the_stored_balances_fails_bean_check(fresh_app, lifecycle, tmp_path):
    with fresh_app.app_context(), get_engine().begin() as connection:
        connection.execute(text("DELETE FROM account WHERE name = :name"), {"name": "paid:prv-sh-001"
                           if lifecycle["settled"] else "payable:KS:prv-sh-001"})
    path = tmp_path / "missing.beancount"
    cli_export(fresh_app, path)
    checked = bean_check(path)
    assert checked.returncode != 0 and "Balance failed" in checked.stderr + checked.stdout


@requires_bean_check
def test_the_seeded_ledger_exports_to_stdout(fresh_app, tmp_path):
    result = fresh_app.test_cli_runner().invoke(args=["export", "beancount"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "seeded.beancount"
    path.write_text(result.stdout, encoding="utf-8")
    checked = bean_check(path)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert "balance Equity:Treasury:KS" in result.stdout


def test_only_auditors_and_admins_get_the_export(app, actors):
    assert actors.anonymous().get("/ledger/beancount").status_code == 401
    for client in (actors.officer("KS"), actors.finance("SH"), actors.sme("ent-ks-003"),
                   actors.provider("prv-sh-001")):
        r = client.get("/ledger/beancount")
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert actors.client("admin").get("/ledger/beancount").status_code == 200


# --- amounts, names ------------------------------------------------------------------

@pytest.mark.parametrize("fen, cny", [(1, "0.01"), (100_000, "1000.00"), (0, "0.00"), (-1, "-0.01"),
                                      (-100, "-1.00"), (10, "0.10"), (99, "0.99"), (-250_001, "-2500.01"),
                                      (10**12 + 7, "10000000000.07"), (2**53 + 1, "90071992547409.93")])
def test_amounts_are_formatted_by_integer_arithmetic(fen, cny):
    assert bx.cny(fen) == cny


def test_amounts_refuse_floats():
    for value in (1.0, 0.1, True):
        with pytest.raises(TypeError):
            bx.cny(value)


def test_a_posting_becomes_destination_plus_and_source_minus():
    entry = {"seq": 7, "ts": "2024-12-31T16:30:00.000000Z", "kind": "voucher.issued", "region": "KS",
             "actor": "off_1", "refs": {"voucher": "vch_1"},
             "postings": [{"source": "budget:KS", "destination": "voucher:vch_1", "amount": 1},
                          {"source": "treasury:KS", "destination": "budget:KS", "amount": 100_000}]}
    out = bx._transaction(entry)
    # 16:30 UTC on 31 December is 1 January in Shanghai.
    assert out.startswith('2025-01-01 * "KS" "voucher.issued"\n  seq: 7\n  ts: "2024-12-31T16:30:00.000000Z"\n')
    assert '  voucher: "vch_1"\n' in out
    assert "  Liabilities:Vouchers:Xvch--1:Available  0.01 CNY\n  Assets:Budget:KS  -0.01 CNY\n" in out
    assert "  Assets:Budget:KS  1000.00 CNY\n  Equity:Treasury:KS  -1000.00 CNY\n" in out


def test_account_mapping():
    assert bx.beancount_account("treasury:KS") == "Equity:Treasury:KS"
    assert bx.beancount_account("budget:SH") == "Assets:Budget:SH"
    assert bx.beancount_account("voucher:vch_1a21c") == "Liabilities:Vouchers:Xvch--1a21c:Available"
    assert bx.beancount_account("voucher:vch_1a21c:held") == "Liabilities:Vouchers:Xvch--1a21c:Held"
    assert bx.beancount_account("payable:KS:prv-sh-001") == "Liabilities:Payable:KS:Xprv-sh-001"
    assert bx.beancount_account("paid:prv_1a21") == "Expenses:Paid:Xprv--1a21"
    assert bx.beancount_account("suspense:KS") == "Equity:Unmapped:Xsuspense---3a-KS"


TRICKY = ["vch_a-b", "vch-a_b", "vch__a", "vch--a", "vch-_a", "vch_-a", "vch_a", "vch-a", "Vch_a", "Xvch_a",
          "vch:a", "vch a", "vch_a_", "vch_a-", "vch.a", "X", "XX", "", "_", "-", "--", "__", "KS", "XKS",
          "0", "0a", "a", "A", "中", "vch_1a21c:held", "vch---2d5f-a", "vch---2d-a"]


def test_the_mapping_is_injective_on_tricky_ids():
    names = [f"{kind}:{i}" for kind in ("treasury", "budget", "voucher", "paid") for i in TRICKY]
    names += [f"voucher:{i}:held" for i in TRICKY]
    names += [f"payable:{r}:{p}" for r in ("KS", "K:S", "_", "X") for p in TRICKY]
    names += TRICKY
    mapped = {}
    for name in names:
        account = bx.beancount_account(name)
        assert ACCOUNT_NAME.match(account), (name, account)
        assert bx.ledger_account(account) == name
        assert mapped.setdefault(account, name) == name, (account, mapped[account], name)
    assert bx.beancount_account("voucher:vch_a-b") != bx.beancount_account("voucher:vch-a_b")


@given(st.text(alphabet=st.sampled_from("ab_-:XK0.中 held"), max_size=16) | st.text(max_size=8))
def test_the_mapping_inverts_on_any_name(name):
    account = bx.beancount_account(name)
    assert ACCOUNT_NAME.match(account), (name, account)
    assert bx.ledger_account(account) == name
    for value in (name, name.replace(":", "")):
        component = bx.component(value)
        assert re.fullmatch(r"[A-Z0-9][A-Za-z0-9-]*", component) and bx.decode_component(component) == value


def test_write_beancount_streams_in_batches(fresh_app):
    """Keyset batches of any size give the same file, entries in seq order."""
    with fresh_app.app_context(), Session(get_engine()) as session:
        whole = io.StringIO()
        bx.write_beancount(session, whole)
    with fresh_app.app_context(), Session(get_engine()) as session:
        small = "".join(bx.iter_beancount(session, batch=3))
    assert whole.getvalue() == small
    assert whole.getvalue().endswith("balance assertions\n")


@requires_bean_check
def test_an_export_is_one_snapshot_while_the_ledger_grows(fresh_app, fresh_actors, tmp_path):
    """Entries and stored balances come from one read transaction: a write that
    commits while the export streams is in neither."""
    with fresh_app.app_context(), read_only(), Session(get_engine()) as session:
        pieces = bx.iter_beancount(session, batch=5)
        head = [next(pieces) for _ in range(8)]  # header, options, opens: the snapshot has begun
        before = int(re.search(r"; tree size (\d+),", head[0]).group(1))
        application = ok(fresh_actors.sme("ent-ks-003").post(
            "/applications", json={"amount_fen": 12_345, "purpose": "during the export"}), 201)
        voucher = ok(fresh_actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["voucher"]
        exported = "".join(head) + "".join(pieces)
    path = tmp_path / "snapshot.beancount"
    path.write_text(exported, encoding="utf-8")
    checked = bean_check(path)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert len(directives(exported, r"\*")) == before
    assert voucher["id"] not in exported
    with fresh_app.app_context(), Session(get_engine()) as session:
        assert tree.tree_size(session) == before + 2
