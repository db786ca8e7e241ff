"""Write schemas/vectors/policy-vectors.json (and every-region.policy): test
vectors for witnessed checkpoints (DESIGN §10) — the log key, witnesses'
cosignature/v1 keys, policy files, checkpoint notes signed by the log key and
cosigned by witnesses, and the verdict a verifier must reach on each.

    .venv/bin/python scripts/make_policy_vectors.py           # (re)write the files
    .venv/bin/python scripts/make_policy_vectors.py --check   # exit 1 if one would change

They extend schemas/vectors/ledger-vectors.json (scripts/make_vectors.py):
the same thirteen entries, region keys and roots, with the deployment
upgraded to witnessed checkpoints at the time of entry 7. Deterministic, as
those are: keys from fixed seeds (SHA-256("vectors/log"),
SHA-256("vectors/witness/<name>")), fixed cosignature timestamps, and
deterministic Ed25519. tests/unit/ledger/test_vectors_policy.py fails when
the committed files drift from what this script generates. The keys are
public test keys: never use them for anything else.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere: import the service from this checkout
    sys.path.insert(0, REPO)

from voucher_service.ledger import SigningKey
from voucher_service.ledger.cosignature import add_signature_lines, cosign, vkey
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.signing import key_fingerprint, public_raw


def _load_make_vectors():
    spec = importlib.util.spec_from_file_location("make_vectors", os.path.join(REPO, "scripts", "make_vectors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_vectors = _load_make_vectors()

OUTPUT = os.path.join(REPO, "schemas", "vectors", "policy-vectors.json")
POLICY_FILE = os.path.join(REPO, "schemas", "vectors", "every-region.policy")
FORMAT = "vouchers.example/policy-vectors/v1"
ORIGIN = make_vectors.ORIGIN
UPGRADE_SEQ = 7                   # the deployment moved to witnessed checkpoints at this entry's time
COSIGNED_AT = 1_772_500_000       # cosignature timestamps (seconds since the epoch), after every entry
# Policy name -> the witness's own vkey name (the name in its signature lines).
WITNESSES = {"sh": "witness.sh.example", "ks": "witness.ks.example", "wj": "witness.wj.example",
             "ext": "witness.audit.example"}
UNLISTED = "witness.unlisted.example"  # a real witness that no policy lists


def private_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"vectors/{label}".encode()).digest())


def log_key() -> SigningKey:
    key = private_key("log")
    return SigningKey(f"log-{key_fingerprint(public_raw(key.public_key()))}", key)


def witness_key(vkey_name: str) -> SigningKey:
    key = private_key(f"witness/{vkey_name}")
    return SigningKey(vkey_name, key)


def policies(log: SigningKey) -> dict[str, str]:
    log_line = f"log {verifier_key(ORIGIN, log.public_key_raw)} http://127.0.0.1:8000\n"

    def witness_lines(*names):
        return "".join(f"witness {name} {vkey(WITNESSES[name], witness_key(WITNESSES[name]).public_key_raw)} "
                       f"http://127.0.0.1:{8101 + list(WITNESSES).index(name)}\n" for name in names)

    return {
        "every-region": ("# Every region's witness must cosign: DESIGN §10's promise.\n" + log_line
                         + witness_lines("sh", "ks", "wj") + "group regions all sh ks wj\nquorum regions\n"),
        "two-of-three": (log_line + witness_lines("sh", "ks", "wj")
                         + "group regions 2 sh ks wj   # any two regions\nquorum regions\n"),
        "nested": (log_line + witness_lines("sh", "ks", "wj", "ext")
                   + "group regions 2 sh ks wj\ngroup outside any ext\ngroup both all regions outside\n"
                     "quorum both\n"),
        "log-only": "# The log's own signature, no witness: what a legacy client trusted, less.\n"
                    + log_line + "quorum none\n",
        "one-witness": log_line + witness_lines("ext") + "quorum ext\n",
    }


def build_vectors() -> dict:
    ledger = make_vectors.build_vectors()
    log = log_key()
    regions = {region: make_vectors.region_key(region) for region in make_vectors.REGIONS}
    roots = {r["tree_size"]: r["root_hash"] for r in ledger["roots"]}
    upgraded_at = json.loads(ledger["entries"][UPGRADE_SEQ]["line"])["ts"]
    n = ledger["checkpoint"]["tree_size"]

    def text(size: int, origin: str = ORIGIN) -> str:
        return f"{origin}\n{size}\n{roots[size]}\n"

    def log_signed(body: str) -> str:
        return sign_note(body, [(ORIGIN, log.sign, log.public_key_raw)])

    def region_signed(body: str) -> str:
        return sign_note(body, [(make_vectors.note_name(r), k.sign, k.public_key_raw) for r, k in sorted(regions.items())])

    def cosigned(note: str, *names: str, over: str | None = None) -> str:
        body = note[:note.index("\n\n") + 1]
        for offset, name in enumerate(names):
            key = witness_key(WITNESSES.get(name, name))
            line = cosign(over or body, key.key_id, key.sign, key.public_key_raw, COSIGNED_AT + offset)
            note = add_signature_lines(note, line)
        return note

    full = text(n)
    other_tree = log_signed(text(n - 1))
    stranger = private_key("stranger")
    checkpoints = {
        "all-four": cosigned(log_signed(full), "sh", "ks", "wj", "ext"),
        "wj-missing": cosigned(log_signed(full), "sh", "ks", "ext"),
        "sh-only": cosigned(log_signed(full), "sh"),
        "unknown-lines-too": add_signature_lines(
            cosigned(log_signed(full), "sh", "ks", "wj", "ext", UNLISTED),
            sign_note(full, [("someone.example/log", stranger.sign, public_raw(stranger.public_key()))])
            .split("\n\n", 1)[1]),
        "bad-ks-cosignature": cosigned(cosigned(log_signed(full), "sh", "wj", "ext"), "ks", over=text(n - 1)),
        "regions-not-log": cosigned(region_signed(full), "sh", "ks", "wj", "ext"),
        "log-signature-of-another-tree": cosigned(full + "\n" + other_tree.split("\n\n", 1)[1], "sh", "ks", "wj",
                                                  "ext"),
        "another-origin": cosigned(log_signed(text(n, "vouchers.example/other-ledger")), "sh", "ks", "wj", "ext"),
    }
    keys = {"origin": ORIGIN, "keys": [{**key, "purpose": "entry"} for key in ledger["keys"]["keys"]] + [
        {"key_id": log.key_id, "region": None, "alg": "ed25519", "public_key": make_vectors.b64(log.public_key_raw),
         "note_name": ORIGIN, "note_key": verifier_key(ORIGIN, log.public_key_raw), "valid_from": upgraded_at,
         "valid_until": None, "purpose": "log"}]}
    return {
        "format": FORMAT,
        "description": (
            "Test vectors for witnessed checkpoints and verification policies (DESIGN §10), extending "
            "ledger-vectors.json: the same entries, region keys and roots, the deployment upgraded to witnessed "
            "checkpoints at entry 7's time. Generated by scripts/make_policy_vectors.py with fixed, PUBLIC test keys "
            "(Ed25519 seeds SHA-256(\"vectors/log\") and SHA-256(\"vectors/witness/<vkey name>\")): never trust "
            "them for anything else. See schemas/README.md."),
        "conventions": {
            "policy": "one directive a line, '#' comments: log VKEY [URL]; witness NAME VKEY [URL]; "
                      "group NAME k|all|any MEMBER...; quorum NAME|none (docs/ledger.md)",
            "log_signature": "c2sp.org/signed-note Ed25519 signature by the log key, whose note name is the origin",
            "cosignature": "c2sp.org/tlog-cosignature cosignature/v1: key ID SHA-256(name || 0x0A || 0x04 || key)"
                           "[:4], signature over 'cosignature/v1\\ntime <t>\\n' + the checkpoint text",
            "keys_rule": "a checkpoint covering an entry whose ts >= the log key's valid_from must carry the log "
                         "key's signature; one covering only older entries may instead be signed by every region "
                         "with a key valid at its newest entry",
        },
        "origin": ORIGIN,
        "upgraded_at": upgraded_at,
        "keys": keys,
        "log": {"key_id": log.key_id, "note_key": verifier_key(ORIGIN, log.public_key_raw)},
        "witnesses": [{"policy_name": name, "vkey": vkey(vkey_name, witness_key(vkey_name).public_key_raw)}
                      for name, vkey_name in WITNESSES.items()]
                     + [{"policy_name": None, "vkey": vkey(UNLISTED, witness_key(UNLISTED).public_key_raw)}],
        "policies": policies(log),
        "checkpoints": checkpoints,
        "policy_verdicts": _policy_verdicts(),
        "keys_verdicts": [
            {"what": "a legacy checkpoint of entries 0-6, signed by every region", "valid": True,
             "note": region_signed(text(UPGRADE_SEQ)), "tree_size": UPGRADE_SEQ, "signed_by": "regions"},
            {"what": "the same tree signed by the log key", "valid": True, "note": log_signed(text(UPGRADE_SEQ)),
             "tree_size": UPGRADE_SEQ, "signed_by": "log"},
            {"what": "entries 0-7 signed by every region: entry 7 is at the upgrade", "valid": False,
             "note": region_signed(text(UPGRADE_SEQ + 1)), "tree_size": UPGRADE_SEQ + 1,
             "reason": "not signed by the log key"},
            {"what": "the whole tree signed by every region (ledger-vectors' checkpoint): a fork the operator, "
                     "holding every region key, could sign", "valid": False, "note": ledger["checkpoint"]["note"],
             "tree_size": n, "reason": "not signed by the log key"},
            {"what": "the whole tree, log-signed and cosigned", "valid": True, "note": checkpoints["all-four"],
             "tree_size": n, "signed_by": "log"},
            {"what": "a log signature of another tree", "valid": False,
             "note": checkpoints["log-signature-of-another-tree"], "tree_size": n, "reason": "does not verify"},
        ],
    }


# What each policy makes of each checkpoint: "ok" with the witnesses (policy names) that cosigned, or why
# not. Written out by hand, not computed: a verifier must reach these verdicts.
_CHECKPOINT_FAILURES = {
    "regions-not-log": "no log signature",
    "log-signature-of-another-tree": "invalid log signature",
    "another-origin": "origin is not the log key's",
}
_VERDICTS = {
    #                     every-region         two-of-three       nested                       log-only  one-witness
    "all-four":          (["sh", "ks", "wj"], ["sh", "ks", "wj"], ["sh", "ks", "wj", "ext"], [], ["ext"]),
    "wj-missing":        ("quorum not met",   ["sh", "ks"],       ["sh", "ks", "ext"],        [], ["ext"]),
    "sh-only":           ("quorum not met",   "quorum not met",   "quorum not met",           [], "quorum not met"),
    "unknown-lines-too": (["sh", "ks", "wj"], ["sh", "ks", "wj"], ["sh", "ks", "wj", "ext"], [], ["ext"]),
    "bad-ks-cosignature": ("invalid cosignature", "invalid cosignature", "invalid cosignature", [], ["ext"]),
}
_POLICY_ORDER = ("every-region", "two-of-three", "nested", "log-only", "one-witness")


def _policy_verdicts() -> list[dict]:
    verdicts = []
    for checkpoint, row in list(_VERDICTS.items()) + [(c, (why,) * 5) for c, why in _CHECKPOINT_FAILURES.items()]:
        for policy, verdict in zip(_POLICY_ORDER, row):
            if isinstance(verdict, list):
                verdicts.append({"policy": policy, "checkpoint": checkpoint, "valid": True, "cosigned": verdict})
            else:
                verdicts.append({"policy": policy, "checkpoint": checkpoint, "valid": False, "reason": verdict})
    return verdicts


def render(vectors: dict) -> bytes:
    return (json.dumps(vectors, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def outputs() -> dict[str, bytes]:
    vectors = build_vectors()
    return {OUTPUT: render(vectors), POLICY_FILE: vectors["policies"]["every-region"].encode("utf-8")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = 0
    for path, data in outputs().items():
        try:
            with open(path, "rb") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if args.check:
            if current != data:
                print(f"{path} is out of date: run scripts/make_policy_vectors.py", file=sys.stderr)
                stale = 1
            continue
        if current != data:
            with open(path, "wb") as handle:
                handle.write(data)
        print(f"wrote {path}" if current != data else f"{path} unchanged")
    return stale


if __name__ == "__main__":
    sys.exit(main())
