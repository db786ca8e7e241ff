"""The one posting replay, `ledger.verify.replay.apply_postings`: what the offline
verifier replays an export with, and what the database's integrity check feeds
the stored rows to."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.journal import integrity
from voucher_service.journal import store as journal
from voucher_service.ledger import Posting
from voucher_service.ledger.verify import VerificationError
from voucher_service.ledger.verify.replay import apply_postings


def test_postings_move_money_and_accounts_back_at_zero_are_forgotten():
    balances = {"budget:KS": 500}
    apply_postings(balances, [("budget:KS", "voucher:v1", 200), ("budget:KS", "voucher:v2", 300)], 7)
    assert balances == {"voucher:v1": 200, "voucher:v2": 300}
    apply_postings(balances, [("voucher:v1", "voucher:v1:held", 200)], 8)
    assert balances == {"voucher:v1:held": 200, "voucher:v2": 300}


def test_a_treasury_may_go_negative():
    balances: dict[str, int] = {}
    apply_postings(balances, [("treasury:KS", "budget:KS", 1_000)], 0)
    assert balances == {"treasury:KS": -1_000, "budget:KS": 1_000}


def test_any_other_account_going_negative_names_the_seq():
    balances = {"budget:KS": 100}
    with pytest.raises(VerificationError) as raised:
        apply_postings(balances, [("budget:KS", "voucher:v1", 150)], 12)
    assert raised.value.seq == 12 and raised.value.where == "seq 12"
    assert raised.value.why == "account budget:KS goes negative (-50 fen); only treasury:* accounts may"
    # The postings were applied before the refusal: integrity replays on from here.
    assert balances == {"budget:KS": -50, "voucher:v1": 150}


def test_the_rule_holds_after_the_entry_as_the_journal_applies_it():
    """The journal checks each account's net move of an entry (store.append), so
    an account emptied and refilled within one entry is not negative."""
    balances = {"budget:KS": 100}
    apply_postings(balances, [("voucher:v1", "voucher:v1:held", 40), ("budget:KS", "voucher:v1", 40)], 3)
    assert balances == {"budget:KS": 60, "voucher:v1:held": 40}


def test_no_postings_change_nothing():
    balances = {"budget:KS": 100}
    apply_postings(balances, [], 0)
    assert balances == {"budget:KS": 100}


# --- the integrity check replays the stored rows with it -------------------------------------

def _append(db, signer, postings):
    return journal.append(db, signer, kind="test.moved", region="KS", actor="test", refs={"region": "KS"},
                          postings=postings)


def test_the_integrity_check_replays_stored_rows_with_the_verifiers_rule(fresh_app):
    """An edited row that overspends an account is reported in the words of the
    offline verifier's replay, and the replay goes on after it."""
    with fresh_app.app_context(), Session(get_engine(), expire_on_commit=False) as db:
        signer = fresh_app.extensions["vouchers_keyring"].signer_for(db)
        _append(db, signer, [Posting("treasury:KS", "voucher:replay-test", 100)])
        spend = _append(db, signer, [Posting("voucher:replay-test", "budget:KS", 60)])
        later = _append(db, signer, [Posting("treasury:KS", "voucher:replay-test", 100)])
        db.commit()
        assert integrity.check_all(db) == []

        edited = spend.canonical.replace(b'"amount":60', b'"amount":160')
        assert edited != spend.canonical
        db.connection().execute(text("UPDATE ledger_entry SET canonical = :c WHERE seq = :s"),
                                {"c": edited, "s": spend.seq})
        db.commit()
        problems = integrity.check_all(db)
    assert (f"seq {spend.seq}: account voucher:replay-test goes negative (-60 fen); only treasury:* accounts may"
            in problems)
    assert f"seq {spend.seq}: signature does not verify" in problems
    # The replay went on: the later entry is replayed on what the edited one left (100 - 160 + 100).
    assert not any(problem.startswith(f"seq {later.seq}:") for problem in problems)
    assert "account voucher:replay-test: stored 140, ledger replay 40" in problems
