"""The journal's rows, written as statements under the ledger lock: seq, balances,
and no stale ORM copy of a row it changed (SQLite and PostgreSQL alike)."""
from __future__ import annotations

import pytest
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.journal import integrity as invariants
from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.models import Account, LedgerHead


@pytest.fixture
def session(fresh_app):
    with fresh_app.app_context():
        with Session(get_engine(), expire_on_commit=False) as db:
            yield db, fresh_app.extensions["vouchers_keyring"].signer_for(db)


def _append(db, signer, postings, kind="test.moved"):
    return journal.append(db, signer, kind=kind, region="KS", actor="test", refs={"region": "KS"},
                          postings=postings)


def test_seq_follows_the_head_within_and_across_transactions(session):
    db, signer = session
    size = journal.lock_ledger(db)
    assert journal.lock_ledger(db) == size  # the same transaction holds the lock once
    first = _append(db, signer, [Posting("treasury:KS", "budget:KS", 100)])
    second = journal.append(db, signer, kind="test.noted", region="KS", actor="test", refs={})
    assert (first.seq, second.seq) == (size, size + 1)
    assert journal.lock_ledger(db) == size + 2
    db.commit()
    assert journal.lock_ledger(db) == size + 2
    assert db.get(LedgerHead, 1).size == size + 2
    db.rollback()
    assert invariants.check_all(db) == []


def test_an_append_refuses_a_head_moved_behind_the_lock(session):
    db, signer = session
    size = journal.lock_ledger(db)
    db.connection().exec_driver_sql("UPDATE ledger_head SET size = size + 1")
    with pytest.raises(journal.LedgerInvariantError, match=f"no longer at {size}"):
        _append(db, signer, [])
    db.rollback()
    assert journal.lock_ledger(db) == size
    db.rollback()


def test_an_orm_copy_read_before_an_append_is_not_stale_after_it(session):
    db, signer = session
    journal.lock_ledger(db)
    before = db.get(Account, "budget:KS")
    head = db.get(LedgerHead, 1)
    start_balance, start_size = before.balance_fen, head.size
    _append(db, signer, [Posting("treasury:KS", "budget:KS", 250)])
    assert db.get(Account, "budget:KS").balance_fen == start_balance + 250
    assert db.get(LedgerHead, 1).size == start_size + 1
    assert journal.account_balance(db, "budget:KS") == start_balance + 250
    db.commit()


def test_postings_net_per_account_and_open_new_accounts(session):
    db, signer = session
    journal.lock_ledger(db)
    _append(db, signer, [Posting("treasury:KS", "test:a", 500), Posting("test:a", "test:b", 300),
                         Posting("test:b", "test:c", 100)])
    assert [journal.account_balance(db, name) for name in ("test:a", "test:b", "test:c")] == [200, 200, 100]
    _append(db, signer, [Posting("test:a", "test:c", 200)])
    assert [journal.account_balance(db, name) for name in ("test:a", "test:c")] == [0, 300]
    db.commit()
    assert invariants.check_all(db) == []


@pytest.mark.parametrize("postings", [
    [Posting("test:empty", "budget:KS", 1)],                                    # a new account below zero
    [Posting("budget:KS", "test:x", 10**15)],                                   # an existing one below zero
    [Posting("treasury:KS", "test:y", 5), Posting("test:y", "test:z", 6)],    # netted within one entry
])
def test_no_account_but_a_treasury_may_go_below_zero(session, postings):
    db, signer = session
    size = journal.lock_ledger(db)
    budget = journal.account_balance(db, "budget:KS")
    with pytest.raises(journal.LedgerInvariantError, match="would go negative"):
        _append(db, signer, postings)
    db.rollback()
    assert journal.lock_ledger(db) == size
    assert journal.account_balance(db, "budget:KS") == budget
    assert all(journal.account_balance(db, name) == 0 for name in ("test:empty", "test:x", "test:y", "test:z"))
    db.rollback()


def test_a_treasury_may_go_below_zero(session):
    db, signer = session
    journal.lock_ledger(db)
    before = journal.account_balance(db, "treasury:KS")
    _append(db, signer, [Posting("treasury:KS", "budget:KS", 10**12)])
    assert journal.account_balance(db, "treasury:KS") == before - 10**12 < 0
    db.commit()
    assert invariants.check_all(db) == []
