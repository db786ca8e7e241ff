"""An edit of the stored ledger under a signed checkpoint (DESIGN §10, last
bullet): /readyz turns 503 with the `ledger_integrity` problem within a bounded
number of probes and stays so while the rows stay edited, and the signed
reconciliation statement of the entry's region and period no longer says ok.
Every edit is made the way an administrator (or an attacker with the
database) would: SQL on the tables, under a checkpoint that signed them.

Each test runs on a pristine database (`fresh_app`) with a small readiness
window, so that a pass over the log takes several probes, as it does at
scale."""
from __future__ import annotations

import json
import math

import pytest
from helpers import PROBLEM_JSON, assert_problem, current_month, ok, published_checkpoint, redeem
from sqlalchemy import text
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.http.health import INTEGRITY_SCAN
from voucher_service.journal.integrity_scan import ReadinessScan
from voucher_service.ledger import merkle
from voucher_service.ledger.merkle import node_key
from voucher_service.ledger.statement import StatementChecksFailed, verify_statement

WINDOW, NEWEST = 8, 2
INTEGRITY_TYPE = "urn:vouchers:problem:ledger_integrity"
INTEGRITY_CHECKS = {"entry_bytes_vs_stored_hashes", "entries_vs_signed_root", "posting_rows_vs_entry_bytes"}


@pytest.fixture
def ledger(fresh_app, fresh_actors):
    """A KS redemption at an SH provider, then a checkpoint over it, then a few
    entries more: the redemption's entries are old and signed."""
    fresh_app.extensions[INTEGRITY_SCAN] = ReadinessScan(window_entries=WINDOW, newest_entries=NEWEST)
    redeem(fresh_actors, "ent-ks-003", "prv-sh-001", 20_000)
    signed_size = checkpoint(fresh_app)
    for _ in range(3):  # later activity: the redemption is not among the newest entries
        application = ok(fresh_actors.sme("ent-sh-001").post("/applications", json={
            "amount_fen": 10_000, "purpose": "later"}), 201)
        ok(fresh_actors.officer("SH").post(f"/applications/{application['id']}/approve", json={}))
    return fresh_app, fresh_actors, signed_size


def checkpoint(app) -> int:
    """Publish a checkpoint of the current tree, as the background publisher
    does; its size. (The one place these tests have one signed.)"""
    return int(published_checkpoint(app).splitlines()[1])


def sql(app, statement: str, **params):
    with app.app_context(), Session(get_engine()) as session:
        result = session.connection().execute(text(statement), params)
        rows = result.all() if result.returns_rows else None
        session.commit()
        return rows


def entry_of(app, kind: str) -> tuple[int, bytes]:
    (seq, canonical), *_ = sql(app, "SELECT seq, canonical FROM ledger_entry WHERE kind = :kind ORDER BY seq",
                               kind=kind)
    return seq, bytes(canonical)


def probes_for_a_pass(app) -> int:
    size = sql(app, "SELECT size FROM ledger_head")[0][0]
    return math.ceil(size / WINDOW)


def readyz(app):
    return app.test_client().get("/readyz")


def assert_integrity_problem(response, status=503) -> dict:
    body = assert_problem(response, status)
    assert body["type"] == INTEGRITY_TYPE, body
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def probes_until_failing(app) -> tuple[int, dict]:
    """Probe until /readyz fails, at most one pass over the log and one probe more."""
    for probe in range(1, probes_for_a_pass(app) + 2):
        r = readyz(app)
        if r.status_code != 200:
            return probe, assert_integrity_problem(r)
    raise AssertionError(f"/readyz stayed ready for {probe} probes over an edited ledger")


def statement(actors, region="KS"):
    r = actors.auditor().get(f"/regions/{region}/reconciliation", query_string={"period": current_month()})
    assert r.status_code in (200, 500), r.get_data(as_text=True)
    if r.status_code == 500:  # the stored tree cannot even give the statement's root
        assert_integrity_problem(r, 500)
        return None
    assert r.mimetype == "application/json"
    return r.get_json()


def failed_checks(signed: dict) -> set[str]:
    return {c["name"] for c in signed["checks"] if not c["ok"]}


# --- an untouched ledger -----------------------------------------------------------------

def test_an_untouched_ledger_stays_ready_over_whole_passes_and_its_statement_is_clean(ledger):
    app, actors, signed_size = ledger
    windows = set()
    for _ in range(2 * probes_for_a_pass(app) + 1):
        body = ok(readyz(app))
        assert body["status"] == "ready"
        covered = body["ledger_integrity"]
        assert covered["checkpoint_size"] == signed_size
        windows.add((covered["window_start"], covered["window_end"]))
    size = sql(app, "SELECT size FROM ledger_head")[0][0]
    # The windows tile the whole log, and each probe moved on to the next.
    assert sorted(windows) == [(lo, min(lo + WINDOW, size)) for lo in range(0, size, WINDOW)]
    signed = statement(actors)
    assert INTEGRITY_CHECKS <= {c["name"] for c in signed["checks"]}
    assert not failed_checks(signed), [c for c in signed["checks"] if not c["ok"]]
    assert verify_statement(signed, app.test_client().get("/api/v1/ledger/keys").get_json()).startswith("ok:")


def test_a_ledger_without_a_checkpoint_is_ready_and_checked_against_its_stored_hashes(fresh_app, fresh_actors):
    fresh_app.extensions[INTEGRITY_SCAN] = ReadinessScan(window_entries=WINDOW, newest_entries=NEWEST)
    sql(fresh_app, "DELETE FROM ledger_checkpoint")  # `vouchers init` signs one; a ledger from before did not
    assert sql(fresh_app, "SELECT count(*) FROM ledger_checkpoint")[0][0] == 0
    assert ok(readyz(fresh_app))["ledger_integrity"]["checkpoint_size"] is None
    seq, canonical = entry_of(fresh_app, "budget.funded")
    sql(fresh_app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=canonical + b" ", s=seq)
    probes_until_failing(fresh_app)


# --- edits under the checkpoint ------------------------------------------------------------

def edit_amount(canonical: bytes) -> bytes:
    entry = json.loads(canonical)
    old = entry["postings"][0]["amount"]
    edited = canonical.replace(b'"amount":%d' % old, b'"amount":%d' % (old + 1), 1)
    assert edited != canonical
    return edited


def edit_bytes(app, seq, canonical):
    sql(app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=edit_amount(canonical), s=seq)


def edit_bytes_and_every_hash_of_the_leaf(app, seq, canonical):
    """The careful edit: bytes, leaf_hash column and level-0 node all agree;
    only the tree above them, and the signed root, still remember."""
    edited = edit_amount(canonical)
    leaf = merkle.leaf_hash(edited)
    sql(app, "UPDATE ledger_entry SET canonical = :c, leaf_hash = :h WHERE seq = :s", c=edited, h=leaf, s=seq)
    sql(app, "UPDATE ledger_node SET hash = :h WHERE id = :id", h=leaf, id=node_key((0, seq)))


def edit_leaf_hash_column(app, seq, _canonical):
    sql(app, "UPDATE ledger_entry SET leaf_hash = :h WHERE seq = :s", h=bytes(32), s=seq)


def edit_stored_leaf(app, seq, _canonical):
    sql(app, "UPDATE ledger_node SET hash = :h WHERE id = :id", h=bytes(32), id=node_key((0, seq)))


def edit_interior_node(app, seq, _canonical):
    # The level-1 node over the entry: proofs of its neighbours are served from it.
    sql(app, "UPDATE ledger_node SET hash = :h WHERE id = :id", h=bytes(32), id=node_key((1, seq // 2)))


def edit_posting_amount(app, seq, _canonical):
    sql(app, "UPDATE ledger_posting SET amount_fen = amount_fen + 1 WHERE seq = :s AND position = 0", s=seq)


def delete_posting_rows(app, seq, _canonical):
    sql(app, "DELETE FROM ledger_posting WHERE seq = :s", s=seq)


def move_postings_to_another_region(app, seq, _canonical):
    sql(app, "UPDATE ledger_posting SET region = 'SH' WHERE seq = :s", s=seq)


def edit_region_column(app, seq, _canonical):
    sql(app, "UPDATE ledger_entry SET region = 'SH' WHERE seq = :s", s=seq)


def garbage_bytes(app, seq, _canonical):
    sql(app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=b"\xff\xfe{not json", s=seq)


EDITS = {
    edit_bytes: "entry_bytes_vs_stored_hashes",
    edit_bytes_and_every_hash_of_the_leaf: "entries_vs_signed_root",
    edit_leaf_hash_column: "entry_bytes_vs_stored_hashes",
    edit_stored_leaf: "entry_bytes_vs_stored_hashes",
    # Proofs are served from interior nodes; a statement's claims are its
    # entries, which this edit leaves as signed: readiness alone looks there.
    edit_interior_node: None,
    edit_posting_amount: "posting_rows_vs_entry_bytes",
    delete_posting_rows: "posting_rows_vs_entry_bytes",
    move_postings_to_another_region: "posting_rows_vs_entry_bytes",
    edit_region_column: "posting_rows_vs_entry_bytes",
    garbage_bytes: "entry_bytes_vs_stored_hashes",
}


@pytest.mark.parametrize("edit", list(EDITS), ids=lambda edit: edit.__name__)
@pytest.mark.parametrize("kind", ["voucher.issued", "redemption.redeemed"])
def test_an_edit_under_the_checkpoint_fails_readiness_and_the_statement(ledger, edit, kind):
    app, actors, signed_size = ledger
    seq, canonical = entry_of(app, kind)
    size = sql(app, "SELECT size FROM ledger_head")[0][0]
    assert seq < signed_size and seq < size - NEWEST
    assert ok(readyz(app))["status"] == "ready"
    clean = statement(actors)
    assert not failed_checks(clean)

    edit(app, seq, canonical)

    _probes, body = probes_until_failing(app)
    assert "ledger integrity check failed" in body["detail"]
    # ... and it stays failing, whichever window the probe moves on to.
    for _ in range(probes_for_a_pass(app) + 1):
        assert_integrity_problem(readyz(app))

    signed = statement(actors)
    if signed is not None and EDITS[edit] is not None:
        assert EDITS[edit] in failed_checks(signed), [c for c in signed["checks"] if c["name"] in INTEGRITY_CHECKS]
        keys = app.test_client().get("/api/v1/ledger/keys").get_json()
        with pytest.raises(StatementChecksFailed):
            verify_statement(signed, keys)


def test_a_posting_row_added_to_another_regions_entry_fails_readiness_and_the_statement(ledger):
    """A row that would count in KS's totals, hung on an SH entry under the checkpoint."""
    app, actors, signed_size = ledger
    (seq, ts, kind), *_ = sql(app, "SELECT seq, ts, kind FROM ledger_entry WHERE region = 'SH' AND kind = "
                                   "'budget.funded' AND seq < :s ORDER BY seq", s=signed_size)
    sql(app, "INSERT INTO ledger_posting (seq, position, ts, kind, region, source, destination, amount_fen) "
             "VALUES (:seq, 7, :ts, :kind, 'KS', 'treasury:KS', 'budget:KS', 100)", seq=seq, ts=ts, kind=kind)
    probes_until_failing(app)
    assert "posting_rows_vs_entry_bytes" in failed_checks(statement(actors, "KS"))


def test_readiness_recovers_once_the_edited_rows_are_restored(ledger):
    app, _actors, _signed_size = ledger
    seq, canonical = entry_of(app, "voucher.issued")
    edit_bytes(app, seq, canonical)
    probes_until_failing(app)
    sql(app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=canonical, s=seq)
    assert ok(readyz(app))["status"] == "ready"


def test_with_two_edits_repairing_one_keeps_readiness_failing_until_the_other_is_repaired(ledger):
    app, _actors, _signed_size = ledger
    first_seq, first = entry_of(app, "voucher.issued")
    second_seq, second = entry_of(app, "redemption.redeemed")
    assert second_seq // WINDOW != first_seq // WINDOW  # in two windows
    edit_bytes(app, first_seq, first)
    edit_bytes(app, second_seq, second)
    probes_until_failing(app)
    for _ in range(probes_for_a_pass(app)):  # both found, whichever came first
        assert_integrity_problem(readyz(app))
    sql(app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=first, s=first_seq)
    for _ in range(probes_for_a_pass(app) + 1):
        body = assert_integrity_problem(readyz(app))
        assert f"seq {second_seq}" in body["detail"] and f"seq {first_seq}:" not in body["detail"]
    sql(app, "UPDATE ledger_entry SET canonical = :c WHERE seq = :s", c=second, s=second_seq)
    assert ok(readyz(app))["status"] == "ready"


def test_a_stored_node_under_the_signed_root_fails_the_very_next_probe(ledger):
    app, actors, signed_size = ledger
    top_level, top_index = merkle.subtree_nodes(0, signed_size)[0]
    sql(app, "UPDATE ledger_node SET hash = :h WHERE id = :id", h=bytes(32), id=node_key((top_level, top_index)))
    body = assert_integrity_problem(readyz(app))
    assert f"root signed at size {signed_size}" in body["detail"]
    signed = statement(actors)
    assert signed is None or "entries_vs_signed_root" in failed_checks(signed)


@pytest.mark.parametrize("node", ["leaf", "top"])
def test_a_missing_node_is_the_integrity_problem_not_a_server_error(ledger, node):
    app, actors, _signed_size = ledger
    seq, _canonical = entry_of(app, "voucher.issued")
    size = sql(app, "SELECT size FROM ledger_head")[0][0]
    # The entry's leaf, or the largest stored subtree of the current tree, which
    # every root (the statement's own included) is read from.
    missing = (0, seq) if node == "leaf" else merkle.subtree_nodes(0, size)[0]
    sql(app, "DELETE FROM ledger_node WHERE id = :id", id=node_key(missing))
    probes_until_failing(app)
    signed = statement(actors)
    if node == "leaf":
        assert "entry_bytes_vs_stored_hashes" in failed_checks(signed)
    else:
        assert signed is None  # statement() checked it is the ledger_integrity problem


def test_a_removed_tail_under_the_checkpoint_fails_readiness(ledger):
    app, _actors, _signed_size = ledger
    last = sql(app, "SELECT size FROM ledger_head")[0][0] - 1
    checkpoint(app)  # signs every entry, the last one included
    for table in ("ledger_posting", "ledger_ref", "ledger_entry"):
        sql(app, f"DELETE FROM {table} WHERE seq = :s", s=last)
    sql(app, "UPDATE ledger_head SET size = :s WHERE id = 1", s=last)
    body = assert_integrity_problem(readyz(app))
    assert "fewer than the" in body["detail"]


def test_an_edited_checkpoint_row_fails_readiness(ledger):
    app, _actors, signed_size = ledger
    sql(app, "UPDATE ledger_checkpoint SET root_hash = :h WHERE size = :s", h=bytes(32), s=signed_size)
    body = assert_integrity_problem(readyz(app))
    assert "does not match its signed note" in body["detail"]
    assert readyz(app).mimetype == PROBLEM_JSON
