"""An Idempotency-Key replays only to the token binding that made the response
(voucher_service/http/transaction.py, migration 0005).

One principal may hold tokens of different bindings (`vouchers token create
--principal X`: a KS officer and an SH officer, say). A response is what its
binding may see: another binding of the same principal presenting the key is
refused, never handed the response; another token of the same binding (a
rotated token) replays it as before.
"""
from __future__ import annotations

import pytest
from security_support import APPLICATION, app, assert_problem, bearer, fresh_limits, mint, state  # noqa: F401
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from voucher_service.cli import migrate
from voucher_service.db import get_engine
from voucher_service.http import transaction
from voucher_service.models import IdempotencyRecord

PRINCIPAL = "usr-two-bindings"


def approvable_application(app) -> str:
    sme = mint(app, "sme", enterprise_id="ent-ks-003")
    response = app.test_client().post("/api/v1/applications", json=APPLICATION, headers=bearer(sme))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_another_binding_of_the_principal_is_refused_not_replayed(app):
    ks = mint(app, "officer", principal_id=PRINCIPAL, region="KS")
    sh = mint(app, "officer", principal_id=PRINCIPAL, region="SH")
    ks_rotated = mint(app, "officer", principal_id=PRINCIPAL, region="KS")
    approve = f"/api/v1/applications/{approvable_application(app)}/approve"
    key = {"Idempotency-Key": "two-bindings-1"}
    client = app.test_client()

    first = client.post(approve, json={}, headers=bearer(ks) | key)
    assert first.status_code == 200, first.get_json()
    voucher_id = first.get_json()["voucher"]["id"]
    # The SH officer may not read the KS voucher ...
    assert client.get(f"/api/v1/vouchers/{voucher_id}", headers=bearer(sh)).status_code in (403, 404)
    # ... so the same key and body, from its token, is no way to read it.
    before = state(app)
    other = client.post(approve, json={}, headers=bearer(sh) | key)
    body = assert_problem(other, 422)
    assert body["type"] == "urn:vouchers:problem:idempotency_key_reused", body
    assert "Idempotent-Replayed" not in other.headers
    assert voucher_id not in other.get_data(as_text=True)
    assert state(app) == before
    # Another token of the binding that made it replays it.
    again = client.post(approve, json={}, headers=bearer(ks_rotated) | key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()


def test_a_key_used_by_each_binding_at_once_replays_to_neither_the_other(app, monkeypatch):
    """Two requests with one key racing past the look-up: the loser's commit is
    refused by the unique constraint, and it finds the winner's record. It
    replays that only if it is of its own binding."""
    ks = mint(app, "officer", principal_id=PRINCIPAL + "-race", region="KS")
    sh = mint(app, "officer", principal_id=PRINCIPAL + "-race", region="SH")
    approve = f"/api/v1/applications/{approvable_application(app)}/approve"
    key = {"Idempotency-Key": "two-bindings-race"}
    client = app.test_client()
    first = client.post(approve, json={}, headers=bearer(ks) | key)
    assert first.status_code == 200, first.get_json()

    real_find = transaction._find
    calls = []

    def first_look_misses(*args, **kwargs):
        calls.append(args)
        return None if len(calls) == 1 else real_find(*args, **kwargs)

    monkeypatch.setattr(transaction, "_find", first_look_misses)
    raced = client.post(approve, json={}, headers=bearer(sh) | key)
    assert len(calls) == 2, calls  # the look-up before the view, and the one after the refused commit
    assert_problem(raced, 422)
    assert first.get_json()["voucher"]["id"] not in raced.get_data(as_text=True)


def test_a_record_made_before_bindings_were_recorded_is_never_replayed(app):
    """Rows from before migration 0005 have an empty binding: whichever token
    made them is unknown, so the key is refused rather than replayed to a
    binding that may not see the response (or run a second time)."""
    sme = mint(app, "sme", principal_id=PRINCIPAL + "-legacy", enterprise_id="ent-ks-003")
    key = {"Idempotency-Key": "from-before-0005"}
    response = app.test_client().post("/api/v1/applications", json=APPLICATION, headers=bearer(sme) | key)
    assert response.status_code == 201
    with app.app_context(), Session(get_engine()) as session:
        record = session.exec(select(IdempotencyRecord).where(
            IdempotencyRecord.principal_id == PRINCIPAL + "-legacy")).one()
        assert record.token_binding == "sme::ent-ks-003:"
        record.token_binding = ""
        session.add(record)
        session.commit()
    before = state(app)
    again = app.test_client().post("/api/v1/applications", json=APPLICATION, headers=bearer(sme) | key)
    assert_problem(again, 422)
    assert state(app) == before


@pytest.fixture
def migrated_to_0004(databases):
    url = databases.empty()
    engine = create_engine(url)
    try:
        from alembic import command
        command.upgrade(migrate.alembic_config(engine), "0004")
        yield engine
    finally:
        engine.dispose()
        databases.drop(url)


def test_migration_0005_keeps_existing_records_with_an_empty_binding(migrated_to_0004):
    engine = migrated_to_0004
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO idempotency_record (principal_id, idempotency_key, request_hash, status_code, "
            "content_type, body, created_at) VALUES ('usr-old', 'k-1', 'h', 201, 'application/json', :body, "
            "'2026-01-01T00:00:00Z')"), {"body": b"{}"})
    migrate.upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT principal_id, token_binding FROM idempotency_record")).all()
    assert [tuple(row) for row in rows] == [("usr-old", "")]
    migrate.check(engine)
