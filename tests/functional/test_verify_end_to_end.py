"""The offline verifier against the real service: the files exactly as served
by /ledger/export, /ledger/checkpoint, /ledger/keys and /ledger/receipts/{seq}
verify; an edited database row does not, and the service refuses to sign it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from voucher_service.cli.verify import verify_command, verify_receipt_command
from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.journal.store import LedgerInvariantError
from voucher_service.ledger import merkle
from voucher_service.ledger.verify import VerificationError, load_keys, main, verify_receipt
from voucher_service.models import Account, LedgerEntry, LedgerNode
from helpers import add_evidence, publish


def lifecycle(actors, *, amount_fen=1_000_000, key="e2e") -> dict:
    """Apply, approve, reserve, claim, confirm, approve: every step through the API."""
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    r = sme.post("/applications", json={"amount_fen": amount_fen, "purpose": "testing"})
    assert r.status_code == 201, r.json
    r = officer.post(f"/applications/{r.json['id']}/approve", json={})
    assert r.status_code == 200, r.json
    approved_seq, voucher = r.json["ledger"]["seq"], r.json["voucher"]
    r = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-sh-001",
                                       "catalog_code": "TS-01", "service_fee_fen": 600_000, "amount_fen": 300_000},
                 headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.json
    rid = r.json["id"]
    add_evidence(actors.provider("prv-sh-001"), rid)
    r = actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim", json={
        "invoice_no": f"INV-{key}", "service_fee_fen": 500_000, "amount_fen": 250_000})
    assert r.status_code == 200, r.json
    assert sme.post(f"/redemptions/{rid}/confirm").status_code == 200
    r = officer.post(f"/redemptions/{rid}/approve")
    assert r.status_code == 200, r.json
    return {"approved_seq": approved_seq, "redeemed_seq": r.json["ledger"]["seq"], "voucher_id": voucher["id"]}


def checkpoint_response(app):
    """What an auditor downloads after the publisher's next round."""
    publish(app)
    return app.test_client().get("/api/v1/ledger/checkpoint")


def fetch(app, actors, directory, prefix="") -> dict:
    """Save checkpoint, export and keys exactly as served (bytes, untouched)."""
    r = checkpoint_response(app)
    assert r.status_code == 200 and r.mimetype == "text/plain", r.data
    checkpoint = directory / f"{prefix}checkpoint.txt"
    checkpoint.write_bytes(r.data)
    r = actors.auditor().get("/ledger/export")
    assert r.status_code == 200, r.data
    export = directory / f"{prefix}ledger.jsonl"
    export.write_bytes(r.data)
    size = int(r.headers["Ledger-Tree-Size"])
    assert r.data.count(b"\n") == size
    r = app.test_client().get("/api/v1/ledger/keys")
    assert r.status_code == 200
    keys = directory / "keys.json"
    keys.write_bytes(r.data)
    return {"checkpoint": str(checkpoint), "export": str(export), "keys": str(keys), "size": size}


def export_args(files, previous=None):
    args = ["export", files["export"], "--checkpoint", files["checkpoint"], "--keys", files["keys"]]
    return args + (["--previous-checkpoint", previous] if previous else [])


def test_the_served_files_verify(fresh_app, fresh_actors, tmp_path, capsys):
    lifecycle(fresh_actors)
    files = fetch(fresh_app, fresh_actors, tmp_path)
    assert main(export_args(files)) == 0
    out = capsys.readouterr().out
    keys = load_keys(json.loads(Path(files["keys"]).read_text(encoding="utf-8")))
    assert out.startswith(f"ok: {files['size']} entries")
    assert f"signed by the log key {keys.log_keys[0].key_id}" in out
    result = CliRunner().invoke(verify_command, [files["export"], "--checkpoint", files["checkpoint"],
                                                 "--keys", files["keys"]])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {files['size']} entries")


def test_the_checkpoint_is_signed_by_the_log_key_not_by_the_regions(fresh_app, fresh_actors, tmp_path):
    files = fetch(fresh_app, fresh_actors, tmp_path)
    keys = load_keys(json.loads(Path(files["keys"]).read_text(encoding="utf-8")))
    note = Path(files["checkpoint"]).read_text(encoding="utf-8")
    signature_lines = [line for line in note.split("\n\n", 1)[1].splitlines() if line]
    assert len(keys.log_keys) == 1 and len(keys.active_regions()) >= 3  # seeds run a third region
    assert [line.split(" ")[1] for line in signature_lines] == [keys.origin]  # no witnesses configured here


def test_a_previous_checkpoint_is_extended(fresh_app, fresh_actors, tmp_path, capsys):
    lifecycle(fresh_actors, key="first")
    before = fetch(fresh_app, fresh_actors, tmp_path, prefix="before-")
    lifecycle(fresh_actors, key="second", amount_fen=400_000)
    after = fetch(fresh_app, fresh_actors, tmp_path, prefix="after-")
    assert after["size"] > before["size"]
    assert main(export_args(after, previous=before["checkpoint"])) == 0
    assert f"extends the previous checkpoint of size {before['size']}" in capsys.readouterr().out
    result = CliRunner().invoke(verify_command, [after["export"], "--checkpoint", after["checkpoint"], "--keys",
                                                 after["keys"], "--previous-checkpoint", before["checkpoint"]])
    assert result.exit_code == 0, result.output
    # The other way round, the "previous" one is larger: refused.
    assert main(export_args(dict(after, checkpoint=before["checkpoint"]), previous=after["checkpoint"])) == 1
    assert capsys.readouterr().err.startswith("FAILED at previous checkpoint: ")
    # The old export is truncated with respect to the new checkpoint.
    assert main(export_args(dict(before, checkpoint=after["checkpoint"]))) == 1
    assert capsys.readouterr().err.startswith("FAILED at checkpoint: ")


def test_a_receipt_for_the_smes_own_entry_verifies(fresh_app, fresh_actors, tmp_path, capsys):
    seq = lifecycle(fresh_actors)["approved_seq"]
    files = fetch(fresh_app, fresh_actors, tmp_path)
    r = fresh_actors.sme("ent-ks-003").get(f"/ledger/receipts/{seq}")
    assert r.status_code == 200, r.json
    path = tmp_path / "receipt.json"
    path.write_bytes(r.data)
    keys = load_keys(json.loads(Path(files["keys"]).read_text(encoding="utf-8")))
    result = verify_receipt(json.loads(r.data), keys)
    assert result["seq"] == seq and result["kind"] == "voucher.issued"
    assert result["log_key"] == keys.log_keys[0].key_id
    assert main(["receipt", str(path), "--keys", files["keys"]]) == 0
    assert f"entry {seq} " in capsys.readouterr().out
    cli = CliRunner().invoke(verify_receipt_command, [str(path), "--keys", files["keys"]])
    assert cli.exit_code == 0, cli.output

    tampered = json.loads(r.data)
    tampered["entry"] = tampered["entry"].replace('"amount":', '"amount":1', 1) if '"amount":' in tampered["entry"] \
        else tampered["entry"].replace('"actor":"', '"actor":"x', 1)
    with pytest.raises(VerificationError) as info:
        verify_receipt(tampered, keys)
    assert info.value.seq == seq
    path.write_text(json.dumps(tampered), encoding="utf-8")
    assert main(["receipt", str(path), "--keys", files["keys"]]) == 1
    assert capsys.readouterr().err.startswith(f"FAILED at seq {seq}: ")
    cli = CliRunner().invoke(verify_receipt_command, [str(path), "--keys", files["keys"]])
    assert cli.exit_code == 1 and f"FAILED at seq {seq}: " in cli.output

    other = json.loads(r.data)
    other["inclusion_proof"] = list(reversed(other["inclusion_proof"]))
    if other["inclusion_proof"] != json.loads(r.data)["inclusion_proof"]:
        with pytest.raises(VerificationError):
            verify_receipt(other, keys)


def _edit_entry_byte(app, seq: int) -> None:
    with app.app_context():
        with Session(get_engine()) as session:
            row = session.get(LedgerEntry, seq)
            canonical = bytes(row.canonical)
            at = canonical.index(b'"amount":') + len(b'"amount":')
            row.canonical = canonical[:at] + b"9" + canonical[at + 1:]
            session.add(row)
            session.commit()


def test_an_edited_entry_row_fails_verification_and_is_refused_a_signature(fresh_app, fresh_actors, tmp_path,
                                                                           capsys):
    lifecycle(fresh_actors, key="first")
    before = fetch(fresh_app, fresh_actors, tmp_path, prefix="before-")
    assert main(export_args(before)) == 0
    seq = lifecycle(fresh_actors, key="second", amount_fen=400_000)["redeemed_seq"]
    assert seq >= before["size"]  # written after the last checkpoint
    _edit_entry_byte(fresh_app, seq)

    r = fresh_actors.auditor().get("/ledger/export")
    assert r.status_code == 200
    Path(before["export"]).write_bytes(r.data)
    capsys.readouterr()
    assert main(export_args(before)) == 1
    assert capsys.readouterr().err.startswith(f"FAILED at seq {seq}: ")
    result = CliRunner().invoke(verify_command, [before["export"], "--checkpoint", before["checkpoint"],
                                                 "--keys", before["keys"]])
    assert result.exit_code == 1 and f"FAILED at seq {seq}: " in result.output

    with pytest.raises(LedgerInvariantError, match=f"refusing to sign: entry {seq} "):
        publish(fresh_app)


def test_an_edited_account_balance_is_not_in_the_export(fresh_app, fresh_actors, tmp_path):
    """Balances are replayed from the signed entries: an edited balance row
    changes nothing an auditor verifies (the service's own reconciliation and
    readiness checks are where it shows)."""
    voucher_id = lifecycle(fresh_actors)["voucher_id"]
    with fresh_app.app_context():
        with Session(get_engine()) as session:
            account = session.get(Account, f"voucher:{voucher_id}")
            account.balance_fen += 1
            session.add(account)
            session.commit()
    files = fetch(fresh_app, fresh_actors, tmp_path)
    assert main(export_args(files)) == 0


def test_a_rewritten_history_is_refused_a_signature(fresh_app, fresh_actors, tmp_path):
    """Rewrite an entry and its stored Merkle nodes consistently (the stored
    tree now hashes the edited entry): the new tree does not extend the last
    checkpoint, so the service's publisher must refuse to sign."""
    seq = lifecycle(fresh_actors)["redeemed_seq"]
    fetch(fresh_app, fresh_actors, tmp_path)  # a checkpoint covering seq
    _edit_entry_byte(fresh_app, seq)
    with fresh_app.app_context():
        with Session(get_engine()) as session:
            leaf = merkle.leaf_hash(bytes(session.get(LedgerEntry, seq).canonical))
            node = session.get(LedgerNode, merkle.node_key((0, seq)))
            node.hash = leaf
            session.add(node)
            session.commit()
    lifecycle(fresh_actors, key="after", amount_fen=400_000)  # the tree grows: a new checkpoint is due
    with pytest.raises(LedgerInvariantError, match="refusing to sign"):
        publish(fresh_app)


def test_an_edited_entry_row_under_an_old_checkpoint_is_caught_by_auditors(fresh_app, fresh_actors, tmp_path,
                                                                         capsys):
    """Before signing, the service rehashes only the entries a new checkpoint newly
    covers (a full rehash per checkpoint would be O(n)). The signed tree is the
    stored nodes, which the edit did not change, so the new checkpoint still
    extends the old one; the edited row is caught where auditors look: the
    offline verifier names its seq, and so does the invariant check."""
    seq = lifecycle(fresh_actors)["redeemed_seq"]
    old = fetch(fresh_app, fresh_actors, tmp_path, prefix="old-")  # a checkpoint now covers seq
    _edit_entry_byte(fresh_app, seq)
    lifecycle(fresh_actors, key="after", amount_fen=400_000)
    new = fetch(fresh_app, fresh_actors, tmp_path, prefix="new-")
    capsys.readouterr()
    assert main(export_args(new, previous=old["checkpoint"])) == 1
    assert f"FAILED at seq {seq}:" in capsys.readouterr().err
    with fresh_app.app_context(), Session(get_engine()) as session:
        assert any(problem.startswith(f"seq {seq}:") for problem in check_all(session))


def test_a_key_rotation_between_checkpoints_verifies(fresh_app, fresh_actors, tmp_path, capsys):
    """Old entries and the old checkpoint stay verifiable with the retired key;
    new ones need the new key; checkpoints before and after are the log key's."""
    lifecycle(fresh_actors, key="first")
    before = fetch(fresh_app, fresh_actors, tmp_path, prefix="before-")
    result = fresh_app.test_cli_runner().invoke(args=["keys", "rotate", "--region", "KS"])
    assert result.exit_code == 0, result.output
    lifecycle(fresh_actors, key="second", amount_fen=400_000)
    after = fetch(fresh_app, fresh_actors, tmp_path, prefix="after-")
    keys = json.loads(Path(after["keys"]).read_text(encoding="utf-8"))["keys"]
    assert [k["valid_until"] is None for k in keys if k["region"] == "KS"] == [False, True]
    capsys.readouterr()
    assert main(export_args(after, previous=before["checkpoint"])) == 0, capsys.readouterr().err
    # The checkpoint signed before the rotation (KS's signature by the now retired key) still
    # verifies the prefix it covers; the rest of the export is checked entry by entry.
    assert main(export_args(dict(after, checkpoint=before["checkpoint"]))) == 0
