"""The published test vectors (schemas/vectors/ledger-vectors.json) and JSON
Schemas (schemas/*.schema.json): up to date, valid, verifiable twice over
(by the service's verifier and by the independent RFC 9162 verifier of
test_merkle.py), their wrong items rejected, and the schema true of the
entries the real service writes."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from sqlmodel import Session, select

from test_merkle import ref_leaf_hash, ref_mth, rfc_verify_consistency, rfc_verify_inclusion
from voucher_service.db import get_engine
from voucher_service.ledger import canonical_bytes, merkle, verify_entry_signature
from voucher_service.ledger.entry import parse_entry
from voucher_service.ledger.note import Checkpoint, NoteError, Verifier, open_note, verifier_key
from voucher_service.models import LedgerEntry
from helpers import add_evidence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCHEMAS = os.path.join(REPO, "schemas")
VECTORS_PATH = os.path.join(SCHEMAS, "vectors", "ledger-vectors.json")


def load_script():
    spec = importlib.util.spec_from_file_location("make_vectors", os.path.join(REPO, "scripts", "make_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_vectors = load_script()

with open(VECTORS_PATH, "rb") as _handle:
    COMMITTED = _handle.read()
VECTORS = json.loads(COMMITTED)


def b64d(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def load_schema(name: str) -> dict:
    with open(os.path.join(SCHEMAS, name), encoding="utf-8") as handle:
        return json.load(handle)


ENTRY_SCHEMA = load_schema("ledger-entry.schema.json")
LINE_SCHEMA = load_schema("export-line.schema.json")
REGISTRY = Registry().with_resources(
    [(schema["$id"], Resource.from_contents(schema)) for schema in (ENTRY_SCHEMA, LINE_SCHEMA)])
ENTRY_VALIDATOR = Draft202012Validator(ENTRY_SCHEMA, registry=REGISTRY)
LINE_VALIDATOR = Draft202012Validator(LINE_SCHEMA, registry=REGISTRY)


def schema_errors(entry) -> list[str]:
    errors = [e.message for e in ENTRY_VALIDATOR.iter_errors(entry)]
    assert bool(errors) == bool(list(LINE_VALIDATOR.iter_errors(entry))), "the two schemas disagree"
    return errors


LINES = [e["line"].encode("utf-8") for e in VECTORS["entries"]]
LEAVES = [b64d(e["leaf_hash"]) for e in VECTORS["entries"]]
N = len(LINES)
ROOTS = {r["tree_size"]: b64d(r["root_hash"]) for r in VECTORS["roots"]}
KEYS_BY_ID = {k["key_id"]: k for k in VECTORS["keys"]["keys"]}


# --- the file is what the script makes ----------------------------------------------

def test_committed_vectors_are_what_the_script_generates():
    generated = make_vectors.render(make_vectors.build_vectors())
    assert generated == COMMITTED, ("schemas/vectors/ledger-vectors.json is out of date: "
                                    "run .venv/bin/python scripts/make_vectors.py")


def test_generation_is_deterministic():
    assert make_vectors.render(make_vectors.build_vectors()) == make_vectors.render(make_vectors.build_vectors())


def test_script_check_mode(tmp_path):
    target = tmp_path / "vectors.json"
    assert make_vectors.main(["--output", str(target), "--check"]) == 1
    assert make_vectors.main(["--output", str(target)]) == 0
    assert target.read_bytes() == COMMITTED
    assert make_vectors.main(["--output", str(target), "--check"]) == 0


# --- JSON Schema -------------------------------------------------------------------------

def test_schemas_are_valid_draft_2020_12():
    Draft202012Validator.check_schema(ENTRY_SCHEMA)
    Draft202012Validator.check_schema(LINE_SCHEMA)
    assert "followed by a single newline" in LINE_SCHEMA["description"]
    assert "RFC 8785" in LINE_SCHEMA["description"]


def test_every_vector_entry_validates():
    assert N >= 12
    for line in LINES:
        assert schema_errors(json.loads(line)) == [], line


def _issued() -> dict:
    return json.loads(next(line for line in LINES if b'"voucher.issued"' in line))


@pytest.mark.parametrize("change", [
    pytest.param(lambda e: e.update(v=2), id="v is not 1"),
    pytest.param(lambda e: e.update(seq=-1), id="negative seq"),
    pytest.param(lambda e: e.update(seq="7"), id="string seq"),
    pytest.param(lambda e: e.update(ts="2026-03-02T08:00:00+08:00"), id="ts not in UTC Z"),
    pytest.param(lambda e: e.update(ts="2026-03-02 08:00:00Z"), id="ts without T"),
    pytest.param(lambda e: e.update(kind="VoucherIssued"), id="kind without a dot"),
    pytest.param(lambda e: e.update(kind="voucher.issued.again"), id="kind with two dots"),
    pytest.param(lambda e: e.update(region=""), id="empty region"),
    pytest.param(lambda e: e["refs"].update(voucher=7), id="non-string ref"),
    pytest.param(lambda e: e["postings"][0].update(amount=0), id="zero amount"),
    pytest.param(lambda e: e["postings"][0].update(amount=0.5), id="fractional amount"),
    pytest.param(lambda e: e["postings"][0].update(amount="100"), id="string amount"),
    pytest.param(lambda e: e["postings"][0].update(memo="x"), id="extra posting member"),
    pytest.param(lambda e: e["postings"][0].pop("source"), id="posting without source"),
    pytest.param(lambda e: e["data"].update(ratio=0.5), id="fraction in data"),
    pytest.param(lambda e: e["data"].update(nested={"deep": [1, 2.5]}), id="fraction deep in data"),
    pytest.param(lambda e: e.update(data=[]), id="data not an object"),
    pytest.param(lambda e: e["sig"].update(alg="rsa"), id="other alg"),
    pytest.param(lambda e: e["sig"].update(value="not base64"), id="sig value not base64"),
    pytest.param(lambda e: e["sig"].update(value=base64.b64encode(bytes(63)).decode()), id="short sig"),
    pytest.param(lambda e: e["sig"].pop("key_id"), id="sig without key_id"),
    pytest.param(lambda e: e.pop("sig"), id="no sig"),
    pytest.param(lambda e: e.pop("postings"), id="no postings"),
    pytest.param(lambda e: e.update(extra=True), id="additional property"),
])
def test_schema_rejects(change):
    entry = _issued()
    assert schema_errors(entry) == []
    change(entry)
    assert schema_errors(entry) != []


# --- lines, leaves and signatures -----------------------------------------------------------

def test_every_line_is_canonical_and_the_export_is_the_lines():
    assert VECTORS["export"].encode("utf-8") == b"".join(line + b"\n" for line in LINES)
    for seq, line in enumerate(LINES):
        entry = parse_entry(line)
        assert entry["seq"] == seq
        assert canonical_bytes(entry) == line == rfc8785.dumps(entry)
        assert b"\n" not in line and b"\r" not in line


def test_leaf_hashes():
    for item, line, leaf in zip(VECTORS["entries"], LINES, LEAVES):
        assert leaf == ref_leaf_hash(line) == merkle.leaf_hash(line) == hashlib.sha256(b"\x00" + line).digest()
        assert item["leaf_hash_hex"] == leaf.hex()


def independent_signature_check(entry: dict, public_key_raw: bytes) -> bool:
    """Ed25519 over rfc8785.dumps of the entry without sig: no service code."""
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(b64d(entry["sig"]["value"]), rfc8785.dumps(unsigned))
    except (InvalidSignature, ValueError):
        return False
    return True


def entry_is_acceptable(line: bytes) -> bool:
    """What an offline verifier checks of one line (without its seq and postings context)."""
    try:
        entry = parse_entry(line)
    except (ValueError, TypeError):
        return False
    key = KEYS_BY_ID.get(entry.get("sig", {}).get("key_id"))
    if key is None or key["region"] != entry.get("region") or schema_errors(entry):
        return False
    public = b64d(key["public_key"])
    ours = verify_entry_signature(entry, public)
    assert ours == independent_signature_check(entry, public)
    return ours


def test_every_signature_verifies_with_the_published_key_of_its_region():
    regions = set()
    for line in LINES:
        entry = json.loads(line)
        key = KEYS_BY_ID[entry["sig"]["key_id"]]
        assert key["region"] == entry["region"]
        assert key["valid_from"] <= entry["ts"] and key["valid_until"] is None
        assert entry_is_acceptable(line)
        regions.add(entry["region"])
    assert regions == {"SH", "KS", "WJ"}


def test_postings_balance():
    balances: dict[str, int] = {}
    for line in LINES:
        for p in json.loads(line)["postings"]:
            assert p["amount"] > 0
            balances[p["source"]] = balances.get(p["source"], 0) - p["amount"]
            balances[p["destination"]] = balances.get(p["destination"], 0) + p["amount"]
    assert sum(balances.values()) == 0
    assert all(v >= 0 for k, v in balances.items() if not k.startswith("treasury:"))


# --- roots and proofs --------------------------------------------------------------------------

def test_every_root():
    assert sorted(ROOTS) == list(range(0, N + 1))
    for size, root in ROOTS.items():
        assert root == ref_mth(LEAVES[:size]) == merkle.root_from_leaves(LEAVES[:size]), size
    assert {r["tree_size"]: bytes.fromhex(r["root_hash_hex"]) for r in VECTORS["roots"]} == ROOTS


def test_every_inclusion_proof_verifies_twice():
    proofs = VECTORS["inclusion_proofs"]
    assert sorted((p["index"], p["tree_size"]) for p in proofs) == sorted(
        (i, n) for n in range(1, N + 1) for i in range(n))
    for p in proofs:
        leaf, root, hashes = b64d(p["leaf_hash"]), b64d(p["root_hash"]), [b64d(h) for h in p["hashes"]]
        assert leaf == LEAVES[p["index"]] and root == ROOTS[p["tree_size"]]
        assert merkle.verify_inclusion(p["index"], p["tree_size"], leaf, hashes, root), p
        assert rfc_verify_inclusion(p["index"], p["tree_size"], leaf, hashes, root), p


def test_every_consistency_proof_verifies_twice():
    proofs = VECTORS["consistency_proofs"]
    assert sorted((p["first"], p["second"]) for p in proofs) == sorted(
        (m, n) for n in range(1, N + 1) for m in range(1, n + 1))
    for p in proofs:
        r1, r2, hashes = b64d(p["first_root"]), b64d(p["second_root"]), [b64d(h) for h in p["hashes"]]
        assert r1 == ROOTS[p["first"]] and r2 == ROOTS[p["second"]]
        assert merkle.verify_consistency(p["first"], p["second"], r1, r2, hashes), p
        assert rfc_verify_consistency(p["first"], p["second"], r1, r2, hashes), p


# --- keys and the checkpoint -------------------------------------------------------------------

def independent_note_check(note: str, key: dict) -> bool:
    """Verify one region's signature on a signed note from the C2SP text alone."""
    text, _, block = note.rpartition("\n\n")
    text += "\n"
    public = b64d(key["public_key"])
    key_hash = hashlib.sha256(key["note_name"].encode() + b"\n\x01" + public).digest()[:4]
    for line in block.rstrip("\n").split("\n"):
        name, _, blob = line.removeprefix("\u2014 ").partition(" ")
        raw = b64d(blob)
        if name == key["note_name"] and raw[:4] == key_hash:
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], text.encode())
            except InvalidSignature:
                return False
            return True
    return False


def test_published_keys():
    published = VECTORS["keys"]
    assert published["origin"] == VECTORS["origin"] == "vouchers.example/ledger"
    assert [k["region"] for k in published["keys"]] == ["KS", "SH", "WJ"]
    for key in published["keys"]:
        public = b64d(key["public_key"])
        assert len(public) == 32 and key["alg"] == "ed25519"
        assert key["note_name"] == f"{published['origin']}/{key['region']}"
        assert key["note_key"] == verifier_key(key["note_name"], public)
        assert Verifier.parse(key["note_key"]).public_key_raw == public
        assert key["key_id"].startswith(key["region"] + "-")


def test_checkpoint_is_cosigned_by_every_region():
    checkpoint = VECTORS["checkpoint"]
    verifiers = [Verifier.parse(k["note_key"]) for k in VECTORS["keys"]["keys"]]
    text, good = open_note(checkpoint["note"], verifiers)
    assert text == checkpoint["text"] and len(good) == 3
    parsed = Checkpoint.parse(text)
    assert (parsed.origin, parsed.size, parsed.root_hash) == (VECTORS["origin"], N, ROOTS[N])
    assert checkpoint["tree_size"] == N and b64d(checkpoint["root_hash"]) == ROOTS[N]
    for key in VECTORS["keys"]["keys"]:
        assert independent_note_check(checkpoint["note"], key), key["region"]
        assert open_note(checkpoint["note"], [Verifier.parse(key["note_key"])])[0] == text


# --- the wrong items -----------------------------------------------------------------------------

INVALID = VECTORS["invalid"]


def test_there_are_wrong_items_of_every_type():
    assert {item["type"] for item in INVALID} == {"entry_line", "inclusion_proof", "consistency_proof", "checkpoint"}
    assert all(item["valid"] is False and item["what"] and item["reason"] for item in INVALID)


@pytest.mark.parametrize("item", [i for i in INVALID if i["type"] == "entry_line"], ids=lambda i: i["what"])
def test_wrong_entry_lines_are_rejected(item):
    assert not entry_is_acceptable(item["line"].encode("utf-8"))
    entry = json.loads(item["line"])
    key = KEYS_BY_ID[entry["sig"]["key_id"]]
    # Even read leniently (re-canonicalised), the signature check alone
    # rejects all but the non-canonical line, whose point is its bytes.
    if "canonical" not in item["reason"]:
        assert not independent_signature_check(entry, b64d(key["public_key"]))
    else:
        with pytest.raises(ValueError):
            parse_entry(item["line"].encode("utf-8"))


@pytest.mark.parametrize("item", [i for i in INVALID if i["type"] == "inclusion_proof"], ids=lambda i: i["what"])
def test_wrong_inclusion_proofs_are_rejected(item):
    args = (item["index"], item["tree_size"], b64d(item["leaf_hash"]), [b64d(h) for h in item["hashes"]],
            b64d(item["root_hash"]))
    assert not merkle.verify_inclusion(*args)
    assert not rfc_verify_inclusion(*args)


@pytest.mark.parametrize("item", [i for i in INVALID if i["type"] == "consistency_proof"], ids=lambda i: i["what"])
def test_wrong_consistency_proofs_are_rejected(item):
    args = (item["first"], item["second"], b64d(item["first_root"]), b64d(item["second_root"]),
            [b64d(h) for h in item["hashes"]])
    assert not merkle.verify_consistency(*args)
    assert not rfc_verify_consistency(*args)


@pytest.mark.parametrize("item", [i for i in INVALID if i["type"] == "checkpoint"], ids=lambda i: i["what"])
def test_wrong_checkpoints_are_rejected(item):
    verifiers = [Verifier.parse(k["note_key"]) for k in VECTORS["keys"]["keys"]]
    with pytest.raises(NoteError):
        open_note(item["note"], verifiers)
    assert not any(independent_note_check(item["note"], key) for key in VECTORS["keys"]["keys"])


# --- the real service ----------------------------------------------------------------------------

def service_entries(app) -> list[bytes]:
    with app.app_context(), Session(get_engine()) as session:
        rows = session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)).all()
        return [bytes(row.canonical) for row in rows]


def assert_service_entries_valid(app) -> set[str]:
    lines = service_entries(app)
    assert lines, "the service wrote no entries"
    kinds = set()
    for seq, line in enumerate(lines):
        entry = json.loads(line)
        assert entry["seq"] == seq
        assert schema_errors(entry) == [], (entry["kind"], schema_errors(entry))
        assert canonical_bytes(entry) == line
        kinds.add(entry["kind"])
    return kinds


def test_entries_written_by_the_service_validate(app):
    kinds = assert_service_entries_valid(app)
    assert {"region.registered", "budget.funded", "provider.registered"} <= kinds


def test_entries_of_a_voucher_lifecycle_validate(app, actors):
    """Drive the acceptance path through the API, then validate every row."""
    def ok(response, status=200):
        assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
        return response.get_json()

    sme, ks, provider = actors.sme("ent-ks-003"), actors.officer("KS"), actors.provider("prv-sh-001")
    application = ok(sme.post("/applications", json={"amount_fen": 1_000_000, "purpose": "schema check"}), 201)
    voucher_id = ok(ks.post(f"/applications/{application['id']}/approve", json={}))["voucher_id"]
    redemption = ok(sme.post("/redemptions", json={"voucher_id": voucher_id, "provider_id": "prv-sh-001",
                                                   "catalog_code": "TS-01", "service_fee_fen": 600_000,
                                                   "amount_fen": 300_000}), 201)
    add_evidence(provider, redemption['id'])
    ok(provider.post(f"/redemptions/{redemption['id']}/claim",
                     json={"invoice_no": "INV-SCHEMA-1", "service_fee_fen": 500_000, "amount_fen": 250_000}))
    ok(sme.post(f"/redemptions/{redemption['id']}/confirm"))
    ok(ks.post(f"/redemptions/{redemption['id']}/approve"))
    ok(ks.post(f"/vouchers/{voucher_id}/void", json={"reason": "schema check"}))
    kinds = assert_service_entries_valid(app)
    assert {"application.submitted", "voucher.issued", "redemption.reserved", "redemption.claimed",
            "redemption.confirmed", "redemption.redeemed", "voucher.voided"} <= kinds


def test_vector_keys_have_the_shape_the_service_publishes(app):
    served = app.test_client().get("/api/v1/ledger/keys")
    assert served.status_code == 200
    body = served.get_json()
    assert set(body) == set(VECTORS["keys"])
    assert body["keys"] and all(set(k) == set(VECTORS["keys"]["keys"][0]) for k in body["keys"])
    for key in body["keys"]:
        assert key["note_key"] == verifier_key(key["note_name"], b64d(key["public_key"]))
