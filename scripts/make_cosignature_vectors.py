"""Write schemas/vectors/cosignature-vectors.json: C2SP tlog-cosignature/v1
vectors made by our code with a fixed witness key, and C2SP tlog-witness
add-checkpoint request bodies over the test log of ledger-vectors.json.

    .venv/bin/python scripts/make_cosignature_vectors.py           # (re)write the file
    .venv/bin/python scripts/make_cosignature_vectors.py --check   # exit 1 if it would change

Deterministic: the witness key's Ed25519 seed is SHA-256("vectors/witness"),
the log key's SHA-256("vectors/log"); timestamps are fixed and Ed25519
signatures deterministic. tests/unit/ledger/test_cosignature_vectors.py fails
when the committed file drifts from what this script generates. These are
public test keys: never trust them for anything else.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere: import the service from this checkout
    sys.path.insert(0, REPO)

from voucher_service.ledger import cosignature, merkle  # noqa: E402
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key  # noqa: E402
from voucher_service.ledger.signing import public_raw  # noqa: E402
from voucher_service.ledger.tlog_witness import request_body  # noqa: E402

OUTPUT = os.path.join(REPO, "schemas", "vectors", "cosignature-vectors.json")
LEDGER_VECTORS = os.path.join(REPO, "schemas", "vectors", "ledger-vectors.json")
FORMAT = "vouchers.example/cosignature-vectors/v1"
WITNESS_NAME = "witness.ks.vouchers.example"
TIMESTAMPS = (1772411400, 0)  # 2026-03-02T00:30:00Z, and the smallest a cosignature may carry
OLD_SIZE = 8


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def private_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"vectors/{label}".encode()).digest())


def build_vectors() -> dict:
    with open(LEDGER_VECTORS, encoding="utf-8") as handle:
        ledger = json.load(handle)
    origin = ledger["origin"]
    witness_key, log_key = private_key("witness"), private_key("log")
    witness_public, log_public = public_raw(witness_key.public_key()), public_raw(log_key.public_key())
    leaves = [merkle.leaf_hash(entry["line"].encode("utf-8")) for entry in ledger["entries"]]
    size = len(leaves)

    def log_signed(tree_size: int) -> str:
        checkpoint = Checkpoint(origin, tree_size, merkle.root_from_leaves(leaves[:tree_size]))
        return sign_note(checkpoint.text(), [(origin, log_key.sign, log_public)])

    note = log_signed(size)
    text = note[: note.index("\n\n") + 1]
    cosignatures = []
    for timestamp in TIMESTAMPS:
        line = cosignature.cosign(text, WITNESS_NAME, witness_key.sign, witness_public, timestamp)
        cosignatures.append({
            "checkpoint_text": text, "timestamp": timestamp,
            "signed_message": cosignature.signed_message(text, timestamp).decode("utf-8"),
            "signature_line": line, "cosigned_note": note + line,
        })
    good = cosignatures[0]
    blob = base64.b64decode(good["signature_line"].rsplit(" ", 1)[1])
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    later = blob[:4] + struct.pack(">Q", good["timestamp"] + 1) + blob[12:]
    other_text = log_signed(size - 1)
    invalid = [
        {"what": "one bit of the Ed25519 signature flipped", "checkpoint_text": text,
         "signature_line": f"\u2014 {WITNESS_NAME} {b64(flipped)}\n", "reason": "the signature does not verify"},
        {"what": "timestamp raised by one second, signature kept", "checkpoint_text": text,
         "signature_line": f"\u2014 {WITNESS_NAME} {b64(later)}\n",
         "reason": "the signed message includes the timestamp"},
        {"what": "a valid cosignature of another checkpoint of the same log", "checkpoint_text": text,
         "signature_line": cosignature.cosign(other_text[: other_text.index("\n\n") + 1], WITNESS_NAME,
                                              witness_key.sign, witness_public, good["timestamp"]),
         "reason": "the signed message includes the checkpoint"},
    ]

    def read_nodes(nodes):
        return [merkle.root_from_leaves(leaves[index << level:(index + 1) << level]) for level, index in nodes]

    proof = merkle.consistency_proof(OLD_SIZE, size, read_nodes)
    requests = [
        {"what": "the first request to a witness that has cosigned nothing for this log",
         "old_size": 0, "proof": [], "checkpoint_note": log_signed(OLD_SIZE),
         "body": request_body(0, [], log_signed(OLD_SIZE)).decode("utf-8")},
        {"what": f"the next one, from the size-{OLD_SIZE} checkpoint it then cosigned",
         "old_size": OLD_SIZE, "proof": [b64(h) for h in proof], "checkpoint_note": note,
         "body": request_body(OLD_SIZE, proof, note).decode("utf-8")},
    ]
    return {
        "format": FORMAT,
        "description": ("C2SP tlog-cosignature/v1 (c2sp.org/tlog-cosignature) and tlog-witness "
                        "(c2sp.org/tlog-witness) vectors. Generated by scripts/make_cosignature_vectors.py with "
                        "fixed, PUBLIC test keys (Ed25519 seeds SHA-256(\"vectors/witness\") and "
                        "SHA-256(\"vectors/log\")): never trust them for anything else. The checkpoints are of "
                        "the test log of ledger-vectors.json. See schemas/README.md."),
        "conventions": {
            "key_id": "SHA-256(name || \"\\n\" || 0x04 || 32-byte Ed25519 public key)[:4]",
            "vkey": "name+hex(key_id)+base64(0x04 || public key)",
            "signed_message": "\"cosignature/v1\\n\" \"time <timestamp>\\n\" <checkpoint text with its final newline>",
            "signature_line": "\u2014 <name> base64(key_id || u64 big-endian timestamp || Ed25519 signature)\\n",
            "add_checkpoint_body": "\"old <size>\\n\", one base64 consistency proof hash a line, \"\\n\", the signed "
                                   "checkpoint",
        },
        "witness": {"name": WITNESS_NAME, "public_key": b64(witness_public), "public_key_hex": witness_public.hex(),
                    "key_id_hex": cosignature.key_id(WITNESS_NAME, witness_public).hex(),
                    "vkey": cosignature.vkey(WITNESS_NAME, witness_public)},
        "log": {"origin": origin, "public_key": b64(log_public), "note_key": verifier_key(origin, log_public)},
        "cosignatures": cosignatures,
        "invalid": [dict(item, valid=False) for item in invalid],
        "add_checkpoint_requests": requests,
    }


def render(vectors: dict) -> bytes:
    return (json.dumps(vectors, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=OUTPUT, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file would change")
    args = parser.parse_args(argv)
    data = render(build_vectors())
    try:
        with open(args.output, "rb") as handle:
            current = handle.read()
    except FileNotFoundError:
        current = None
    if args.check:
        if current != data:
            print(f"{args.output} is out of date: run scripts/make_cosignature_vectors.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != data:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "wb") as handle:
            handle.write(data)
    print(f"wrote {args.output}" if current != data else f"{args.output} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
