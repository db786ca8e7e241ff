"""Receipts (GET /ledger/receipts/{seq}): one entry, its inclusion proof, and
the cosigned checkpoint it leads to (its note includes the witnesses'
cosignature lines), also as a c2sp.org/tlog-proof that ends with the same
note. With a policy, that checkpoint must satisfy it."""
from __future__ import annotations

from .. import merkle
from ..note import TLOG_PROOF_HEADER
from ..policy import Policy
from .checkpoint import Signed, check_policy, check_signers, load_policy_file, open_checkpoint
from .common import DECIMAL, VerificationError, b64, show, strict_b64
from .entries import check_entry
from .files import read_json
from .keys import KeySet, load_keys_file

MAX_PROOF_HASHES = 64             # an inclusion proof in a tree of < 2^64 leaves
RECEIPT_FIELDS = {"entry": str, "leaf_index": int, "leaf_hash": str, "tree_size": int, "inclusion_proof": list,
                  "checkpoint": str, "tlog_proof": str}


def verify_receipt(receipt: dict, keys: KeySet, policy: Policy | None = None) -> dict:
    """Verify a receipt from GET /ledger/receipts/{seq} (and, given a policy, that its
    checkpoint satisfies it); returns what it proves."""
    def fail(why):
        raise VerificationError(why, where="receipt")

    if not isinstance(receipt, dict):
        fail("a receipt is a JSON object")
    for name, kind in RECEIPT_FIELDS.items():
        value = receipt.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            fail(f"{name} is missing or not a {'string' if kind is str else kind.__name__}")
    index, size = receipt["leaf_index"], receipt["tree_size"]
    if not 0 <= index < size:
        fail(f"leaf_index {index} is not in a tree of size {size}")
    try:
        line = receipt["entry"].encode("utf-8")
    except UnicodeError:
        fail("entry is not valid Unicode text")
    if b"\n" in line:
        raise VerificationError("the entry must be exactly its canonical bytes, without a newline", seq=index)
    entry = check_entry(line, index, keys)
    leaf = merkle.leaf_hash(line)
    given_leaf = strict_b64(receipt["leaf_hash"])
    if given_leaf != leaf:
        raise VerificationError(f"leaf_hash {show(receipt['leaf_hash'])} is not the hash of the entry "
                                f"({b64(leaf)})", seq=index)
    proof = receipt["inclusion_proof"]
    if len(proof) > MAX_PROOF_HASHES:
        fail(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    hashes = []
    for number, item in enumerate(proof):
        raw = strict_b64(item) if isinstance(item, str) else None
        if raw is None or len(raw) != merkle.HASH_SIZE:
            fail(f"inclusion_proof[{number}] is not a base64 SHA-256 hash")
        hashes.append(raw)
    checkpoint, signers = open_checkpoint(receipt["checkpoint"], keys)
    if checkpoint.size != size:
        fail(f"tree_size {size} is not the checkpoint's size {checkpoint.size}")
    if not merkle.verify_inclusion(index, size, leaf, hashes, checkpoint.root_hash):
        raise VerificationError(f"the inclusion proof does not lead from the entry to the checkpoint's root "
                                f"(tree of size {size})", seq=index)
    # The checkpoint was signed after this entry was written: no signer may
    # have been retired by then, and the keys that had to sign for an entry
    # of that time did. (The checkpoint's newest entry is not in a receipt:
    # the entry's time is the one known bound.)
    signed = check_signers(signers, keys, last_ts=entry["ts"], require_active=True)
    witnesses = check_policy(policy, receipt["checkpoint"]) if policy is not None else None
    _check_tlog_proof(receipt["tlog_proof"], index, hashes, receipt["checkpoint"], fail)
    return {"ok": True, "seq": index, "kind": entry["kind"], "region": entry["region"], "ts": entry["ts"],
            "key_id": entry["sig"]["key_id"], "leaf_hash": b64(leaf), "tree_size": size,
            "root": b64(checkpoint.root_hash), "cosigned_by": list(signed.regions), "log_key": signed.log_key,
            "witnesses": None if witnesses is None else list(witnesses)}


def _check_tlog_proof(text: str, index: int, hashes: list[bytes], checkpoint_note: str, fail) -> None:
    """c2sp.org/tlog-proof: header, optional `extra`, `index N`, hashes, blank line, the checkpoint."""
    split = text.find("\n\n")
    if split < 0:
        fail("tlog_proof has no blank line before its checkpoint")
    head, note_text = text[:split].split("\n"), text[split + 2:]
    if head[0] != TLOG_PROOF_HEADER:
        fail(f"tlog_proof does not start with {TLOG_PROOF_HEADER}")
    rest = head[1:]
    while rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not rest[0].startswith("index ") or not DECIMAL.match(rest[0][len("index "):]):
        fail("tlog_proof has no `index N` line")
    if int(rest[0][len("index "):]) != index:
        fail(f"tlog_proof is for index {rest[0][len('index '):]}, the receipt for {index}")
    if [strict_b64(h) for h in rest[1:]] != hashes:
        fail("tlog_proof's hashes are not the receipt's inclusion_proof")
    if note_text != checkpoint_note:
        fail("tlog_proof's checkpoint is not the receipt's checkpoint")


def receipt_text(result: dict) -> str:
    witnesses = result.get("witnesses")
    signed = Signed(result.get("log_key"), tuple(result["cosigned_by"]),
                    None if witnesses is None else tuple(witnesses))
    return (f"ok: entry {result['seq']} ({result['kind']}, region {result['region']}, {result['ts']}) is signed by "
            f"{result['key_id']} and included in the tree of size {result['tree_size']}, root {result['root']}, "
            f"{signed.text()}")


def verify_receipt_file(receipt_path: str, keys_path: str, policy_path: str | None = None) -> dict:
    keys = load_keys_file(keys_path)
    policy = load_policy_file(policy_path) if policy_path else None
    return verify_receipt(read_json(receipt_path, "receipt"), keys, policy)
