"""Write schemas/vectors/ledger-vectors.json: test vectors for an auditor's own
ledger verifier (entries, leaf hashes, roots, proofs, a cosigned checkpoint,
the public keys, and deliberately wrong items to be rejected).

    .venv/bin/python scripts/make_vectors.py           # (re)write the file
    .venv/bin/python scripts/make_vectors.py --check   # exit 1 if it would change

Deterministic: the regions' Ed25519 keys come from fixed seeds
(SHA-256("vectors/<region>")), timestamps and ids are fixed, and Ed25519
signatures are deterministic, so every run writes identical bytes.
tests/unit/ledger/test_vectors.py fails when the committed file drifts from
what this script generates. These keys are public test keys: never use them
for anything else.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere: import the service from this checkout
    sys.path.insert(0, REPO)

from voucher_service.ledger import Entry, Posting, SigningKey, canonical_bytes, merkle, sign_entry
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.signing import key_fingerprint, public_raw

OUTPUT = os.path.join(REPO, "schemas", "vectors", "ledger-vectors.json")
ORIGIN = "vouchers.example/ledger"
REGIONS = ("SH", "KS", "WJ")
KEY_VALID_FROM = "2026-01-01T00:00:00.000000Z"
START = datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc)
FORMAT = "vouchers.example/ledger-vectors/v1"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def region_private_key(region: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"vectors/{region}".encode()).digest())


def region_key(region: str) -> SigningKey:
    private_key = region_private_key(region)
    # The service's key id format: region and the public key's fingerprint.
    return SigningKey(f"{region}-{key_fingerprint(public_raw(private_key.public_key()))}", private_key)


def note_name(region: str) -> str:
    return f"{ORIGIN}/{region}"


def published_keys(keys: dict[str, SigningKey]) -> dict:
    """The body of GET /ledger/keys for these keys."""
    return {"origin": ORIGIN, "keys": [
        {"key_id": key.key_id, "purpose": "entry", "region": region, "alg": "ed25519",
         "public_key": b64(key.public_key_raw), "note_name": note_name(region), "note_key": verifier_key(note_name(region), key.public_key_raw),
         "valid_from": KEY_VALID_FROM, "valid_until": None}
        for region, key in sorted(keys.items())]}


# --- the log: a Kunshan voucher spent at a Shanghai provider, then voided ------

def fixed_id(prefix: str, label: str) -> str:
    """An id shaped like the service's (prefix_ + 27 hex digits), fixed by its label."""
    return f"{prefix}_{hashlib.sha256(label.encode()).hexdigest()[:27]}"


VOUCHER = fixed_id("vch", "voucher")
APPLICATION = fixed_id("app", "application")
REDEMPTION = fixed_id("rdm", "redemption")
SH_OFFICER = fixed_id("usr", "SH officer")
KS_OFFICER = fixed_id("usr", "KS officer")
SME = fixed_id("usr", "ent-ks-003 staff")
PROVIDER_STAFF = fixed_id("usr", "prv-sh-001 staff")
ENTERPRISE = "ent-ks-003"
PROVIDER = "prv-sh-001"
FACE_FEN = 20_000_000           # 200,000.00 CNY
SERVICE_FEE_FEN = 3_000_000     # 30,000.00 CNY testing contract
RESERVED_FEN = 1_500_000        # 50 % of the fee
CLAIMED_FEN = 1_400_000         # the provider's final invoice is lower
VOUCHER_ACCOUNT = f"voucher:{VOUCHER}"
HELD_ACCOUNT = f"voucher:{VOUCHER}:held"


def log_entries() -> list[Entry]:
    specs = [
        dict(kind="region.registered", region="SH", actor="system:init", refs={"region": "SH"},
             data={"name_zh": "上海市", "name_en": "Shanghai", "currency": "CNY", "timezone": "Asia/Shanghai"}),
        dict(kind="region.registered", region="KS", actor="system:init", refs={"region": "KS"},
             data={"name_zh": "昆山市", "name_en": "Kunshan", "currency": "CNY", "timezone": "Asia/Shanghai"}),
        dict(kind="region.registered", region="WJ", actor="system:init", refs={"region": "WJ"},
             data={"name_zh": "吴江区", "name_en": "Wujiang", "currency": "CNY", "timezone": "Asia/Shanghai"}),
        dict(kind="budget.funded", region="SH", actor="system:init", refs={"region": "SH"},
             postings=[Posting("treasury:SH", "budget:SH", 5_000_000_000)], data={"amount_fen": 5_000_000_000}),
        dict(kind="budget.funded", region="KS", actor="system:init", refs={"region": "KS"},
             postings=[Posting("treasury:KS", "budget:KS", 2_000_000_000)], data={"amount_fen": 2_000_000_000}),
        dict(kind="provider.registered", region="SH", actor=SH_OFFICER, refs={"provider": PROVIDER},
             data={"name": "上海市计量测试技术研究院", "uscc": "12310000425003717M",
                   "categories": ["testing", "instruments"], "status": "active"}),
        dict(kind="application.submitted", region="KS", actor=SME,
             refs={"application": APPLICATION, "enterprise": ENTERPRISE},
             data={"amount_fen": FACE_FEN, "purpose": "整机可靠性检测 / reliability testing of a prototype"}),
        dict(kind="voucher.issued", region="KS", actor=KS_OFFICER,
             refs={"application": APPLICATION, "voucher": VOUCHER, "enterprise": ENTERPRISE},
             postings=[Posting("budget:KS", VOUCHER_ACCOUNT, FACE_FEN)],
             data={"code": "KS-2026-3F9A0C71D2", "face_fen": FACE_FEN, "valid_from": "2026-03-02",
                   "valid_until": "2027-03-01", "requested_fen": FACE_FEN}),
        dict(kind="redemption.reserved", region="KS", actor=SME,
             refs={"redemption": REDEMPTION, "voucher": VOUCHER, "enterprise": ENTERPRISE, "provider": PROVIDER},
             postings=[Posting(VOUCHER_ACCOUNT, HELD_ACCOUNT, RESERVED_FEN)],
             data={"catalog_code": "TS-01", "service_fee_fen": SERVICE_FEE_FEN, "amount_fen": RESERVED_FEN}),
        dict(kind="redemption.claimed", region="KS", actor=PROVIDER_STAFF,
             refs={"redemption": REDEMPTION, "voucher": VOUCHER, "enterprise": ENTERPRISE, "provider": PROVIDER},
             postings=[Posting(HELD_ACCOUNT, VOUCHER_ACCOUNT, RESERVED_FEN - CLAIMED_FEN)],
             data={"invoice_no": "SH-INV-2026-000417", "service_fee_fen": 2_800_000, "amount_fen": CLAIMED_FEN,
                   "reserved_fen": RESERVED_FEN}),
        dict(kind="redemption.confirmed", region="KS", actor=SME,
             refs={"redemption": REDEMPTION, "voucher": VOUCHER, "enterprise": ENTERPRISE, "provider": PROVIDER},
             data={"amount_fen": CLAIMED_FEN}),
        dict(kind="redemption.redeemed", region="KS", actor=KS_OFFICER,
             refs={"redemption": REDEMPTION, "voucher": VOUCHER, "enterprise": ENTERPRISE, "provider": PROVIDER},
             postings=[Posting(HELD_ACCOUNT, f"payable:KS:{PROVIDER}", CLAIMED_FEN)],
             data={"amount_fen": CLAIMED_FEN, "invoice_no": "SH-INV-2026-000417"}),
        dict(kind="voucher.voided", region="KS", actor=KS_OFFICER,
             refs={"voucher": VOUCHER, "enterprise": ENTERPRISE},
             postings=[Posting(VOUCHER_ACCOUNT, "budget:KS", FACE_FEN - CLAIMED_FEN)],
             data={"reason": "企业申请注销 / withdrawn at the enterprise's request", "returned_fen": FACE_FEN - CLAIMED_FEN}),
    ]
    return [Entry(seq=seq, ts=timestamp(seq), **spec) for seq, spec in enumerate(specs)]


def timestamp(seq: int) -> str:
    """Fixed, increasing RFC 3339 UTC times with microseconds, as the service writes them."""
    moment = START + timedelta(hours=5 * seq, minutes=17 * seq, seconds=seq, microseconds=1000 * seq + 250)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- building the vectors ---------------------------------------------------------

def _store(leaves: list[bytes]):
    nodes: dict = {}

    def read(wanted):
        return [nodes[tuple(node)] for node in wanted]

    for index, leaf in enumerate(leaves):
        for node, value in merkle.nodes_for_append(index, leaf, read):
            nodes[node] = value
    return read


def _flip(value: bytes, byte: int = 0) -> bytes:
    data = bytearray(value)
    data[byte] ^= 0x01
    return bytes(data)


def build_vectors() -> dict:
    keys = {region: region_key(region) for region in REGIONS}
    entries = log_entries()
    lines = [sign_entry(entry, keys[entry.region]) for entry in entries]
    leaves = [merkle.leaf_hash(line) for line in lines]
    read = _store(leaves)
    n = len(lines)
    roots = [merkle.root(size, read) for size in range(n + 1)]
    assert all(roots[size] == merkle.root_from_leaves(leaves[:size]) for size in range(n + 1))

    checkpoint = Checkpoint(ORIGIN, n, roots[n])
    signers = [(note_name(region), key.sign, key.public_key_raw) for region, key in sorted(keys.items())]
    note = sign_note(checkpoint.text(), signers)

    inclusion = [{"index": index, "tree_size": size, "leaf_hash": b64(leaves[index]), "root_hash": b64(roots[size]),
                  "hashes": [b64(h) for h in merkle.inclusion_proof(index, size, read)]}
                 for size in range(1, n + 1) for index in range(size)]
    consistency = [{"first": first, "second": second, "first_root": b64(roots[first]),
                    "second_root": b64(roots[second]),
                    "hashes": [b64(h) for h in merkle.consistency_proof(first, second, read)]}
                   for second in range(1, n + 1) for first in range(1, second + 1)]

    return {
        "format": FORMAT,
        "description": (
            "Test vectors for verifying the cross-region innovation voucher ledger offline. Generated by "
            "scripts/make_vectors.py with fixed, PUBLIC test keys (Ed25519 seed = SHA-256(\"vectors/<region>\")): "
            "never trust these keys for anything else. Hashes are base64 (standard alphabet, padded) as in the "
            "HTTP API. See schemas/README.md."),
        "conventions": {
            "entry": "JSON object, schemas/ledger-entry.schema.json; signed by the region's key (sig.key_id) with "
                     "Ed25519 over the RFC 8785 canonical bytes of the entry without its 'sig' member",
            "line": "exactly the RFC 8785 (JCS) canonical UTF-8 bytes of the whole signed entry; the export "
                    "(GET /ledger/export) is these lines, each followed by a newline, in seq order",
            "leaf_hash": "SHA-256(0x00 || line), RFC 9162 section 2.1.1",
            "node_hash": "SHA-256(0x01 || left || right)",
            "root_hash": "RFC 9162 MTH of the first tree_size leaves; the empty tree's root is SHA-256(\"\")",
            "inclusion_proofs": "RFC 9162 section 2.1.3 audit paths, verified as in section 2.1.3.2",
            "consistency_proofs": "RFC 9162 section 2.1.4 proofs, verified as in section 2.1.4.2",
            "checkpoint": "c2sp.org/tlog-checkpoint text in a c2sp.org/signed-note, cosigned by every region's "
                          "key; open it with the note_key strings of 'keys' (golang.org/x/mod/sumdb/note format)",
        },
        "origin": ORIGIN,
        "keys": published_keys(keys),
        "entries": [{"seq": entry.seq, "line": line.decode("utf-8"), "leaf_hash": b64(leaf),
                     "leaf_hash_hex": leaf.hex()}
                    for entry, line, leaf in zip(entries, lines, leaves)],
        "export": "".join(line.decode("utf-8") + "\n" for line in lines),
        "roots": [{"tree_size": size, "root_hash": b64(root), "root_hash_hex": root.hex()}
                  for size, root in enumerate(roots)],
        "inclusion_proofs": inclusion,
        "consistency_proofs": consistency,
        "checkpoint": {"tree_size": n, "root_hash": b64(roots[n]), "text": checkpoint.text(), "note": note},
        "invalid": _invalid_items(keys, entries, lines, leaves, roots, read, note),
    }


def _invalid_items(keys, entries, lines, leaves, roots, read, note) -> list[dict]:
    """Deliberately wrong items: a verifier must reject every one."""
    n = len(lines)
    issued = next(i for i, e in enumerate(entries) if e.kind == "voucher.issued")
    tampered = json.loads(lines[issued])
    tampered["postings"][0]["amount"] += 100  # one more CNY out of the budget, signature unchanged
    signed = json.loads(lines[issued])
    reordered = {"v": signed.pop("v"), "seq": signed.pop("seq"), **signed}
    wrong_key_entry = sign_entry(entries[issued], keys["SH"])  # a KS entry signed with Shanghai's key...
    wrong_key = json.loads(wrong_key_entry)
    wrong_key["sig"]["key_id"] = keys["KS"].key_id  # ...claiming to be Kunshan's

    index, size = 5, n
    proof = merkle.inclusion_proof(index, size, read)
    first, second = 3, n
    cproof = merkle.consistency_proof(first, second, read)

    stranger = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"vectors/stranger").digest())
    stranger_public = public_raw(stranger.public_key())
    forged_text = Checkpoint(ORIGIN, n + 1, roots[n]).text()
    text_end = note.index("\n\n") + 1

    def entry_item(what, line: bytes, reason):
        return {"type": "entry_line", "what": what, "line": line.decode("utf-8"), "reason": reason, "valid": False}

    return [
        entry_item("voucher.issued with its posting amount raised by 100 fen", canonical_bytes(tampered),
                   "signature does not verify with the published key"),
        entry_item("voucher.issued with a valid signature, but members out of canonical order and spaced",
                   json.dumps(reordered, ensure_ascii=False).encode("utf-8"),
                   "line is not the RFC 8785 canonical form of itself"),
        entry_item("voucher.issued signed by SH's key but naming KS's key_id", canonical_bytes(wrong_key),
                   "signature does not verify with the key named by sig.key_id"),
        {"type": "inclusion_proof", "what": "a bit of hash 1 flipped", "valid": False,
         "index": index, "tree_size": size, "leaf_hash": b64(leaves[index]), "root_hash": b64(roots[size]),
         "hashes": [b64(h) for h in proof[:1] + [_flip(proof[1])] + proof[2:]],
         "reason": "computed root differs"},
        {"type": "inclusion_proof", "what": "the right proof for index 5 presented for index 4", "valid": False,
         "index": index - 1, "tree_size": size, "leaf_hash": b64(leaves[index]), "root_hash": b64(roots[size]),
         "hashes": [b64(h) for h in proof], "reason": "computed root differs"},
        {"type": "inclusion_proof", "what": "last hash dropped", "valid": False,
         "index": index, "tree_size": size, "leaf_hash": b64(leaves[index]), "root_hash": b64(roots[size]),
         "hashes": [b64(h) for h in proof[:-1]], "reason": "proof too short for the tree size"},
        {"type": "consistency_proof", "what": "a bit of hash 0 flipped", "valid": False,
         "first": first, "second": second, "first_root": b64(roots[first]), "second_root": b64(roots[second]),
         "hashes": [b64(h) for h in [_flip(cproof[0])] + cproof[1:]], "reason": "computed roots differ"},
        {"type": "consistency_proof", "what": "first and second roots swapped", "valid": False,
         "first": first, "second": second, "first_root": b64(roots[second]), "second_root": b64(roots[first]),
         "hashes": [b64(h) for h in cproof], "reason": "computed roots differ"},
        {"type": "checkpoint", "what": "tree size raised by one, signatures copied from the real checkpoint",
         "valid": False, "note": forged_text + note[text_end:], "reason": "no signature verifies"},
        {"type": "checkpoint", "what": "signed only by a key that is not published", "valid": False,
         "note": sign_note(Checkpoint(ORIGIN, n, roots[n]).text(),
                           [(note_name("KS"), stranger.sign, stranger_public)]),
         "reason": "no signature by a published key"},
    ]


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
            print(f"{args.output} is out of date: run scripts/make_vectors.py", file=sys.stderr)
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
