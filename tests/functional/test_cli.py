"""The `vouchers` commands, through Flask's CLI runner against a fresh database."""
import os
import stat

from conftest import Actors, make_config
from sqlmodel import Session, func, select

from voucher_service import create_app
from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.models import Account, LedgerEntry, Region, Voucher


def counts(app):
    with app.app_context():
        with Session(get_engine()) as session:
            return (session.exec(select(func.count()).select_from(LedgerEntry)).one(),
                    {a.name: a.balance_fen for a in session.exec(select(Account)).all()})


def test_init_builds_everything_and_a_second_run_changes_nothing(tmp_path, empty_database):
    app = create_app(make_config(empty_database, str(tmp_path / "keys")))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    assert "created 3 regions" in first.output
    before = counts(app)
    with app.app_context():
        with Session(get_engine()) as session:
            assert {r.code for r in session.exec(select(Region)).all()} >= {"SH", "KS", "WJ"}
            assert check_all(session) == []
    # Each region's budget was funded from its seed policy, by a ledger entry.
    assert before[1]["budget:SH"] == 5_000_000_000 and before[1]["treasury:SH"] == -5_000_000_000
    key_files = os.listdir(tmp_path / "keys")
    assert len(key_files) == 4 and sum(name.startswith("log-") for name in key_files) == 1  # 3 regions, 1 log key
    for name in key_files:
        assert stat.S_IMODE(os.stat(tmp_path / "keys" / name).st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "keys" / name).read_bytes()

    second = runner.invoke(args=["init"])
    assert second.exit_code == 0, second.output
    assert "nothing to change" in second.output
    assert counts(app) == before
    with app.app_context():
        get_engine().dispose()


def test_init_without_a_passphrase_fails_cleanly(tmp_path, empty_database):
    config = make_config(empty_database, str(tmp_path / "keys"))
    config["VOUCHERS_KEY_PASSPHRASE"] = ""
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["init"])
    with app.app_context():
        get_engine().dispose()
    assert result.exit_code != 0
    assert "VOUCHERS_KEY_PASSPHRASE" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_token_create_prints_the_token_alone_on_the_last_line(app):
    result = app.test_cli_runner().invoke(args=["token", "create", "--role", "officer", "--region", "KS"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("vt_") and " " not in token
    client = app.test_client()
    assert client.get("/api/v1/regions", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_token_create_refuses_a_missing_or_unknown_binding(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["token", "create", "--role", "sme"]).exit_code != 0
    unknown = runner.invoke(args=["token", "create", "--role", "sme", "--enterprise", "ent-nope"])
    assert unknown.exit_code != 0 and "no enterprise ent-nope" in unknown.output


def test_token_is_stored_only_as_a_hash(app):
    result = app.test_cli_runner().invoke(args=["token", "create", "--role", "auditor"])
    token = result.output.strip().splitlines()[-1]
    with app.app_context():
        with get_engine().connect() as connection:
            dump = "\n".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM api_token"))
    assert token not in dump


def test_token_revoke_makes_it_401(app):
    runner = app.test_cli_runner()
    output = runner.invoke(args=["token", "create", "--role", "auditor"]).output.strip().splitlines()
    token, token_id = output[-1], output[0].split()[1]
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/regions", headers=headers).status_code == 200
    assert runner.invoke(args=["token", "revoke", token_id]).exit_code == 0
    assert app.test_client().get("/api/v1/regions", headers=headers).status_code == 401


def test_expire_returns_available_value_to_the_budget(fresh_app):
    actors = Actors(fresh_app)
    sme, officer = actors.sme("ent-wj-001"), actors.officer("WJ")
    application = sme.post("/applications", json={"amount_fen": 100_000, "purpose": "expiry"}).json
    voucher = officer.post(f"/applications/{application['id']}/approve",
                           json={"valid_until": "2027-01-31"}).json["voucher"]
    held = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-wj-001",
                                          "catalog_code": "TS-01", "service_fee_fen": 100_000,
                                          "amount_fen": 30_000})
    assert held.status_code == 201, held.json
    budget_before = counts(fresh_app)[1]["budget:WJ"]
    runner = fresh_app.test_cli_runner()
    not_yet = runner.invoke(args=["expire", "--as-of", "2027-01-31"])
    assert not_yet.exit_code == 0 and "0 voucher(s) expired" in not_yet.output
    result = runner.invoke(args=["expire", "--as-of", "2027-02-01"])
    assert result.exit_code == 0, result.output
    assert "1 voucher(s) expired" in result.output
    after = sme.get(f"/vouchers/{voucher['id']}").json
    assert after["status"] == "expired"
    assert (after["available_fen"], after["held_fen"], after["returned_fen"]) == (0, 30_000, 70_000)
    assert counts(fresh_app)[1]["budget:WJ"] == budget_before + 70_000
    # The open hold outlives expiry; releasing it sends the value back to the budget too.
    assert sme.post(f"/redemptions/{held.json['id']}/cancel", json={}).status_code == 200
    assert counts(fresh_app)[1]["budget:WJ"] == budget_before + 100_000
    assert sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-wj-001",
                                          "catalog_code": "TS-01", "service_fee_fen": 10_000,
                                          "amount_fen": 1}).json["rule"] == "voucher_active"
    with fresh_app.app_context():
        with Session(get_engine()) as session:
            assert check_all(session) == []
            assert session.get(Voucher, voucher["id"]).returned_fen == 100_000
