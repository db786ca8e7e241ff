"""The ledger over HTTP: stamps on writes, published checkpoints, proofs,
entries, the export, receipts and key rotation."""
import base64
import json
import time

import pytest
from sqlmodel import Session, select

from voucher_service.db import get_engine
from voucher_service.journal.integrity import check_all
from voucher_service.ledger import Entry, Posting, SigningKey, merkle, sign_entry
from voucher_service.ledger.canonical import canonical_bytes
from voucher_service.ledger.endorsement import check_endorsement, endorse
from voucher_service.ledger.entry import parse_entry
from voucher_service.ledger.merkle import node_key
from voucher_service.journal.store import LedgerInvariantError
from voucher_service.ledger.note import Checkpoint, Verifier, open_note, parse_note, verifier_key
from voucher_service.ledger.verify import VerificationError, check_entry, load_keys
from voucher_service.models import LedgerCheckpoint, LedgerEntry, LedgerNode
from helpers import add_evidence, publish, published_checkpoint

REGIONS = {"SH", "KS", "WJ"}


def b64d(value):
    return base64.b64decode(value)


def anonymous(app):
    return app.test_client()


def served_checkpoint(app):
    r = anonymous(app).get("/api/v1/ledger/checkpoint")
    assert r.status_code == 200 and r.mimetype == "text/plain", r.get_data(as_text=True)
    return r.get_data(as_text=True)


checkpoint = published_checkpoint


def stored_checkpoints(app):
    with app.app_context(), Session(get_engine()) as session:
        return [(row.size, row.note) for row in session.exec(select(LedgerCheckpoint)
                                                              .order_by(LedgerCheckpoint.size)).all()]


def keys(app):
    r = anonymous(app).get("/api/v1/ledger/keys")
    assert r.status_code == 200
    return r.json


def open_checkpoint(app, note):
    verifiers = [Verifier.parse(k["note_key"]) for k in keys(app)["keys"]]
    note_text, good = open_note(note, verifiers)
    return Checkpoint.parse(note_text), good


def issue(actors, sme="ent-ks-003", officer="KS", amount_fen=100_000):
    r = actors.sme(sme).post("/applications", json={"amount_fen": amount_fen, "purpose": "ledger"})
    assert r.status_code == 201, r.json
    r = actors.officer(officer).post(f"/applications/{r.json['id']}/approve", json={})
    assert r.status_code == 200, r.json
    return r.json


def test_every_write_response_names_its_ledger_entry(actors):
    auditor = actors.auditor()
    approved = issue(actors)
    stamp = approved["ledger"]
    entry = auditor.get(f"/ledger/entries/{stamp['seq']}").json
    assert entry["kind"] == "voucher.issued" and entry["refs"]["voucher"] == approved["voucher_id"]
    line = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    assert b64d(stamp["leaf_hash"]) == merkle.leaf_hash(line)
    # A GET carries no stamp: it appended nothing.
    assert "ledger" not in auditor.get(f"/vouchers/{approved['voucher_id']}").json


def test_checkpoint_is_signed_by_the_log_key_and_published_only_when_the_tree_grows(app, actors):
    first = checkpoint(app)
    cp, good = open_checkpoint(app, first)
    assert cp.origin == "vouchers.example/ledger"
    log_keys = [k for k in keys(app)["keys"] if k["purpose"] == "log"]
    assert len(log_keys) == 1 and log_keys[0]["region"] is None and log_keys[0]["note_name"] == cp.origin
    assert [v.name for v in good] == [cp.origin], "signed by the log key alone: regions' keys sign entries"
    assert len(parse_note(first)[1]) == 1
    assert checkpoint(app) == first, "no growth, nothing new to publish"
    issue(actors)
    stored = stored_checkpoints(app)
    # Reading never signs: GET serves the last published checkpoint, however many readers.
    for _ in range(5):
        assert served_checkpoint(app) == first
    assert stored_checkpoints(app) == stored, "GET /ledger/checkpoint wrote"
    second = checkpoint(app)
    cp2, _ = open_checkpoint(app, second)
    assert cp2.size == cp.size + 2  # application.submitted, voucher.issued
    r = anonymous(app).get(f"/api/v1/ledger/proofs/consistency?first={cp.size}&second={cp2.size}")
    assert merkle.verify_consistency(cp.size, cp2.size, cp.root_hash, cp2.root_hash, [b64d(h) for h in r.json["hashes"]])
    assert {cp.size, cp2.size} <= {size for size, _note in stored_checkpoints(app)}


def test_a_worker_serves_a_note_another_process_published_within_a_second(app, actors):
    """Pollers are served from the worker's memory (docs/performance.md §1a):
    a checkpoint published elsewhere (another worker's publisher, `vouchers
    checkpoint publish`) reaches them within PUBLISHED_NOTE_TTL_S; one this
    process publishes, at once."""
    from voucher_service.journal.tree import PUBLISHED_NOTE_TTL_S
    first = checkpoint(app)
    assert served_checkpoint(app) == first
    issue(actors)
    # Another process's round: the same signing, without this process's forgetting.
    import voucher_service.journal.publisher as publisher
    original = publisher.forget_published_note
    publisher.forget_published_note = lambda _engine: None
    try:
        second = publish(app).note
    finally:
        publisher.forget_published_note = original
    assert second != first
    assert served_checkpoint(app) == first, "served from memory until the note's time is up"
    time.sleep(min(PUBLISHED_NOTE_TTL_S, app.config["VOUCHERS_CHECKPOINT_INTERVAL_S"] / 2) + 0.05)
    assert served_checkpoint(app) == second
    issue(actors)
    third = publish(app).note
    assert served_checkpoint(app) == third, "a round in this process is served at once"


def test_witnesses_are_listed_even_when_none_are_configured(app):
    r = anonymous(app).get("/api/v1/ledger/witnesses")
    assert r.status_code == 200 and r.json["witnesses"] == []
    assert r.json["published_size"] == int(served_checkpoint(app).splitlines()[1])


def test_inclusion_proofs_verify_against_the_checkpoint(app, actors):
    seq = issue(actors)["ledger"]["seq"]
    cp, _ = open_checkpoint(app, checkpoint(app))
    auditor = actors.auditor()
    for index in {0, seq, cp.size - 1}:
        entry = auditor.get(f"/ledger/entries/{index}").json
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        proof = anonymous(app).get(f"/api/v1/ledger/proofs/inclusion?index={index}&tree_size={cp.size}").json
        hashes = [b64d(h) for h in proof["hashes"]]
        assert merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(line), hashes, cp.root_hash)
        assert not merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(line + b" "), hashes, cp.root_hash)


@pytest.mark.parametrize("query", [
    "index=0&tree_size=0", "index=5&tree_size=5", "index=-1&tree_size=3", "index=0&tree_size=99999999",
    "index=x&tree_size=2", "tree_size=2", "index=0&tree_size=9007199254740993"])
def test_inclusion_out_of_range_is_a_problem(app, query):
    r = anonymous(app).get(f"/api/v1/ledger/proofs/inclusion?{query}")
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)


@pytest.mark.parametrize("query", ["first=3&second=2", "first=0&second=2", "first=1&second=99999999", "first=1"])
def test_consistency_out_of_range_is_a_problem(app, query):
    r = anonymous(app).get(f"/api/v1/ledger/proofs/consistency?{query}")
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_data(as_text=True)


def test_entries_page_and_show_each_principal_only_what_concerns_it(actors):
    issue(actors, sme="ent-sh-001", officer="SH")
    issue(actors, sme="ent-ks-003", officer="KS")
    auditor = actors.auditor()
    seen, start = [], 0
    while start is not None:
        page = auditor.get(f"/ledger/entries?start={start}&limit=7").json
        seen += [e["seq"] for e in page["items"]]
        start = page["next_start"]
    assert seen == list(range(len(seen))), "auditors page through every entry, gapless"
    sme_entries = actors.sme("ent-ks-003").get("/ledger/entries?limit=1000").json["items"]
    assert sme_entries and all("ent-ks-003" in e["refs"].values() for e in sme_entries)
    officer_entries = actors.officer("SH").get("/ledger/entries?limit=1000").json["items"]
    assert officer_entries and all(e["region"] == "SH" for e in officer_entries)
    foreign = next(s for s in seen if s not in {e["seq"] for e in sme_entries})
    assert actors.sme("ent-ks-003").get(f"/ledger/entries/{foreign}").status_code == 404
    assert actors.sme("ent-ks-003").get("/ledger/export").status_code == 403
    assert actors.anonymous().get("/ledger/entries").status_code == 401


def test_export_is_canonical_lines_whose_root_is_the_checkpoints(app, actors):
    issue(actors)
    cp, _ = open_checkpoint(app, checkpoint(app))
    r = actors.auditor().get("/ledger/export")
    assert r.status_code == 200 and r.mimetype == "application/jsonl"
    lines = r.get_data().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert int(r.headers["Ledger-Tree-Size"]) == len(lines) >= cp.size
    for seq, line in enumerate(lines):
        assert parse_entry(line)["seq"] == seq
    assert merkle.root_from_leaves([merkle.leaf_hash(line) for line in lines[:cp.size]]) == cp.root_hash


def test_receipt_is_self_contained(app, actors):
    approved = issue(actors)
    seq = approved["ledger"]["seq"]
    # Until a checkpoint covering it is published, there is no receipt yet: ask again later.
    r = actors.sme("ent-ks-003").get(f"/ledger/receipts/{seq}")
    assert r.status_code == 409 and r.json["type"] == "urn:vouchers:problem:not_yet_published", r.json
    assert int(r.headers["Retry-After"]) >= 1
    publish(app)
    receipt = actors.sme("ent-ks-003").get(f"/ledger/receipts/{seq}").json
    assert receipt["leaf_index"] == seq and parse_entry(receipt["entry"].encode())["seq"] == seq
    cp, good = open_checkpoint(app, receipt["checkpoint"])
    assert cp.size == receipt["tree_size"] and [v.name for v in good] == [cp.origin]
    assert receipt["checkpoint"] == served_checkpoint(app)
    leaf = merkle.leaf_hash(receipt["entry"].encode())
    assert b64d(receipt["leaf_hash"]) == leaf
    assert merkle.verify_inclusion(seq, cp.size, leaf, [b64d(h) for h in receipt["inclusion_proof"]], cp.root_hash)
    assert receipt["tlog_proof"].startswith(f"c2sp.org/tlog-proof@v1\nindex {seq}\n")
    assert receipt["tlog_proof"].endswith("\n\n" + receipt["checkpoint"])
    # Another SME cannot fetch it; a provider the entry does not concern neither.
    assert actors.sme("ent-ks-001").get(f"/ledger/receipts/{seq}").status_code == 404
    assert actors.provider("prv-sh-001").get(f"/ledger/receipts/{seq}").status_code == 404


def test_publisher_refuses_to_sign_an_edited_entry_or_a_rewritten_tree(fresh_app, fresh_actors):
    published = checkpoint(fresh_app)
    approved = issue(fresh_actors)
    seq = approved["ledger"]["seq"]
    def edit_entry(old, new):
        with fresh_app.app_context(), Session(get_engine()) as session:
            row = session.get(LedgerEntry, seq)
            row.canonical = bytes(row.canonical).replace(old, new)
            session.add(row)
            session.commit()

    # An administrator edits an entry that no checkpoint covers yet.
    edit_entry(b"voucher.issued", b"voucher.issuee")
    with pytest.raises(LedgerInvariantError, match="refusing to sign"):
        publish(fresh_app)
    result = fresh_app.test_cli_runner().invoke(args=["checkpoint", "publish"])
    assert result.exit_code != 0 and "refusing to sign" in result.output, result.output
    # ... restores it, but rewrites a stored subtree hash (leaves 0-31) under
    # the last signed checkpoint: history no longer extends it.
    edit_entry(b"voucher.issuee", b"voucher.issued")
    with fresh_app.app_context(), Session(get_engine()) as session:
        node = session.get(LedgerNode, node_key((5, 0)))
        node.hash = bytes(32)
        session.add(node)
        session.commit()
    with pytest.raises(LedgerInvariantError, match="does not extend"):
        publish(fresh_app)
    assert served_checkpoint(fresh_app) == published, "readers still get the last honest checkpoint"


def test_publisher_refuses_a_ledger_whose_signed_tail_was_rolled_back(fresh_app, fresh_actors):
    issue(fresh_actors)
    signed_size = int(checkpoint(fresh_app).splitlines()[1])
    # An administrator rolls the last entry back, as a restore of an older backup would.
    with fresh_app.app_context(), Session(get_engine()) as session:
        last = signed_size - 1
        for table in ("ledger_posting", "ledger_ref"):
            session.connection().exec_driver_sql(f"DELETE FROM {table} WHERE seq = {last}")
        session.connection().exec_driver_sql(f"DELETE FROM ledger_entry WHERE seq = {last}")
        session.connection().exec_driver_sql(f"UPDATE ledger_head SET size = {last} WHERE id = 1")
        session.commit()
    with pytest.raises(LedgerInvariantError, match=f"fewer than the {signed_size}"):
        publish(fresh_app)
    # A proof up to the published size is a problem, never a bare 500.
    r = anonymous(fresh_app).get(f"/api/v1/ledger/proofs/consistency?first=1&second={signed_size}")
    assert r.status_code in (422, 500) and r.mimetype == "application/problem+json", r.get_data(as_text=True)


def test_key_rotation_keeps_old_signatures_valid(fresh_app, fresh_actors):
    issue(fresh_actors)
    before = checkpoint(fresh_app)
    old_keys = {k["key_id"] for k in keys(fresh_app)["keys"] if k["region"] == "KS"}
    result = fresh_app.test_cli_runner().invoke(args=["keys", "rotate", "--region", "KS"])
    assert result.exit_code == 0, result.output
    published = [k for k in keys(fresh_app)["keys"] if k["region"] == "KS"]
    assert len(published) == 2
    retired = next(k for k in published if k["key_id"] in old_keys)
    current = next(k for k in published if k["key_id"] not in old_keys)
    assert retired["valid_until"] == current["valid_from"] and current["valid_until"] is None
    approved = issue(fresh_actors)
    entry = fresh_actors.auditor().get(f"/ledger/entries/{approved['ledger']['seq']}").json
    assert entry["sig"]["key_id"] == current["key_id"]
    rotation = [e for e in fresh_actors.auditor().get("/ledger/entries?limit=1000").json["items"]
                if e["kind"] == "key.rotated"]
    assert rotation and rotation[0]["data"]["retired_key_id"] == retired["key_id"]
    # The retired key endorses its successor, so custody can be followed from the first keys alone.
    assert rotation[0]["data"]["endorsement"]["key_id"] == retired["key_id"]
    assert check_endorsement("KS", rotation[0]["data"], b64d(retired["public_key"]))
    # Checkpoints, before and after, are the log key's: a region's rotation changes who signs its entries.
    before_cp, _ = open_checkpoint(fresh_app, before)
    after_cp, good = open_checkpoint(fresh_app, checkpoint(fresh_app))
    assert after_cp.size > before_cp.size and [v.name for v in good] == [after_cp.origin]
    with fresh_app.app_context(), Session(get_engine()) as session:
        assert check_all(session) == []
    assert fresh_app.test_cli_runner().invoke(args=["keys", "rotate", "--region", "XX"]).exit_code != 0


def _resigned(app, entry: dict, data: dict) -> bytes:
    """The rotation entry with other data, signed again by its own (the new) key: what an operator holding
    the new key alone could write."""
    unsigned = Entry(seq=entry["seq"], ts=entry["ts"], kind=entry["kind"], region=entry["region"],
                     actor=entry["actor"], refs=entry["refs"], data=data,
                     postings=tuple(Posting(**p) for p in entry["postings"]))
    return sign_entry(unsigned, app.extensions["vouchers_keyring"].load(entry["sig"]["key_id"]))


def _as_upgraded(document: dict, before: str) -> dict:
    """The keys document as after the upgrade to witnessed checkpoints at `before` (a log key made then)."""
    if any(k.get("purpose") == "log" for k in document["keys"]):
        return document
    log_key = SigningKey.generate("log")
    raw = log_key.public_key_raw
    record = {"key_id": log_key.key_id, "region": None, "alg": "ed25519", "public_key": base64.b64encode(raw).decode(),
              "note_name": document["origin"], "note_key": verifier_key(document["origin"], raw),
              "valid_from": before, "valid_until": None, "purpose": "log"}
    return {**document, "keys": [*document["keys"], record]}


def test_a_rotation_without_the_retired_keys_endorsement_is_refused_by_the_offline_verifier(fresh_app,
                                                                                            fresh_actors):
    """The endorsement is what an auditor relies on, not the new key's own say-so: the service's rotation
    verifies; the same rotation endorsed by another key, or (after the upgrade) not at all, is refused."""
    upgraded_at = "2000-01-01T00:00:00.000000Z"
    assert fresh_app.test_cli_runner().invoke(args=["keys", "rotate", "--region", "KS"]).exit_code == 0
    entry = next(e for e in fresh_actors.auditor().get("/ledger/entries?limit=1000").json["items"]
                 if e["kind"] == "key.rotated")
    published = keys(fresh_app)
    seq, line = entry["seq"], canonical_bytes(entry)
    for document in (published, _as_upgraded(published, upgraded_at)):
        assert check_entry(line, seq, load_keys(document))["kind"] == "key.rotated"

    other_region = next(k["key_id"] for k in published["keys"] if k["region"] == "SH" and not k["valid_until"])
    by_another = dict(entry["data"], endorsement=endorse(
        "KS", entry["data"], entry["data"]["retired_key_id"],
        fresh_app.extensions["vouchers_keyring"].load(other_region).sign))
    unendorsed = {k: v for k, v in entry["data"].items() if k != "endorsement"}
    refusals = [(_resigned(fresh_app, entry, by_another), published, "is not a valid signature by the retired key"),
                (_resigned(fresh_app, entry, unendorsed), _as_upgraded(published, upgraded_at),
                 "is not endorsed by the retired key")]
    for resigned, document, why in refusals:
        with pytest.raises(VerificationError) as raised:
            check_entry(resigned, seq, load_keys(document))
        assert raised.value.seq == seq and why in raised.value.why
    # Before the upgrade, rotations were written without: those still verify (keys without a log key).
    legacy = {**published, "keys": [k for k in published["keys"] if k.get("purpose", "entry") == "entry"]}
    check_entry(_resigned(fresh_app, entry, unendorsed), seq, load_keys(legacy))


def test_business_timestamps_equal_their_entrys_ts(actors):
    """redeemed_at decides a redemption's settlement period and the entry's ts its
    reconciliation period: they are one instant, read under the ledger lock."""
    sme, officer = actors.sme("ent-ks-003"), actors.officer("KS")
    voucher = issue(actors)["voucher"]
    reserved = sme.post("/redemptions", json={"voucher_id": voucher["id"], "provider_id": "prv-sh-001",
                                              "catalog_code": "TS-01", "service_fee_fen": 2_000, "amount_fen": 1_000})
    rid = reserved.json["id"]
    add_evidence(actors.provider("prv-sh-001"), rid)
    actors.provider("prv-sh-001").post(f"/redemptions/{rid}/claim",
                                       json={"invoice_no": "T", "service_fee_fen": 2_000, "amount_fen": 1_000})
    sme.post(f"/redemptions/{rid}/confirm")
    approved = officer.post(f"/redemptions/{rid}/approve").json
    auditor = actors.auditor()
    assert approved["redeemed_at"] == auditor.get(f"/ledger/entries/{approved['ledger']['seq']}").json["ts"]
    assert reserved.json["reserved_at"] == auditor.get(f"/ledger/entries/{reserved.json['ledger']['seq']}").json["ts"]
