"""The console's verifier, voucher_service/console/static/console/verify.js, in
Chromium: every published vector gives its expected outcome; receipts,
entries and checkpoints made by the service verify, and each way of
tampering with them fails at the check it should, the Python verifier
agreeing each time; and Ed25519 is decided as libsodium decides it, not as
WebCrypto alone would.

The page is served from a local http.server (the static folder, the vectors
and harness.html) under the console's Content-Security-Policy, so a module
that needed inline script or eval would fail here as it would in the console.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_scalarmult_ed25519_base_noclamp
from sqlmodel import Session

from voucher_service.db import get_engine
from voucher_service.http.security import CONSOLE_CSP
from voucher_service.journal.publisher import Witness
from voucher_service.journal.tree import latest_checkpoint
from voucher_service.ledger import Entry, Posting, SigningKey, sign_entry
from voucher_service.ledger.canonical import canonical_bytes
from voucher_service.ledger.cosignature import Cosigner, add_signature_lines, cosign
from voucher_service.ledger.endorsement import endorse
from voucher_service.ledger.note import parse_note, verifier_key
from voucher_service.ledger.policy import Policy
from voucher_service.ledger.signing import verify_detached
from voucher_service.ledger.verify import (VerificationError, check_entry, check_signers, load_keys, open_checkpoint,
                                          verify_receipt)
from helpers import ok, publish

REPO = Path(__file__).resolve().parents[2]
ROUTES = {"/static/": REPO / "voucher_service" / "console" / "static", "/vectors/": REPO / "schemas" / "vectors",
          "/harness/": REPO / "tests" / "browser"}
VECTORS = {name: json.loads((REPO / "schemas" / "vectors" / f"{name}.json").read_text(encoding="utf-8"))
           for name in ("ledger-vectors", "policy-vectors", "cosignature-vectors", "c2sp-examples")}
LEDGER, POLICY, COSIGNATURE, C2SP = (VECTORS[n] for n in VECTORS)


class _Files(SimpleHTTPRequestHandler):
    extensions_map = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".json": "application/json"}

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        for prefix, folder in ROUTES.items():
            if path.startswith(prefix) and ".." not in path:
                return str(folder / path[len(prefix):])
        return str(REPO / "nowhere")

    def end_headers(self):
        self.send_header("Content-Security-Policy", CONSOLE_CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


# Runs calls of one function of the module in order; arguments made by raw() (also inside lists) arrive as bytes.
CALLS = """async ([name, calls]) => {
  const v = window.verify, out = [];
  const arrive = (a) => (Array.isArray(a) ? a.map(arrive) : a !== null && typeof a === "object" && "raw" in a
    ? v.base64ToBytes(a.raw) : a);
  for (const args of calls) out.push(await v[name](...args.map(arrive)));
  return out;
}"""


def raw(data: bytes | str) -> dict:
    """An argument that reaches the page as a Uint8Array (bytes, or their base64)."""
    return {"raw": data if isinstance(data, str) else base64.b64encode(data).decode()}


@pytest.fixture
def js(page):
    """js(name, *args): await window.verify[name](...args) in the harness page; js.each(name, [args, ...])
    makes many calls in one round trip."""
    if not page.url.endswith("/harness/harness.html"):
        page.goto("/harness/harness.html")
        page.wait_for_function("document.documentElement.dataset.ready === 'yes'")

    def call(name, *args):
        return page.evaluate(CALLS, [name, [list(args)]])[0]

    call.each = lambda name, calls: page.evaluate(CALLS, [name, [list(args) for args in calls]])
    call.page = page
    return call


def failed_checks(result: dict) -> list[str]:
    return [check["name"] for check in result["checks"] if not check["ok"]]


# --- the vectors --------------------------------------------------------------------------------------

LEDGER_RUN = """async () => {
  const v = window.verify, b = v.base64ToBytes, V = await (await fetch("/vectors/ledger-vectors.json")).json();
  const inclusion = (p) => v.verifyInclusion(b(p.leaf_hash), p.index, p.tree_size, p.hashes.map(b), b(p.root_hash));
  const consistency = (p) => v.verifyConsistency(p.first, p.second, b(p.first_root), b(p.second_root),
    p.hashes.map(b));
  const failures = (r) => r.checks.filter((c) => !c.ok).map((c) => c.detail).join("; ");
  const out = {entries: [], export: [], roots: [], inclusion: [], consistency: [], invalid: []};
  for (const e of V.entries) {
    const r = await v.verifyEntrySignature(e.line, V.keys, e.seq);
    out.entries.push({ok: r.ok, leaf: v.bytesToBase64(await v.leafHash(e.line))});
  }
  for (const [seq, line] of V.export.split("\\n").slice(0, -1).entries()) {
    out.export.push((await v.verifyEntrySignature(line + "\\n", V.keys, seq)).ok);
  }
  for (const r of V.roots) {
    out.roots.push(v.bytesToBase64(await v.merkleRoot(V.entries.slice(0, r.tree_size).map((e) => b(e.leaf_hash)))));
  }
  for (const p of V.inclusion_proofs) out.inclusion.push(await inclusion(p));
  for (const p of V.consistency_proofs) out.consistency.push(await consistency(p));
  for (const i of V.invalid) {
    if (i.type === "entry_line") {
      const r = await v.verifyEntrySignature(i.line, V.keys);
      out.invalid.push([r.ok, r.detail]);
    }
    if (i.type === "inclusion_proof") out.invalid.push([await inclusion(i), ""]);
    if (i.type === "consistency_proof") out.invalid.push([await consistency(i), ""]);
    if (i.type === "checkpoint") {
      const r = await v.verifyCheckpoint(i.note, V.keys);
      out.invalid.push([r.ok, failures(r)]);
    }
  }
  out.checkpoint = await v.verifyCheckpoint(V.checkpoint.note, V.keys, []);
  return out;
}"""


def test_ledger_vectors(js):
    got = js.page.evaluate(LEDGER_RUN)
    for entry, result in zip(LEDGER["entries"], got["entries"], strict=True):
        assert result == {"ok": True, "leaf": entry["leaf_hash"]}, entry["seq"]
    assert got["export"] == [True] * len(LEDGER["entries"])
    assert got["roots"] == [r["root_hash"] for r in LEDGER["roots"]]
    assert got["inclusion"] == [True] * len(LEDGER["inclusion_proofs"])
    assert got["consistency"] == [True] * len(LEDGER["consistency_proofs"])
    words = {"signature does not verify with the published key": "does not verify",
             "signature does not verify with the key named by sig.key_id": "does not verify",
             "line is not the RFC 8785 canonical form of itself": "not canonical"}
    for vector, (valid, detail) in zip(LEDGER["invalid"], got["invalid"], strict=True):
        assert valid is False, vector["what"]
        assert words.get(vector["reason"], "") in detail, (vector["what"], detail)
    checkpoint = got["checkpoint"]
    assert checkpoint["ok"] and checkpoint["size"] == LEDGER["checkpoint"]["tree_size"]
    assert checkpoint["rootB64"] == LEDGER["checkpoint"]["root_hash"] and checkpoint["regions"] == ["KS", "SH", "WJ"]
    assert [c["name"] for c in checkpoint["checks"]] == ["keys", "checkpoint_format", "region_signatures"]


def newest_ts(size: int) -> str:
    return json.loads(LEDGER["entries"][size - 1]["line"])["ts"]


@pytest.mark.parametrize("item", POLICY["keys_verdicts"], ids=lambda item: item["what"][:50])
def test_the_log_key_rule_and_the_legacy_every_region_rule(js, item):
    result = js("verifyCheckpoint", item["note"], POLICY["keys"], [], {"lastTs": newest_ts(item["tree_size"])})
    assert result["ok"] is item["valid"], result["checks"]
    [signers] = [c for c in result["checks"] if c["name"] in ("log_signature", "region_signatures")]
    if item["valid"]:
        assert signers["name"] == {"log": "log_signature", "regions": "region_signatures"}[item["signed_by"]]
    else:
        assert signers["name"] == "log_signature" and item["reason"] in signers["detail"]


@pytest.mark.parametrize("verdict", POLICY["policy_verdicts"], ids=lambda v: f"{v['policy']}/{v['checkpoint']}")
def test_the_policy_vectors_with_their_witnesses(js, verdict):
    """A policy's witnesses given as the witness list: what cosigned is what the policy counts, and each
    refusal is reported at its check (the quorum, which the list has not, aside)."""
    policy = Policy.parse(POLICY["policies"][verdict["policy"]])
    witnesses = [{"name": w.name, "vkey": w.cosigner.vkey} for w in policy.witnesses]
    note = POLICY["checkpoints"][verdict["checkpoint"]]
    result = js("verifyCheckpoint", note, POLICY["keys"], witnesses)
    expected_failure = {"invalid cosignature": ["cosignature:ks"], "invalid log signature": ["log_signature"],
                        "no log signature": ["log_signature"], "origin is not the log key's": ["checkpoint_format"],
                        "quorum not met": []}
    assert failed_checks(result) == ([] if verdict["valid"] else expected_failure[verdict["reason"]])
    if verdict["valid"] or verdict["reason"] == "quorum not met":
        assert result["ok"] and result["cosigned"] == policy.cosigned(note)
    if verdict["valid"]:
        assert result["cosigned"] == verdict["cosigned"]


def test_cosignature_vectors(js):
    witness = COSIGNATURE["witness"]
    first = COSIGNATURE["cosignatures"][0]
    log_signed = first["cosigned_note"].replace(first["signature_line"], "")
    cases = [(v["cosigned_note"], True, v) for v in COSIGNATURE["cosignatures"]]
    cases += [(log_signed + v["signature_line"], False, v) for v in COSIGNATURE["invalid"]]
    for note, valid, vector in cases:
        result = js("verifyCheckpoint", note, POLICY["keys"], [witness["vkey"]])
        check = f"cosignature:{witness['name']}"
        assert failed_checks(result) == ([] if valid else [check]), vector.get("what", vector.get("timestamp"))
        if valid:
            when = datetime.fromtimestamp(vector["timestamp"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            assert result["cosigned"] == [witness["name"]] and when in result["checks"][-1]["detail"]
            assert js("cosignatureMessage", vector["checkpoint_text"], vector["timestamp"]) == vector["signed_message"]
    assert js("parseVkey", witness["vkey"], 4) == {
        "ok": True, "name": witness["name"], "keyHashHex": witness["key_id_hex"], "publicKeyB64": witness["public_key"]}
    roots = {r["tree_size"]: r["root_hash"] for r in LEDGER["roots"]}
    for request in COSIGNATURE["add_checkpoint_requests"]:
        result = js("verifyCheckpoint", request["checkpoint_note"], POLICY["keys"], [])
        assert result["ok"] and failed_checks(result) == [] and result["logKey"] == POLICY["log"]["key_id"]
        if request["old_size"]:  # the proof the witness is sent shows the new tree extends the one it cosigned
            old = request["old_size"]
            assert js("verifyConsistency", old, result["size"], raw(roots[old]), raw(result["rootB64"]),
                      [raw(h) for h in request["proof"]])


def test_the_c2sp_specs_own_examples(js):
    """The specs give no keys, so their signatures cannot be verified: their notes, key IDs, timestamps and
    signed messages can be read as the specs say."""
    spec = C2SP["tlog_cosignature"]
    parsed = js("parseNote", spec["cosigned_note"])
    assert parsed["ok"] and parsed["text"] == spec["checkpoint_text"] and len(parsed["signatures"]) == 2
    line = parsed["signatures"][1]
    assert (line["name"], line["keyHashHex"]) == (spec["witness_name"], spec["key_id_hex"])
    blob = base64.b64decode(line["signatureB64"])
    assert len(blob) == 8 + 64 and struct.unpack(">Q", blob[:8])[0] == spec["timestamp"]
    assert js("cosignatureMessage", spec["checkpoint_text"], spec["timestamp"]) == spec["signed_message"]
    assert js("cosignatureMessage", spec["checkpoint_text"].rstrip("\n"), spec["timestamp"]) is None
    witness = C2SP["tlog_witness"]
    note = witness["add_checkpoint_body"].split("\n\n", 1)[1]
    parsed = js("parseNote", note)
    assert parsed["ok"] and parsed["text"] == witness["checkpoint_text"]
    assert len(parsed["signatures"]) == witness["signatures"]
    for proof_hash in witness["proof"]:
        assert len(js("base64ToBytes", proof_hash)) == 32


# --- what the service serves --------------------------------------------------------------------------

@dataclass
class Served:
    keys: str                 # GET /ledger/keys, as served
    witnesses: list           # GET /ledger/witnesses' witnesses
    policy: str               # the same witnesses as a policy with `quorum none`, for the Python verifier
    checkpoint: str
    export: str
    receipts: dict            # name -> GET /ledger/receipts/{seq}, as served
    seqs: dict


def issue(actors, amount_fen: int = 300_000) -> int:
    application = ok(actors.sme("ent-ks-003").post("/applications", json={"amount_fen": amount_fen,
                                                                        "purpose": "browser verifier"}), 201)
    return ok(actors.officer("KS").post(f"/applications/{application['id']}/approve", json={}))["ledger"]["seq"]


@pytest.fixture(scope="module")
def served(app, actors) -> Served:
    """A voucher issued in KS, KS's key rotated, another voucher, one checkpoint signed by the log key and
    cosigned by witness ks (witness sh is listed but has not cosigned), and the documents as served."""
    first = issue(actors)
    rotated = app.test_cli_runner().invoke(args=["keys", "rotate", "--region", "KS"])
    assert rotated.exit_code == 0, rotated.output
    after = issue(actors)
    publish(app, witnesses=[])
    keys = {"ks": SigningKey.generate("ks"), "sh": SigningKey.generate("sh")}
    cosigners = {name: Cosigner(f"witness.test/{name}", key.public_key_raw) for name, key in keys.items()}
    with app.app_context(), Session(get_engine()) as session:  # what the publisher stores for a cosignature
        row = latest_checkpoint(session)
        line = cosign(parse_note(row.note)[0], cosigners["ks"].name, keys["ks"].sign, keys["ks"].public_key_raw,
                      int(time.time()))
        row.note = add_signature_lines(row.note, line)
        session.add(row)
        session.commit()
    app.extensions["vouchers_witnesses"] = [Witness(n, c, "http://127.0.0.1:9") for n, c in cosigners.items()]
    client, auditor = app.test_client(), actors.auditor()
    entries = ok(auditor.get("/ledger/entries?limit=1000"))["items"]
    seqs = {"issued": first, "rotation": next(e["seq"] for e in entries if e["kind"] == "key.rotated"),
            "issued after the rotation": after}
    receipts = {}
    for name, seq in seqs.items():
        reply = auditor.get(f"/ledger/receipts/{seq}")
        assert reply.status_code == 200, reply.get_data(as_text=True)
        receipts[name] = reply.get_data(as_text=True)
    keys_text = client.get("/api/v1/ledger/keys").get_data(as_text=True)
    [log_key] = [k for k in json.loads(keys_text)["keys"] if k["purpose"] == "log"]
    policy = "".join([f"log {log_key['note_key']}\n", *(f"witness {n} {c.vkey}\n" for n, c in cosigners.items()),
                      "quorum none\n"])
    return Served(keys_text, ok(client.get("/api/v1/ledger/witnesses"))["witnesses"], policy,
                  client.get("/api/v1/ledger/checkpoint").get_data(as_text=True),
                  auditor.get("/ledger/export").get_data(as_text=True), receipts, seqs)


def python_verdict(served: Served, receipt, keys=None, policy=None):
    """None if the Python verifier accepts the receipt, else its VerificationError."""
    try:
        verify_receipt(receipt, load_keys(json.loads(served.keys) if keys is None else keys),
                       Policy.parse(served.policy if policy is None else policy))
    except VerificationError as exc:
        return exc
    return None


def test_the_services_receipts_entries_and_checkpoint_verify(js, served):
    for name, text in served.receipts.items():
        result = js("verifyReceipt", text, served.keys, served.witnesses)
        assert result["ok"], (name, result["checks"])
        assert [c["name"] for c in result["checks"]] == [
            "keys", "witness_keys", "receipt_format", "entry_signature", "leaf_hash", "checkpoint_format",
            "log_signature", "inclusion", "cosignature:ks", "tlog_proof"]
        assert (result["seq"], result["cosigned"], result["absent"]) == (served.seqs[name], ["ks"], ["sh"])
        assert python_verdict(served, json.loads(text)) is None
        # As the console may hand it over: parsed already.
        assert js("verifyReceipt", json.loads(text), json.loads(served.keys), served.witnesses)["ok"]
    lines = served.export.split("\n")[:-1]
    verdicts = js.each("verifyEntrySignature", [(line, served.keys, seq) for seq, line in enumerate(lines)])
    assert [v["ok"] for v in verdicts] == [True] * len(lines)
    keys = load_keys(json.loads(served.keys))
    for seq, line in enumerate(lines):
        check_entry(line.encode("utf-8"), seq, keys)
    result = js("verifyCheckpoint", served.checkpoint, served.keys, served.witnesses)
    assert result["ok"] and result["size"] == len(lines) and result["cosigned"] == ["ks"], result["checks"]
    open_checkpoint(served.checkpoint, keys)
    assert Policy.parse(served.policy).cosigned(served.checkpoint) == ["ks"]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _edit_note(receipt: dict, edit) -> dict:
    """The receipt with its checkpoint edited, in `checkpoint` and in the tlog_proof alike."""
    head = receipt["tlog_proof"].split("\n\n", 1)[0]
    note = edit(receipt["checkpoint"])
    return dict(receipt, checkpoint=note, tlog_proof=f"{head}\n\n{note}")


def _flip_signature_line(name_prefix: str, at: int):
    def edit(note: str) -> str:
        lines = note.split("\n")
        for number, line in enumerate(lines):
            if line.startswith(f"\u2014 {name_prefix}"):
                name, blob = line.rsplit(" ", 1)
                lines[number] = f"{name} {base64.b64encode(_flip(base64.b64decode(blob), at)).decode()}"
                return "\n".join(lines)
        raise AssertionError(f"no signature line by {name_prefix}")
    return edit


def _flip_root(note: str) -> str:
    lines = note.split("\n")
    lines[2] = base64.b64encode(_flip(base64.b64decode(lines[2]), 0)).decode()
    return "\n".join(lines)


def _flip_proof_hash(receipt: dict) -> dict:
    flipped = base64.b64encode(_flip(base64.b64decode(receipt["inclusion_proof"][0]), 5)).decode()
    return dict(receipt, inclusion_proof=[flipped, *receipt["inclusion_proof"][1:]],
                tlog_proof=receipt["tlog_proof"].replace(receipt["inclusion_proof"][0], flipped, 1))


def _raise_amount(receipt: dict) -> dict:
    entry = json.loads(receipt["entry"])
    entry["postings"][0]["amount"] += 1
    return dict(receipt, entry=canonical_bytes(entry).decode("utf-8"))


def _other_key(keys: dict, purpose: str, seq_key_id: str | None = None) -> dict:
    """The keys document with one key (the log key, or the key `seq_key_id`) replaced by a fresh key."""
    keys = copy.deepcopy(keys)
    record = next(k for k in keys["keys"] if (k["purpose"] == "log" if purpose == "log" else k["key_id"] == seq_key_id))
    public = SigningKey.generate("other").public_key_raw
    record["public_key"] = base64.b64encode(public).decode()
    record["note_key"] = verifier_key(record["note_name"], public)
    return keys


def _tlog_index(receipt: dict) -> dict:
    index = receipt["leaf_index"]
    return dict(receipt, tlog_proof=receipt["tlog_proof"].replace(f"\nindex {index}\n", f"\nindex {index + 1}\n", 1))


def _retire(keys: dict, key_id: str | None) -> dict:
    """The keys document with one key (the log key if `key_id` is None) published as retired when it was
    made: never in force."""
    keys = copy.deepcopy(keys)
    record = next(k for k in keys["keys"] if (k["purpose"] == "log" if key_id is None else k["key_id"] == key_id))
    record["valid_until"] = record["valid_from"]
    return keys


def _second_bad_cosignature(note: str) -> str:
    """The note with a second line by witness ks, one byte of it wrong, after its good one."""
    [line] = [line for line in note.split("\n") if line.startswith("\u2014 witness.test/ks ")]
    return note + _flip_signature_line("witness.test/ks ", 40)(line + "\n")


def _tlog_checkpoint_other(receipt: dict) -> dict:
    head, note = receipt["tlog_proof"].split("\n\n", 1)
    return dict(receipt, tlog_proof=f"{head}\n\n" + "".join(line for line in note.splitlines(keepends=True)
                                                               if not line.startswith("\u2014 witness.")))


def _witness_key_replaced(witnesses: list) -> list:
    public = SigningKey.generate("w").public_key_raw
    return [dict(w, vkey=Cosigner(Cosigner.parse(w["vkey"]).name, public).vkey) if w["name"] == "ks" else w
            for w in witnesses]


# name: (tamper(receipt, keys, witnesses) -> (receipt, keys, witnesses), the checks that fail (the first is the
# one named by the Python verifier's failure), what the Python verifier says)
TAMPERING = {
    "entry amount raised": (lambda r, k, w: (_raise_amount(r), k, w), ["entry_signature", "leaf_hash", "inclusion"],
                            "does not verify: the entry was changed"),
    "proof hash flipped": (lambda r, k, w: (_flip_proof_hash(r), k, w), ["inclusion"],
                           "the inclusion proof does not lead"),
    "checkpoint root edited": (lambda r, k, w: (_edit_note(r, _flip_root), k, w),
                               ["log_signature", "inclusion", "cosignature:ks"], "does not verify"),
    "log signature byte flipped": (lambda r, k, w: (_edit_note(r, _flip_signature_line(k["origin"] + " ", 20)), k, w),
                                   ["log_signature"], "does not verify"),
    "cosignature byte flipped": (lambda r, k, w: (_edit_note(r, _flip_signature_line("witness.test/ks ", 30)), k, w),
                                 ["cosignature:ks"], "invalid cosignature by witness witness.test/ks"),
    "another key for the entry's region key": (
        lambda r, k, w: (r, _other_key(k, "entry", json.loads(r["entry"])["sig"]["key_id"]), w), ["entry_signature"],
        "does not verify: the entry was changed or signed by another key"),
    "another log key": (lambda r, k, w: (r, _other_key(k, "log"), w), ["log_signature"], "signed by no published key"),
    "leaf hash edited": (lambda r, k, w: (dict(r, leaf_hash=base64.b64encode(b"\0" * 32).decode()), k, w),
                         ["leaf_hash"], "is not the hash of the entry"),
    "tree size raised": (lambda r, k, w: (dict(r, tree_size=r["tree_size"] + 1), k, w), ["inclusion"],
                         "is not the checkpoint's size"),
    "tlog_proof for another index": (lambda r, k, w: (_tlog_index(r), k, w), ["tlog_proof"], "tlog_proof is for index"),
    "inclusion proof missing": (lambda r, k, w: ({n: v for n, v in r.items() if n != "inclusion_proof"}, k, w),
                                ["receipt_format"], "inclusion_proof is missing"),
    "a second, wrong cosignature line by ks": (lambda r, k, w: (_edit_note(r, _second_bad_cosignature), k, w),
                                               ["cosignature:ks"], "invalid cosignature by witness witness.test/ks"),
    "tlog_proof with another checkpoint": (lambda r, k, w: (_tlog_checkpoint_other(r), k, w), ["tlog_proof"],
                                           "tlog_proof's checkpoint is not the receipt's checkpoint"),
    "the entry's key published as never in force": (
        lambda r, k, w: (r, _retire(k, json.loads(r["entry"])["sig"]["key_id"]), w), ["entry_signature"],
        "valid from"),
    "the log key published as retired before the entry": (
        lambda r, k, w: (r, _retire(k, None), w), ["log_signature"], "retired at"),
    # A witness known by another key has not cosigned, as far as this list can tell: nothing fails.
    "witness ks listed with another key": (lambda r, k, w: (r, k, _witness_key_replaced(w)), [], None),
}


@pytest.mark.parametrize("case", TAMPERING, ids=str)
def test_a_tampered_receipt_fails_at_the_right_check(js, served, case):
    tamper, expected, python_says = TAMPERING[case]
    receipt, keys, witnesses = tamper(json.loads(served.receipts["issued"]), json.loads(served.keys),
                                      copy.deepcopy(served.witnesses))
    result = js("verifyReceipt", json.dumps(receipt), json.dumps(keys), witnesses)
    assert failed_checks(result) == expected, result["checks"]
    assert result["ok"] is (not expected)
    policy = "".join([line for line in served.policy.splitlines(keepends=True) if not line.startswith("witness")]
                     + [f"witness {w['name']} {w['vkey']}\n" for w in witnesses])
    verdict = python_verdict(served, receipt, keys, policy)
    assert (verdict is None) is (python_says is None) and (python_says is None or python_says in str(verdict)), verdict
    if case == "witness ks listed with another key":
        assert result["absent"] == ["ks", "sh"]


def _resigned(app, entry: dict, data: dict, key_id: str | None = None) -> str:
    """The entry with `data`, signed again by its own key (or `key_id`) from the service's keyring."""
    unsigned = Entry(seq=entry["seq"], ts=entry["ts"], kind=entry["kind"], region=entry["region"], actor=entry["actor"],
                     refs=entry["refs"], data=data, postings=tuple(Posting(**p) for p in entry["postings"]))
    key = app.extensions["vouchers_keyring"].load(key_id or entry["sig"]["key_id"])
    return sign_entry(unsigned, key).decode("utf-8")


def test_an_entry_is_signed_by_a_key_of_its_own_region(js, served, app):
    entry = json.loads(json.loads(served.receipts["issued after the rotation"])["entry"])
    keys_doc = json.loads(served.keys)
    other = next(k["key_id"] for k in keys_doc["keys"] if k["region"] == "SH" and not k["valid_until"])
    line = _resigned(app, entry, entry["data"], other)
    why = f"recorded for region KS but signed by key {other} of region SH"
    result = js("verifyEntrySignature", line, served.keys, entry["seq"])
    assert not result["ok"] and why in result["detail"], result
    with pytest.raises(VerificationError, match=why):
        check_entry(line.encode("utf-8"), entry["seq"], load_keys(keys_doc))


def test_a_rotation_needs_the_retired_keys_endorsement(js, served, app):
    """Re-signed by the new key (what its holder alone could write): endorsed by another key, or not at all
    after the upgrade to witnessed checkpoints, the rotation is refused by both verifiers."""
    rotation = json.loads(json.loads(served.receipts["rotation"])["entry"])
    keys_doc = json.loads(served.keys)
    other = next(k["key_id"] for k in keys_doc["keys"] if k["region"] == "SH" and not k["valid_until"])
    by_another = dict(rotation["data"], endorsement=endorse("KS", rotation["data"], rotation["data"]["retired_key_id"],
                                                            app.extensions["vouchers_keyring"].load(other).sign))
    unendorsed = {k: v for k, v in rotation["data"].items() if k != "endorsement"}
    for data, why in ((by_another, "is not a valid signature by the retired key"),
                      (unendorsed, "is not endorsed by the retired key")):
        line = _resigned(app, rotation, data)
        result = js("verifyEntrySignature", line, served.keys, rotation["seq"])
        assert not result["ok"] and why in result["detail"], result
        with pytest.raises(VerificationError, match=why):
            check_entry(line.encode("utf-8"), rotation["seq"], load_keys(keys_doc))
    line = canonical_bytes(rotation).decode()
    assert js("verifyEntrySignature", line, served.keys, rotation["seq"])["ok"]
    # The keys document must show the retired key retired by this rotation, at its valid_from.
    retired = next(k for k in keys_doc["keys"] if k["key_id"] == rotation["data"]["retired_key_id"])
    for valid_until, why in ((None, "but this rotation retired it at"),
                             (retired["valid_from"], "not by this rotation")):
        document = copy.deepcopy(keys_doc)
        next(k for k in document["keys"] if k["key_id"] == retired["key_id"])["valid_until"] = valid_until
        result = js("verifyEntrySignature", line, document, rotation["seq"])
        assert not result["ok"] and why in result["detail"], result
        with pytest.raises(VerificationError, match=why):
            check_entry(line.encode("utf-8"), rotation["seq"], load_keys(document))


def test_a_legacy_checkpoint_needs_every_regions_signature(js):
    """Without a log key (ledger-vectors' keys), each region valid at the newest entry signs, or none counts."""
    keys, note, size = load_keys(LEDGER["keys"]), LEDGER["checkpoint"]["note"], LEDGER["checkpoint"]["tree_size"]
    without_wj = "".join(line for line in note.splitlines(keepends=True) if "/WJ " not in line)
    for text, last_ts in ((note, None), (note, newest_ts(size)), (without_wj, None), (without_wj, newest_ts(size))):
        result = js("verifyCheckpoint", text, LEDGER["keys"], [], {"lastTs": last_ts})
        checkpoint, signers = open_checkpoint(text, keys)
        try:
            check_signers(signers, keys, last_ts=last_ts, require_active=True)
            python_ok = True
        except VerificationError as exc:
            python_ok = False
            assert "not cosigned by region WJ" in str(exc)
        assert result["ok"] is python_ok is (text == note), result["checks"]
        assert failed_checks(result) == ([] if python_ok else ["region_signatures"])


def test_the_canonical_form_is_pythons_on_awkward_values(js):
    """Entries signed as the service signs them, with values where JSON encoders differ (escapes, U+2028,
    characters outside the BMP, whose UTF-16 order is not their code point order), verify; each other
    spelling of the same entry is refused, by both verifiers."""
    key = SigningKey.generate("KS")
    keys = {"origin": "vouchers.test/browser", "keys": [{
        "key_id": key.key_id, "purpose": "entry", "region": "KS", "alg": "ed25519",
        "public_key": base64.b64encode(key.public_key_raw).decode(), "note_name": "vouchers.test/browser/KS",
        "note_key": verifier_key("vouchers.test/browser/KS", key.public_key_raw),
        "valid_from": "2026-01-01T00:00:00.000000Z", "valid_until": None}]}
    data = {"\ue000": "private use", "\U0001f600": "astral key", "": [], "a/b": "x/y", "quote": "\"\\",
            "controls": "\x00\x08\t\n\x0b\x0c\r\x1f\x7f", "separators": "\u2028\u2029", "zh": "上海市",
            "é": "\u00e9\u0301", "numbers": [0, -1, 2**53 - 1, -(2**53 - 1)], "literals": [True, False, None],
            "nested": {"b": {"a": [{}]}}}
    entry = Entry(seq=0, ts="2026-03-02T08:00:00.000000Z", kind="test.awkward", region="KS", actor="system:test",
                  refs={"voucher": "v-1"}, postings=(Posting("budget:KS", "voucher:v-1", 1),), data=data)
    line = sign_entry(entry, key).decode("utf-8")
    respelt = [line.replace("上海市", "\\u4e0a海市"), line.replace('"a/b"', '"a\\/b"'), line.replace(":", ": ", 1),
               line.replace("\U0001f600", "\\ud83d\\ude00"), line.replace('"literals":[true', '"literals":[ true'),
               line.replace("[0,-1,", "[0.0,-1,"), line.replace("[0,-1,", "[-0,-1,"),
               line.replace("[0,-1,", "[0,-1e0,"),
               line.replace('"\ue000":"private use",', "", 1).replace('"a/b"', '"\ue000":"private use","a/b"'),
               line.replace("\\u0000", "\\u0000".upper()), line + " ", " " + line,
               line.replace('"refs":{"voucher":"v-1"}', '"refs":{"voucher":"v-1","voucher":"v-1"}')]
    assert line not in respelt
    got = js.each("verifyEntrySignature", [(text, keys, 0) for text in (line, *respelt)])
    assert [g["ok"] for g in got] == [True] + [False] * len(respelt)
    check_entry(line.encode("utf-8"), 0, load_keys(keys))
    for text in respelt:
        with pytest.raises(VerificationError):
            check_entry(text.encode("utf-8"), 0, load_keys(keys))


# --- Ed25519 as libsodium decides ---------------------------------------------------------------------

P, L = 2**255 - 19, 2**252 + 27742317777372353535851937790883648493
Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022


def test_public_keys_are_accepted_exactly_as_libsodium_accepts_them(js):
    generator = random.Random(20260302)
    candidates = [SigningKey.generate("k").public_key_raw for _ in range(4)]
    candidates += [generator.randbytes(32) for _ in range(40)]  # off the curve, or mostly of mixed order
    small = [y.to_bytes(32, "little") for y in (0, 1, Y_ORDER_8, P - Y_ORDER_8, P - 1, P, P + 1)]
    candidates += small + [s[:31] + bytes([s[31] | 0x80]) for s in small]
    candidates += [(P + n).to_bytes(32, "little") for n in (2, 3, 4, 9)]  # y >= p: not canonical
    expected = [bool(crypto_core_ed25519_is_valid_point(c)) for c in candidates]
    assert 4 <= sum(expected) < len(candidates) - 20
    assert js.each("publicKeyAccepted", [(raw(c),) for c in candidates]) == expected
    # A keys document with such a key is refused whole, by both.
    mixed = next(c for c, valid in zip(candidates, expected) if not valid and c not in small and len(c) == 32
                 and (int.from_bytes(c, "little") & (2**255 - 1)) < P and _on_curve(c))
    document = _other_key(LEDGER["keys"], "entry", LEDGER["keys"]["keys"][0]["key_id"])
    record = document["keys"][0]
    record["public_key"] = base64.b64encode(mixed).decode()
    record["note_key"] = verifier_key(record["note_name"], mixed)
    result = js("verifyCheckpoint", LEDGER["checkpoint"]["note"], document, [])
    assert failed_checks(result) == ["keys"] and "not a valid Ed25519 public key" in result["checks"][0]["detail"]
    with pytest.raises(VerificationError, match="not a valid Ed25519 public key"):
        load_keys(document)


def _on_curve(encoded: bytes) -> bool:
    y = int.from_bytes(encoded, "little") & (2**255 - 1)
    d = -121665 * pow(121666, P - 2, P) % P
    x2 = (y * y - 1) * pow(d * y * y + 1, P - 2, P) % P
    return pow(x2, (P - 1) // 2, P) in (0, 1)


def test_signatures_webcrypto_accepts_but_libsodium_refuses_are_refused(js):
    """With R of small order (the key's holder can make one), with S not reduced, by a small-order key (a
    forgery of any message): Chromium's Ed25519 alone would say yes to some; verify.js says what libsodium says."""
    seed = hashlib.sha256(b"browser/verifier").digest()
    expanded = hashlib.sha512(seed).digest()
    a = int.from_bytes(expanded[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    public = crypto_scalarmult_ed25519_base_noclamp(a.to_bytes(32, "little"))
    message = b"a message"

    def challenge(r_point: bytes, key: bytes) -> int:
        return int.from_bytes(hashlib.sha512(r_point + key + message).digest(), "little") % L

    identity = (1).to_bytes(32, "little")
    honest = SigningKey.generate("s")
    good = honest.sign(message)
    s = int.from_bytes(good[32:], "little")
    r = 12345
    r_point = crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
    cases = {
        "honest": (good, honest.public_key_raw),
        "small-order R": (identity + (challenge(identity, public) * a % L).to_bytes(32, "little"), public),
        "S + L": (good[:32] + (s + L).to_bytes(32, "little"), honest.public_key_raw),
        "small-order key": (r_point + r.to_bytes(32, "little"), identity),
    }
    ours = js.each("signatureVerifies", [(raw(signature), message.decode(), raw(key))
                                         for signature, key in cases.values()])
    webcrypto = js.page.evaluate("""async (cases) => {
      const out = [], b = window.verify.base64ToBytes, message = new TextEncoder().encode("a message");
      for (const [signature, key] of cases) {
        try {
          const imported = await crypto.subtle.importKey("raw", b(key), "Ed25519", false, ["verify"]);
          out.push(await crypto.subtle.verify("Ed25519", imported, b(signature), message));
        } catch { out.push(false); }
      }
      return out; }""", [[raw(signature)["raw"], raw(key)["raw"]] for signature, key in cases.values()])
    got = dict(zip(cases, zip(ours, webcrypto)))
    for name, (signature, key) in cases.items():
        assert got[name][0] is verify_detached(signature, message, key), name
    assert got["honest"] == (True, True)
    for name in ("small-order R", "small-order key"):
        assert not got[name][0] and got[name][1], f"{name}: WebCrypto alone accepts it"
    assert not any(got[name][0] for name in ("small-order R", "S + L", "small-order key"))


# --- malformed input ----------------------------------------------------------------------------------

def test_malformed_input_gives_ok_false_with_a_detail_never_a_throw(js, served):
    receipt = json.loads(served.receipts["issued"])
    receipts = [None, 42, "", "{", "[]", "{}", json.dumps(dict(receipt, leaf_index=True)),
                json.dumps(dict(receipt, leaf_index=receipt["tree_size"])), json.dumps(receipt).replace(
                    f'"leaf_index": {receipt["leaf_index"]}', f'"leaf_index": {receipt["leaf_index"]}.0'),
                json.dumps(dict(receipt, entry=receipt["entry"] + "\n")), json.dumps(dict(receipt, checkpoint="x")),
                json.dumps(dict(receipt, inclusion_proof=["not base64"]))]
    zero = raw(bytes(32))
    outcomes = js.each("verifyReceipt", [(r, served.keys, served.witnesses) for r in receipts])
    outcomes += js.each("verifyReceipt", [(receipts[6], bad, []) for bad in (None, "{}", {"origin": "o", "keys": [{}]},
                                                                             "[1,2")])
    outcomes += js.each("verifyReceipt", [(receipts[6], served.keys, [{"name": "x", "vkey": "nope"}])])
    notes = [None, 7, "", "a\n\n", "a\n1\nAAAA\n\n\u2014 a AAAAAAAA\n", "\u0000"]
    outcomes += js.each("verifyCheckpoint", [(note, served.keys, served.witnesses) for note in notes])
    outcomes += js.each("verifyEntrySignature", [(e, served.keys) for e in (None, "", "{}", "[", "1.5", '{"a":1e400}')])
    assert js.each("verifyInclusion", [(None, 0, 1, [], None), (zero, -1, 1, [], zero), (zero, 0, 1, "x", zero),
                                       (zero, 0, 1, [None], zero), (zero, 2**64, 2**65, [], zero)]) == [False] * 5
    assert js.each("verifyConsistency", [(1, 0, None, None, []), ("a", 2, zero, zero, [None]),
                                         (2, 3, zero, zero, [zero, 7])]) == [False] * 3
    for outcome in outcomes:
        assert outcome["ok"] is False, outcome
        details = [c["detail"] for c in outcome.get("checks", [])]
        if "detail" in outcome:  # verifyEntrySignature's answer
            details.append(outcome["detail"])
        assert details and all(isinstance(d, str) and d and "internal error" not in d for d in details), outcome
    # The Python verifier refuses the same receipts (those it can be handed: JSON objects).
    for text in receipts[5:]:
        assert python_verdict(served, json.loads(text)) is not None, text[:80]
