"""Signed reconciliation statements: signing, and verifying offline.

    python -m voucher_service.ledger.statement STATEMENT --keys KEYS

STATEMENT is the JSON served by GET /api/v1/regions/{code}/reconciliation and
KEYS the JSON served by GET /api/v1/ledger/keys. Like the rest of this package
it needs the standard library, PyNaCl and `cryptography` only: no Flask, no
database. The signature is checked by `signing.verify_detached`, as every
signature in the service is.

A statement is a JSON object; its `signature` is
`{"key_id": ..., "alg": "ed25519", "value": base64}`, an Ed25519 signature by
the region's key over the RFC 8785 canonical bytes of the statement without
`signature`. It verifies when the key is published, is a key of the
statement's region, was valid at `generated_at`, and the signature checks;
and it is *clean* when, besides, every one of its `checks` is ok.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import sys

from .canonical import canonical_bytes
from .entry import SIG_FIELDS, SIGNATURE_ALG
from .signing import verify_detached

# The entry verifier's checks of a shown value and of a timestamp, so that both
# tools accept the same times and quote bad values alike.
from .verify.common import VerificationError, b64, check_timestamp, show, strict_b64
from .verify.files import read_json
from .verify.keys import load_keys

REQUIRED_FIELDS = ("region", "period", "period_start", "period_end", "generated_at", "totals", "positions",
                   "checks", "ledger", "signature")
SHOWN_FAILURES = 10


class StatementError(ValueError):
    """The statement does not verify, or is not a statement at all."""


class StatementChecksFailed(StatementError):
    """The signature verifies, but the statement itself reports failed checks:
    the service signed a ledger whose balances or tables do not agree."""

    def __init__(self, message: str, failed: list[dict]):
        super().__init__(message)
        self.failed = failed


def _plain(value) -> str:
    """A short printable string as it is; anything else shown as a value."""
    return value if isinstance(value, str) and value.isprintable() and 0 < len(value) <= 40 else show(value)


def unsigned_bytes(statement: dict) -> bytes:
    """The signed message: canonical bytes of the statement without `signature`."""
    try:
        return canonical_bytes({k: v for k, v in statement.items() if k != "signature"})
    except (TypeError, RecursionError) as exc:
        raise StatementError(f"the statement is not canonical JSON (integers, strings, objects only): {exc}") from None


def sign_statement(unsigned: dict, key) -> dict:
    """`unsigned` with a `signature` by `key` (a ledger SigningKey) added."""
    if "signature" in unsigned:
        raise ValueError("the statement is already signed")
    signature = key.sign(unsigned_bytes(unsigned))
    return {**unsigned, "signature": {"key_id": key.key_id, "alg": SIGNATURE_ALG, "value": b64(signature)}}


def _timestamp(value, what: str) -> str:
    def fail(why):
        raise StatementError(why)
    return check_timestamp(value, what, fail)


def _signature(statement: dict) -> tuple[str, bytes]:
    sig = statement["signature"]
    if not isinstance(sig, dict) or set(sig) != SIG_FIELDS:
        raise StatementError("signature must be an object with exactly key_id, alg and value")
    if sig["alg"] != SIGNATURE_ALG:
        raise StatementError(f"signature alg {show(sig['alg'])} is not {SIGNATURE_ALG!r}")
    if not isinstance(sig["key_id"], str) or not sig["key_id"]:
        raise StatementError(f"signature key_id {show(sig['key_id'])} is not a key id")
    value = sig["value"]
    # Canonical base64 only: one signature, one spelling.
    raw = strict_b64(value) if isinstance(value, str) else None
    if raw is None or len(raw) != 64:
        raise StatementError("signature value is not the canonical base64 of a 64-byte Ed25519 signature")
    return sig["key_id"], raw


def _ledger(statement: dict) -> dict:
    ledger = statement["ledger"]
    size = ledger.get("tree_size") if isinstance(ledger, dict) else None
    root = ledger.get("root") if isinstance(ledger, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise StatementError(f"ledger.tree_size {show(size)} is not a tree size")
    try:
        raw = base64.b64decode(root, validate=True) if isinstance(root, str) else b""
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise StatementError(f"ledger.root {show(root)} is not the base64 of a 32-byte hash")
    return ledger


def _failed_checks(checks) -> list[dict]:
    if not isinstance(checks, list) or not checks:
        raise StatementError("checks must be a non-empty list")
    failed = []
    for position, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("name"), str) \
                or not isinstance(check.get("ok"), bool):
            raise StatementError(f"check #{position} must be an object with a name and a boolean ok")
        # ok is re-derived, not taken on trust: a check says what it compared.
        consistent = "expected" not in check or "actual" not in check or \
            (check["expected"] == check["actual"]) == check["ok"]
        if not check["ok"] or not consistent:
            failed.append(check)
    return failed


def _describe(check: dict) -> str:
    text = f"{check['name']} (expected {check.get('expected')!r}, actual {check.get('actual')!r})"
    if check["ok"]:
        text += " is marked ok but expected and actual differ"
    detail = check.get("detail")
    if isinstance(detail, str) and detail:
        text += f": {detail}"
    return text


def verify_statement(statement: dict, keys_json: dict) -> str:
    """Verify a statement with the published keys; return a one-line summary.

    Raises StatementError when the statement is malformed, is signed by an
    unpublished key, by a key of another region, by a key not valid at
    `generated_at`, or its signature does not verify; and
    StatementChecksFailed (a StatementError) when the signature verifies but
    some of its checks failed, naming each with its expected and actual value.
    """
    if not isinstance(statement, dict):
        raise StatementError("a statement must be a JSON object")
    missing = [name for name in REQUIRED_FIELDS if name not in statement]
    if missing:
        raise StatementError(f"not a reconciliation statement: missing {', '.join(missing)}")
    region = statement["region"]
    if not isinstance(region, str) or not region:
        raise StatementError(f"region {show(region)} is not a region code")
    generated_at = _timestamp(statement["generated_at"], "generated_at")
    key_id, signature = _signature(statement)
    ledger = _ledger(statement)
    message = unsigned_bytes(statement)

    try:
        keys = load_keys(keys_json)
    except VerificationError as exc:
        raise StatementError(f"the keys do not load: {exc.why}") from None
    key = keys.by_id.get(key_id)
    if key is None:
        raise StatementError(f"signed by key {show(key_id)}, which is not published")
    if key.region != region:
        raise StatementError(f"the statement is for region {_plain(region)} but signed by key {key.key_id} of "
                             f"region {key.region}")
    if not key.valid_at(generated_at):
        raise StatementError(f"generated at {generated_at} but key {key.key_id} is {key.validity()}")
    if not verify_detached(signature, message, key.public_key_raw):
        raise StatementError(f"the signature by key {key.key_id} does not verify: the statement was changed "
                             f"after signing or signed by another key")

    checks = statement["checks"]
    failed = _failed_checks(checks)
    period = statement["period"]
    if failed:
        shown = "; ".join(_describe(c) for c in failed[:SHOWN_FAILURES])
        more = f"; and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
        raise StatementChecksFailed(
            f"the statement for {_plain(region)} {_plain(period)} is validly signed by key {key.key_id}, but "
            f"{len(failed)} of its {len(checks)} checks failed: {shown}{more}", failed)
    return (f"ok: reconciliation statement for {_plain(region)} {_plain(period)} signed by key {key.key_id} "
            f"(valid at {generated_at}), ledger tree size {ledger['tree_size']}, all {len(checks)} checks ok")


def verify_statement_files(statement_path: str, keys_path: str) -> str:
    try:
        keys_json = read_json(keys_path, "keys")
        statement = read_json(statement_path, "statement")
    except VerificationError as exc:
        raise StatementError(f"{exc.where}: {exc.why}") from None
    return verify_statement(statement, keys_json)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m voucher_service.ledger.statement",
        description="Verify a signed reconciliation statement offline, with the public keys only.")
    parser.add_argument("statement", help="the JSON served by GET /api/v1/regions/{code}/reconciliation")
    parser.add_argument("--keys", required=True, help="the JSON served by GET /api/v1/ledger/keys")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(verify_statement_files(args.statement, args.keys))
    except StatementError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, UnicodeError, OSError, RecursionError) as exc:
        # Not expected (malformed input is a StatementError), but an auditor's
        # file must never end in a traceback.
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
