"""The registry cache (voucher_service/registry_cache.py): a reservation reads
provider, catalogue item, policy, related providers and signing key from a
per-process cache, valid for one registry version that database triggers move.

Two apps on one database stand for two gunicorn workers: worker A warms its
cache with a reservation, worker B (or plain SQL, as any other code path
would) changes reference data, and A's next reservation must see the change.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from helpers import make_uscc
from sqlalchemy import text
from sqlmodel import Session, select

from voucher_service.catalogue import service as catalogue
from voucher_service.clock import local_date, utc_now
from voucher_service.db import get_engine
from voucher_service.enterprises import service as enterprises
from voucher_service.journal import reference_cache as registry_cache
from voucher_service.journal import store as journal
from voucher_service.journal.keys import rotate_region_key
from voucher_service.models import LedgerEntry, LedgerHead, Policy
from voucher_service.process import applications, redemptions
from voucher_service.programme import regions
from voucher_service.programme.context import Context
from voucher_service.programme.errors import NotFound, RuleViolation
from voucher_service.providers import exclusions
from voucher_service.providers import service as providers

PROVIDER, ITEM = "prv-sh-001", "TS-01"
KS_PROVIDER = "prv-ks-002"
REGISTRY_TABLES = {model.__tablename__ for model in registry_cache.REGISTRY_MODELS}


@contextmanager
def context(app, actor="test"):
    """A domain context in its own transaction, committed if the block succeeds."""
    with app.app_context():
        with Session(get_engine(), expire_on_commit=False) as session:
            ctx = Context(session=session, signer=app.extensions["vouchers_keyring"].signer_for(session),
                          actor=actor)
            try:
                yield ctx
            except BaseException:
                session.rollback()
                raise
            session.commit()


@pytest.fixture
def workers(fresh_app, databases):
    """Two apps (engines, caches) on one database, and a voucher to spend."""
    other = databases.app(fresh_app.config["DATABASE_URL"])
    with context(fresh_app) as ctx:
        enterprise = enterprises.register_enterprise(ctx, name="缓存测试企业", uscc=make_uscc("310115"), region="SH",
                                                  kind="enterprise")
        application = applications.submit_application(ctx, enterprise_id=enterprise.id, amount_fen=5_000_000,
                                                  purpose="cache test")
        _application, voucher = applications.approve_application(ctx, application.id)
    yield fresh_app, other, voucher.id, enterprise.id
    with other.app_context():
        get_engine().dispose()


def reserve(app, voucher_id, *, provider=PROVIDER, item=ITEM, fee=20_000, amount=10_000):
    with context(app) as ctx:
        return redemptions.reserve(ctx, voucher_id=voucher_id, provider_id=provider, catalog_code=item,
                                   service_fee_fen=fee, amount_fen=amount)


def refused(app, voucher_id, rule, **kw):
    with pytest.raises(RuleViolation) as caught:
        reserve(app, voucher_id, **kw)
    assert caught.value.rule == rule, caught.value.detail


def version(app) -> int:
    with app.app_context(), Session(get_engine()) as session:
        return session.get(LedgerHead, 1).registry_version


def sql(app, statement: str) -> None:
    """A change by a path that is not the domain's (an operator's SQL, a migration)."""
    with app.app_context(), Session(get_engine()) as session:
        session.connection().execute(text(statement))
        session.commit()


# --- the version the triggers keep ---------------------------------------------------

def test_every_cached_table_has_triggers_that_move_the_version(fresh_app):
    """Any INSERT, UPDATE or DELETE on a cached table moves the version in the
    same transaction (and a rollback takes it back); other tables do not."""
    rows = {"region": "code = 'SH'", "policy": "region = 'SH'", "catalog_category": "code = 'testing'",
            "catalog_item": f"code = '{ITEM}'", "provider": f"id = '{PROVIDER}'",
            "provider_category": f"provider_id = '{PROVIDER}'", "enterprise": "region = 'SH'",
            "signing_key": "region = 'SH'"}
    assert REGISTRY_TABLES == set(rows) | {"enterprise_related_provider", "provider_exclusion"}
    with fresh_app.app_context(), Session(get_engine()) as session:
        connection = session.connection()
        start = connection.execute(text("SELECT registry_version FROM ledger_head")).scalar_one()
        seen = start
        for table, where in rows.items():
            first_column = connection.execute(text(f"SELECT * FROM {table} WHERE {where}")).keys()
            column = list(first_column)[0]
            assert connection.execute(text(f"UPDATE {table} SET {column} = {column} WHERE {where}")).rowcount > 0
            now = connection.execute(text("SELECT registry_version FROM ledger_head")).scalar_one()
            assert now > seen, f"an UPDATE of {table} did not move the registry version"
            seen = now
        enterprise = connection.execute(text("SELECT id FROM enterprise LIMIT 1")).scalar_one()
        # Tables the seeds leave empty: a row is inserted, updated and deleted.
        for statement in (f"INSERT INTO enterprise_related_provider (enterprise_id, provider_id) "
                          f"VALUES ('{enterprise}', '{PROVIDER}')",
                          f"DELETE FROM enterprise_related_provider WHERE enterprise_id = '{enterprise}'",
                          f"INSERT INTO provider_exclusion (region, provider_id, reason, excluded_by, excluded_at) "
                          f"VALUES ('KS', '{PROVIDER}', 'test', 'test', '2026-01-01T00:00:00Z')",
                          "UPDATE provider_exclusion SET reason = 'changed'",
                          "DELETE FROM provider_exclusion"):
            connection.execute(text(statement))
            now = connection.execute(text("SELECT registry_version FROM ledger_head")).scalar_one()
            assert now > seen, statement
            seen = now
        connection.execute(text("UPDATE voucher SET status = status"))
        connection.execute(text("UPDATE account SET balance_fen = balance_fen"))
        assert connection.execute(text("SELECT registry_version FROM ledger_head")).scalar_one() == seen
        session.rollback()
    assert version(fresh_app) == start


def test_databases_start_at_unrelated_versions(databases):
    """A rebuilt database never starts at the version an old one's cache holds."""
    urls = [databases.empty(), databases.empty()]
    try:
        starts = []
        for url in urls:
            app = databases.app(url)
            assert app.test_cli_runner().invoke(args=["init"]).exit_code == 0
            starts.append(version(app))
            with app.app_context():
                get_engine().dispose()
        assert starts[0] != starts[1]
    finally:
        for url in urls:
            databases.drop(url)


# --- another worker's change is seen -------------------------------------------------

def test_a_provider_suspended_by_another_worker_is_refused(workers):
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id)
    with context(b) as ctx:
        providers.set_provider_status(ctx, PROVIDER, "suspended")
    refused(a, voucher_id, "provider_active")
    with context(b) as ctx:
        providers.set_provider_status(ctx, PROVIDER, "active")
    reserve(a, voucher_id)


def test_accreditation_withdrawn_by_plain_sql_is_refused(workers):
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id)
    sql(b, f"DELETE FROM provider_category WHERE provider_id = '{PROVIDER}' AND category = 'testing'")
    refused(a, voucher_id, "provider_accredited")


def test_a_catalogue_item_withdrawn_or_lowered_by_another_worker_is_refused(workers):
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id)
    with context(b) as ctx:
        catalogue.update_catalog_item(ctx, ITEM, region="SH", changes={"max_subsidy_ratio_bp": 2_000})
    refused(a, voucher_id, "subsidy_ratio")                     # 50% asked, 20% allowed now
    reserve(a, voucher_id, fee=50_000, amount=10_000)
    with context(b) as ctx:
        catalogue.update_catalog_item(ctx, ITEM, region="SH", changes={"active": False})
    refused(a, voucher_id, "catalog_item_active", fee=50_000)


def test_a_policy_adopted_by_another_worker_applies_from_its_date(workers):
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id)
    today = local_date(utc_now())
    with b.app_context(), Session(get_engine()) as session:
        current = session.exec(select(Policy).where(Policy.region == "SH")
                               .order_by(Policy.effective_from.desc())).first()
        fields = {name: getattr(current, name) for name in ("enterprise_cap_fen", "team_cap_fen", "validity_days",
                                                             "payout_cycle", "budget_fen")}
    with context(b) as ctx:
        regions.adopt_policy(ctx, "SH", effective_from=today + timedelta(days=1), subsidy_ratio_bp=1_000, **fields)
    reserve(a, voucher_id)                                      # not in effect yet
    with context(b) as ctx:
        regions.adopt_policy(ctx, "SH", effective_from=today, subsidy_ratio_bp=1_000, **fields)
    refused(a, voucher_id, "subsidy_ratio")


def test_an_exclusion_by_another_worker_is_refused_and_its_lifting_seen(workers):
    """The workers' voucher is SH's; prv-ks-002 is a KS provider SH may exclude."""
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id, provider=KS_PROVIDER)
    with context(b) as ctx:
        exclusions.exclude_provider(ctx, region="SH", provider_id=KS_PROVIDER, reason="cache test")
    refused(a, voucher_id, "provider_excluded", provider=KS_PROVIDER)
    with context(b) as ctx:
        exclusions.readmit_provider(ctx, region="SH", provider_id=KS_PROVIDER)
    reserve(a, voucher_id, provider=KS_PROVIDER)
    sql(b, f"INSERT INTO provider_exclusion (region, provider_id, reason, excluded_by, excluded_at) "
           f"VALUES ('SH', '{KS_PROVIDER}', 'by hand', 'operator', '2026-01-01T00:00:00Z')")
    refused(a, voucher_id, "provider_excluded", provider=KS_PROVIDER)
    sql(b, "DELETE FROM provider_exclusion")
    reserve(a, voucher_id, provider=KS_PROVIDER)


def test_a_related_provider_recorded_by_plain_sql_is_refused(workers):
    a, b, voucher_id, enterprise_id = workers
    reserve(a, voucher_id)
    sql(b, f"INSERT INTO enterprise_related_provider (enterprise_id, provider_id) "
           f"VALUES ('{enterprise_id}', '{PROVIDER}')")
    refused(a, voucher_id, "related_party")


def test_a_provider_registered_by_another_worker_can_be_used_at_once(workers):
    a, b, voucher_id, _ = workers
    with pytest.raises(NotFound):
        reserve(a, voucher_id, provider="prv-sh-new")           # cached as missing
    with context(b) as ctx:
        providers.register_provider(ctx, name="新服务机构", uscc=make_uscc("310115"), region="SH",
                                   categories=["testing"], provider_id="prv-sh-new")
    reserve(a, voucher_id, provider="prv-sh-new")


def test_entries_after_a_rotation_by_another_worker_carry_the_new_key(workers):
    a, b, voucher_id, _ = workers
    reserve(a, voucher_id)
    with b.app_context(), Session(get_engine(), expire_on_commit=False) as session:
        _old, new = rotate_region_key(session, b.extensions["vouchers_keyring"], region="SH",
                                      keys_dir=b.config["VOUCHERS_KEYS_DIR"],
                                      passphrase=b.config["VOUCHERS_KEY_PASSPHRASE"], origin="test", actor="test")
        session.commit()
    redemption = reserve(a, voucher_id)
    with a.app_context(), Session(get_engine()) as session:
        entry = session.exec(select(LedgerEntry).where(LedgerEntry.kind == "redemption.reserved")
                             .order_by(LedgerEntry.seq.desc())).first()
    assert redemption.id in entry.canonical.decode()
    assert entry.key_id == new.key_id


# --- a transaction's own changes -----------------------------------------------------

def test_a_change_in_the_same_transaction_is_seen_and_a_rollback_leaves_no_trace(workers):
    a, _b, voucher_id, _ = workers
    reserve(a, voucher_id)                                       # cache warm: active
    with context(a) as ctx:
        providers.set_provider_status(ctx, PROVIDER, "suspended")
    refused(a, voucher_id, "provider_active")                   # cache warm: suspended
    with pytest.raises(RuntimeError, match="roll back"):
        with context(a) as ctx:
            providers.set_provider_status(ctx, PROVIDER, "active")
            redemptions.reserve(ctx, voucher_id=voucher_id, provider_id=PROVIDER, catalog_code=ITEM,
                                service_fee_fen=20_000, amount_fen=10_000)
            assert journal.registry_version(ctx.session) is None
            raise RuntimeError("roll back")
    # The reinstatement never committed: what the rolled-back transaction read
    # must not have been kept for the version the database is back at.
    refused(a, voucher_id, "provider_active")


def test_an_exclusion_applies_within_its_own_transaction(workers):
    a, _b, voucher_id, _ = workers
    reserve(a, voucher_id, provider=KS_PROVIDER)                 # cache warm: not excluded
    with pytest.raises(RuleViolation) as caught:
        with context(a) as ctx:
            exclusions.exclude_provider(ctx, region="SH", provider_id=KS_PROVIDER, reason="same transaction")
            redemptions.reserve(ctx, voucher_id=voucher_id, provider_id=KS_PROVIDER, catalog_code=ITEM,
                                service_fee_fen=20_000, amount_fen=10_000)
    assert caught.value.rule == "provider_excluded"
    reserve(a, voucher_id, provider=KS_PROVIDER)                 # rolled back: not excluded


def test_a_rotation_signs_its_own_entry_with_the_new_key(workers):
    a, _b, voucher_id, _ = workers
    reserve(a, voucher_id)                                       # the old key id is cached
    with a.app_context(), Session(get_engine(), expire_on_commit=False) as session:
        _old, new = rotate_region_key(session, a.extensions["vouchers_keyring"], region="SH",
                                      keys_dir=a.config["VOUCHERS_KEYS_DIR"],
                                      passphrase=a.config["VOUCHERS_KEY_PASSPHRASE"], origin="test", actor="test")
        rotation = session.exec(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
        assert (rotation.kind, rotation.key_id) == ("key.rotated", new.key_id)
        session.commit()


def test_outside_the_lock_nothing_is_cached(workers):
    a, _b, _voucher_id, _ = workers
    with context(a) as ctx:
        loads = []
        for _ in range(2):
            registry_cache.cached(ctx.session, "test", 1, lambda: loads.append(1))
        assert len(loads) == 2
        journal.lock_ledger(ctx.session)
        for _ in range(2):
            registry_cache.cached(ctx.session, "test", 1, lambda: loads.append(1))
        assert len(loads) == 3


def test_a_full_cache_starts_over_and_stays_right(workers, monkeypatch):
    a, b, voucher_id, _ = workers
    monkeypatch.setattr(registry_cache, "MAX_ENTRIES", 2)
    reserve(a, voucher_id)
    with context(b) as ctx:
        providers.set_provider_status(ctx, PROVIDER, "suspended")
    refused(a, voucher_id, "provider_active")
    assert len(registry_cache._caches[a.extensions["vouchers_engine"]].entries) <= 2
