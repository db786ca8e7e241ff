"""schemas/vectors/cosignature-vectors.json (made by our code, fixed key) and
schemas/vectors/c2sp-examples.json (copied from the C2SP specs): the committed
file is what the script makes; every cosignature verifies with our code and
with an independent Ed25519 verifier; every wrong one is refused; and our code
reads the specs' own examples as the specs say."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import struct

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from voucher_service.ledger import cosignature
from voucher_service.ledger.cosignature import Cosigner, cosignatures, signed_message
from voucher_service.ledger.note import Checkpoint, Verifier, open_note, parse_note
from voucher_service.ledger.signing import public_raw

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VECTORS_DIR = os.path.join(REPO, "schemas", "vectors")


def load(name: str) -> dict:
    with open(os.path.join(VECTORS_DIR, name), encoding="utf-8") as handle:
        return json.load(handle)


def load_script():
    spec = importlib.util.spec_from_file_location(
        "make_cosignature_vectors", os.path.join(REPO, "scripts", "make_cosignature_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VECTORS = load("cosignature-vectors.json")
SPEC = load("c2sp-examples.json")["tlog_cosignature"]
WITNESS = VECTORS["witness"]
COSIGNER = Cosigner.parse(WITNESS["vkey"])


def blob_of(line: str) -> bytes:
    assert line.startswith("\u2014 ") and line.endswith("\n")
    return base64.b64decode(line[:-1].rsplit(" ", 1)[1], validate=True)


def test_committed_vectors_are_what_the_script_generates():
    script = load_script()
    with open(script.OUTPUT, "rb") as handle:
        assert handle.read() == script.render(script.build_vectors()), \
            "run .venv/bin/python scripts/make_cosignature_vectors.py"


def test_script_check_mode(tmp_path):
    script = load_script()
    target = tmp_path / "vectors.json"
    assert script.main(["--output", str(target), "--check"]) == 1
    assert script.main(["--output", str(target)]) == 0
    assert script.main(["--output", str(target), "--check"]) == 0


def test_the_witness_key_is_the_documented_seed():
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"vectors/witness").digest())
    public = public_raw(private.public_key())
    assert base64.b64decode(WITNESS["public_key"]) == public and WITNESS["public_key_hex"] == public.hex()
    assert COSIGNER == Cosigner(WITNESS["name"], public)
    assert WITNESS["key_id_hex"] == hashlib.sha256(WITNESS["name"].encode() + b"\n\x04" + public).digest()[:4].hex()
    assert WITNESS["vkey"] == f"{WITNESS['name']}+{WITNESS['key_id_hex']}+" + \
        base64.b64encode(b"\x04" + public).decode()


@pytest.mark.parametrize("vector", VECTORS["cosignatures"], ids=lambda v: f"time {v['timestamp']}")
def test_each_cosignature_verifies_with_our_code_and_independently(vector):
    text, timestamp = vector["checkpoint_text"], vector["timestamp"]
    assert vector["signed_message"] == f"cosignature/v1\ntime {timestamp}\n{text}"
    assert signed_message(text, timestamp) == vector["signed_message"].encode()
    blob = blob_of(vector["signature_line"])
    assert blob[:4].hex() == WITNESS["key_id_hex"] and struct.unpack(">Q", blob[4:12])[0] == timestamp
    # Independently of our code: cryptography (OpenSSL) over the documented message.
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(WITNESS["public_key_hex"])).verify(
        blob[12:], vector["signed_message"].encode())
    assert COSIGNER.verify(text, blob) == timestamp
    assert cosignatures(vector["cosigned_note"], [COSIGNER]) == {WITNESS["name"]: timestamp}
    # The same bytes again from the key (Ed25519 is deterministic).
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"vectors/witness").digest())
    assert cosignature.cosign(text, WITNESS["name"], private.sign, COSIGNER.public_key_raw, timestamp) == \
        vector["signature_line"]


def test_the_cosigned_note_still_opens_with_the_log_key_alone():
    """A note verifier that knows only the log key skips the witness's line (signed-note)."""
    log = Verifier.parse(VECTORS["log"]["note_key"])
    note = VECTORS["cosignatures"][0]["cosigned_note"]
    text, good = open_note(note, [log])
    assert good == [log] and Checkpoint.parse(text).origin == VECTORS["log"]["origin"]


@pytest.mark.parametrize("item", VECTORS["invalid"], ids=lambda i: i["what"])
def test_wrong_cosignatures_are_refused(item):
    assert item["valid"] is False
    blob = blob_of(item["signature_line"])
    assert COSIGNER.verify(item["checkpoint_text"], blob) is None
    timestamp = struct.unpack(">Q", blob[4:12])[0]
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(COSIGNER.public_key_raw).verify(
            blob[12:], signed_message(item["checkpoint_text"], timestamp))
    note = item["checkpoint_text"] + "\n" + item["signature_line"]
    with pytest.raises(ValueError):  # a known witness's line that does not verify is an error
        cosignatures(note, [COSIGNER])


def test_the_spec_cosignature_decodes_as_the_spec_says():
    _text, signatures = parse_note(SPEC["cosigned_note"])
    witness = [s for s in signatures if s.name == SPEC["witness_name"]]
    assert len(witness) == 1
    blob = witness[0].key_hash + witness[0].signature
    assert SPEC["cosigned_note"].endswith(SPEC["cosignature_line"])
    assert blob == blob_of(SPEC["cosignature_line"]) and len(blob) == cosignature.SIGNATURE_BYTES
    assert witness[0].key_hash.hex() == SPEC["key_id_hex"] == "8d66cf3f"
    assert struct.unpack(">Q", blob[4:12])[0] == SPEC["timestamp"] == 1679315147


def test_the_spec_signed_message_is_what_we_build():
    assert signed_message(SPEC["checkpoint_text"], SPEC["timestamp"]) == SPEC["signed_message"].encode("utf-8")
    assert SPEC["signed_message"] == (
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_the_spec_cosignature_is_skipped_by_a_client_that_does_not_know_the_witness():
    assert cosignatures(SPEC["cosigned_note"], [COSIGNER]) == {}
