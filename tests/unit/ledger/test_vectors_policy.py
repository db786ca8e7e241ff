"""The published policy vectors (schemas/vectors/policy-vectors.json and
every-region.policy): up to date, and every verdict reached twice over — by
the service's verifier and by an independent reading of the C2SP formats
below that uses no service code for hashing, signatures or policies."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import struct

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from voucher_service.ledger.cosignature import Cosigner
from voucher_service.ledger.policy import Policy, PolicyError
from voucher_service.ledger.verify import VerificationError, load_keys, main, read_lines, verify_export

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VECTORS_DIR = os.path.join(REPO, "schemas", "vectors")


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_policy_vectors = _load("make_policy_vectors", os.path.join(REPO, "scripts", "make_policy_vectors.py"))

with open(os.path.join(VECTORS_DIR, "policy-vectors.json"), encoding="utf-8") as _handle:
    VECTORS = json.load(_handle)
with open(os.path.join(VECTORS_DIR, "ledger-vectors.json"), encoding="utf-8") as _handle:
    LEDGER = json.load(_handle)
with open(os.path.join(VECTORS_DIR, "every-region.policy"), encoding="utf-8") as _handle:
    POLICY_FILE = _handle.read()

# What the service's messages say for each kind of failure the vectors name.
WORDS = {"quorum not met": "is not met", "no log signature": "not signed by a log key of the policy",
         "invalid log signature": "the log key's signature does not verify",
         "invalid cosignature": "invalid cosignature by witness", "origin is not the log key's": "origin is"}


def test_committed_files_are_what_the_script_generates():
    for path, data in make_policy_vectors.outputs().items():
        with open(path, "rb") as handle:
            assert handle.read() == data, f"{path} is out of date: run .venv/bin/python scripts/make_policy_vectors.py"
    assert make_policy_vectors.main(["--check"]) == 0


def test_the_policy_file_is_the_every_region_policy():
    assert POLICY_FILE == VECTORS["policies"]["every-region"]
    assert set(VECTORS["policies"]) == {"every-region", "two-of-three", "nested", "log-only", "one-witness"}


def test_the_vectors_extend_the_ledger_vectors():
    assert VECTORS["origin"] == LEDGER["origin"]
    entry_keys = [key for key in VECTORS["keys"]["keys"] if key["purpose"] == "entry"]
    assert entry_keys == LEDGER["keys"]["keys"]
    [log] = [key for key in VECTORS["keys"]["keys"] if key["purpose"] == "log"]
    assert log["region"] is None and log["note_name"] == VECTORS["origin"] and log["key_id"].startswith("log-")
    assert log["valid_from"] == VECTORS["upgraded_at"] == json.loads(LEDGER["entries"][7]["line"])["ts"]
    assert log["note_key"] == VECTORS["log"]["note_key"] and log["key_id"] == VECTORS["log"]["key_id"]
    for witness in VECTORS["witnesses"]:
        name, key_id, key = parse_vkey(witness["vkey"], 0x04)
        assert Cosigner.parse(witness["vkey"]) == Cosigner(name, key)


# --- an independent reading of the formats ------------------------------------------------------------

def parse_vkey(text: str, alg: int) -> tuple[str, bytes, bytes]:
    """name+hex id+base64(alg || key), the id being SHA-256(name || 0x0A || alg || key)[:4]."""
    name, id_hex, blob = text.split("+", 2)
    raw = base64.b64decode(blob)
    assert raw[0] == alg and len(raw) == 33
    assert hashlib.sha256(name.encode() + b"\n" + raw[:1] + raw[1:]).digest()[:4] == bytes.fromhex(id_hex)
    return name, bytes.fromhex(id_hex), raw[1:]


def ed25519_ok(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def independent_verdict(policy_text: str, note: str):
    """("ok", witnesses in policy order) or ("fail", reason as the vectors word it)."""
    text, _, block = note.rpartition("\n\n")
    text += "\n"
    lines = [line.removeprefix("\u2014 ").rsplit(" ", 1) for line in block.rstrip("\n").split("\n")]
    sigs = [(name, base64.b64decode(blob)) for name, blob in lines]
    logs, witnesses, groups, quorum = [], {}, {}, None
    for line in policy_text.split("\n"):
        fields = line.split("#")[0].split()
        if not fields:
            continue
        if fields[0] == "log":
            logs.append(parse_vkey(fields[1], 0x01))
        elif fields[0] == "witness":
            witnesses[fields[1]] = parse_vkey(fields[2], 0x04)
        elif fields[0] == "group":
            members = fields[3:]
            groups[fields[1]] = ({"all": len(members), "any": 1}.get(fields[2]) or int(fields[2]), members)
        elif fields[0] == "quorum":
            quorum = None if fields[1] == "none" else fields[1]
    log_ok = None
    for name, key_hash, key in logs:
        for signer, blob in sigs:
            if (signer, blob[:4]) == (name, key_hash):
                log_ok = ed25519_ok(key, blob[4:], text.encode()) and (log_ok is not False)
                log_name = name
    if log_ok is None:
        return "fail", "no log signature"
    if not log_ok:
        return "fail", "invalid log signature"
    if text.split("\n")[0] != log_name:
        return "fail", "origin is not the log key's"
    cosigned = []
    for policy_name, (name, key_id, key) in witnesses.items():
        for signer, blob in sigs:
            if (signer, blob[:4]) == (name, key_id):
                (timestamp,) = struct.unpack(">Q", blob[4:12])
                if not ed25519_ok(key, blob[12:], f"cosignature/v1\ntime {timestamp}\n{text}".encode()):
                    return "fail", "invalid cosignature"
                cosigned.append(policy_name)
    satisfied = {name: name in cosigned for name in witnesses}
    for name, (threshold, members) in groups.items():
        satisfied[name] = sum(satisfied[m] for m in members) >= threshold
    if quorum is not None and not satisfied[quorum]:
        return "fail", "quorum not met"
    return "ok", cosigned


# --- the verdicts -------------------------------------------------------------------------------------

VERDICTS = VECTORS["policy_verdicts"]


def test_every_policy_meets_every_checkpoint():
    assert len(VERDICTS) == len(VECTORS["policies"]) * len(VECTORS["checkpoints"])
    assert {v["valid"] for v in VERDICTS} == {True, False}
    assert set(WORDS) == {v["reason"] for v in VERDICTS if not v["valid"]}


@pytest.mark.parametrize("verdict", VERDICTS, ids=lambda v: f"{v['policy']}/{v['checkpoint']}")
def test_policy_verdicts(verdict):
    policy = Policy.parse(VECTORS["policies"][verdict["policy"]])
    note = VECTORS["checkpoints"][verdict["checkpoint"]]
    if verdict["valid"]:
        checkpoint, cosigned = policy.check(note)
        assert cosigned == verdict["cosigned"]
        assert (checkpoint.size, checkpoint.origin) == (LEDGER["checkpoint"]["tree_size"], VECTORS["origin"])
    else:
        with pytest.raises(PolicyError) as info:
            policy.check(note)
        assert WORDS[verdict["reason"]] in str(info.value)
    expected = ("ok", verdict["cosigned"]) if verdict["valid"] else ("fail", verdict["reason"])
    assert independent_verdict(VECTORS["policies"][verdict["policy"]], note) == expected


@pytest.mark.parametrize("item", VECTORS["keys_verdicts"], ids=lambda i: i["what"][:40])
def test_keys_verdicts(item):
    keys = load_keys(VECTORS["keys"])
    export = read_lines(io.BytesIO(LEDGER["export"].encode("utf-8")))
    if item["valid"]:
        summary = verify_export(export, item["note"], keys)
        assert summary.checkpoint_size == item["tree_size"]
        assert (summary.log_key is not None) == (item["signed_by"] == "log")
        assert summary.cosigned_by == (() if item["signed_by"] == "log" else ("KS", "SH", "WJ"))
    else:
        with pytest.raises(VerificationError) as info:
            verify_export(export, item["note"], keys)
        assert info.value.where == "checkpoint" and item["reason"] in info.value.why


def test_the_policy_file_on_the_command_line(tmp_path, capsys):
    (tmp_path / "export.jsonl").write_text(LEDGER["export"], encoding="utf-8")
    (tmp_path / "keys.json").write_text(json.dumps(VECTORS["keys"]), encoding="utf-8")
    args = ["export", str(tmp_path / "export.jsonl"), "--keys", str(tmp_path / "keys.json"),
            "--policy", os.path.join(VECTORS_DIR, "every-region.policy"), "--checkpoint", str(tmp_path / "c.txt")]
    (tmp_path / "c.txt").write_text(VECTORS["checkpoints"]["all-four"], encoding="utf-8")
    assert main(args) == 0
    assert "cosigned by witnesses sh, ks, wj" in capsys.readouterr().out
    (tmp_path / "c.txt").write_text(VECTORS["checkpoints"]["wj-missing"], encoding="utf-8")
    assert main(args) == 1
    assert "FAILED at checkpoint: does not satisfy the policy: the quorum regions" in capsys.readouterr().err


def test_the_example_policy_in_the_docs_parses_and_meets_the_vectors():
    with open(os.path.join(REPO, "docs", "ledger.md"), encoding="utf-8") as handle:
        docs = handle.read()
    section = docs[docs.index("## Verifying with a policy"):]
    example = section[section.index("```\n") + 4:]
    example = example[:example.index("```")]
    policy = Policy.parse(example)
    assert policy.check(VECTORS["checkpoints"]["all-four"])[1] == ["sh", "ks", "wj", "audit1"]
    with pytest.raises(PolicyError, match="group accepted needs 2 of regions, auditors and has 1"):
        policy.check(VECTORS["checkpoints"]["wj-missing"])
