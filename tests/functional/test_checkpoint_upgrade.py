"""Upgrading a deployment whose checkpoints were cosigned by every region's
key (before the log key, DESIGN §4 and §10): `vouchers init` makes the log
key and adds its signature to the last such checkpoint, the old checkpoints
stay verifiable, and the first witnessed checkpoint extends them."""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.journal import store as journal
from voucher_service.journal.keys import is_active_key
from voucher_service.ledger import merkle
from voucher_service.ledger.note import Checkpoint, parse_note, sign_note
from voucher_service.ledger.verify import VerificationError, load_keys, verify_export
from voucher_service.models import LedgerCheckpoint, PublisherStatus, SigningKeyRecord, WitnessStatus
from helpers import publish

ORIGIN = "vouchers.example/ledger"


def _as_before_the_upgrade(app) -> str:
    """The database as the first version left it: no log key, and the last
    checkpoint signed by every region's active key. Returns that note."""
    keyring = app.extensions["vouchers_keyring"]
    with app.app_context(), Session(get_engine()) as session:
        for table in (LedgerCheckpoint, WitnessStatus, PublisherStatus):
            for row in session.exec(select(table)).all():
                session.delete(row)
        for row in session.exec(select(SigningKeyRecord).where(SigningKeyRecord.purpose == "log")).all():
            session.delete(row)
        session.flush()
        size = journal.lock_ledger(session)
        root = merkle.root(size, journal.node_reader(session))
        regions = session.exec(select(SigningKeyRecord).where(is_active_key())
                               .order_by(SigningKeyRecord.region)).all()
        note = sign_note(Checkpoint(ORIGIN, size, root).text(),
                         [(r.note_name, keyring.load(r.key_id).sign, bytes(r.public_key)) for r in regions])
        session.add(LedgerCheckpoint(size=size, root_hash=root, note=note, created_at="2026-01-01T00:00:00.000000Z"))
        session.commit()
    return note


def _served(app, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = app.test_client().get(f"/api/v1{path}", headers=headers)
    assert response.status_code == 200, response.data[:300]
    return response


def test_init_upgrades_the_last_region_signed_checkpoint_and_old_ones_stay_verifiable(fresh_app, fresh_actors):
    legacy = _as_before_the_upgrade(fresh_app)
    legacy_keys = _served(fresh_app, "/ledger/keys").json
    assert all(key["purpose"] == "entry" for key in legacy_keys["keys"])
    auditor = fresh_actors.token("auditor")
    lines = _served(fresh_app, "/ledger/export", auditor).data.splitlines()
    verify_export(iter(lines), legacy, load_keys(legacy_keys))  # as an auditor verified it then

    result = fresh_app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0 and "log key" in result.output, result.output
    keys = _served(fresh_app, "/ledger/keys").json
    [log_key] = [key for key in keys["keys"] if key["purpose"] == "log"]
    upgraded = _served(fresh_app, "/ledger/checkpoint").get_data(as_text=True)
    text, signatures = parse_note(upgraded)
    assert text == parse_note(legacy)[0], "the same tree: only a signature was added"
    assert {s.name for s in signatures} == {ORIGIN} | {f"{ORIGIN}/{r}" for r in ("KS", "SH", "WJ")}
    # The old note, with region signatures only, still verifies with today's keys: its entries are older
    # than the log key.
    summary = verify_export(iter(lines), legacy, load_keys(keys))
    assert summary.checkpoint_size == len(lines)

    # New entries: the next checkpoint is the log key's alone, and it extends the legacy one.
    fresh_actors.sme("ent-ks-003").post("/applications", json={"amount_fen": 10_000, "purpose": "after the upgrade"})
    publish(fresh_app)
    current = _served(fresh_app, "/ledger/checkpoint").get_data(as_text=True)
    assert [s.name for s in parse_note(current)[1]] == [ORIGIN]
    lines = _served(fresh_app, "/ledger/export", auditor).data.splitlines()
    summary = verify_export(iter(lines), current, load_keys(keys), legacy)
    assert summary.previous_size == int(legacy.split("\n")[1]) < summary.checkpoint_size
    assert log_key["key_id"] in summary.text()

    # What the upgrade closes: region keys alone no longer vouch for entries written after it.
    with fresh_app.app_context(), Session(get_engine()) as session:
        regions = session.exec(select(SigningKeyRecord).where(is_active_key(), SigningKeyRecord.purpose == "entry")
                               .order_by(SigningKeyRecord.region)).all()
        keyring = fresh_app.extensions["vouchers_keyring"]
        forged = sign_note(parse_note(current)[0], [(r.note_name, keyring.load(r.key_id).sign, bytes(r.public_key))
                                                   for r in regions])
    with pytest.raises(VerificationError, match="not signed by the log key"):
        verify_export(iter(lines), forged, load_keys(json.loads(json.dumps(keys))))
