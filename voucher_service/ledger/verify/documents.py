"""Offline: is this file the evidence a ledger entry names? (DESIGN §9)

    vouchers verify-document FILE --entry ENTRY.json [--keys KEYS.json]

The file's SHA-256 must be among the entry's documents: `data.documents` of a
`redemption.claimed` entry (the evidence the claim rests on), or `data.sha256`
of a `redemption.document_added` entry. With the published keys, the entry's
signature is checked too, exactly as the export verifier checks a line
(entries.check_line on the entry's canonical bytes): then the file is proven
to be the one the region signed for. ENTRY.json is as served by GET
/ledger/entries/{seq} (or one line of the export). Standard library and the
ledger package only.
"""
from __future__ import annotations

import hashlib

from ..canonical import canonical_bytes
from .common import VerificationError, show
from .entries import check_line
from .files import read_json
from .keys import load_keys_file

READ_BYTES = 1 << 20


def file_sha256(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(READ_BYTES):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror or exc}", where="document") from None
    return digest.hexdigest(), size


def entry_documents(entry: dict) -> list[dict]:
    """The {kind, sha256} an entry names as evidence."""
    data = entry.get("data")
    if not isinstance(data, dict):
        raise VerificationError(f"the entry's data is {show(data)}, not an object", where="entry")
    if entry.get("kind") == "redemption.document_added":
        documents = [{"kind": data.get("kind"), "sha256": data.get("sha256")}]
    else:
        documents = data.get("documents")
    if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
        raise VerificationError(f"the entry (kind {show(entry.get('kind'))}) lists no documents: "
                                "data.documents is missing or not a list of objects", where="entry")
    return documents


def verify_document(document_path: str, entry_path: str, keys_path: str | None = None) -> dict:
    sha256, size = file_sha256(document_path)
    entry = read_json(entry_path, "entry")
    if not isinstance(entry, dict):
        raise VerificationError(f"{entry_path} is not a ledger entry (a JSON object)", where="entry")
    documents = entry_documents(entry)
    named = [d for d in documents if d.get("sha256") == sha256]
    if not named:
        raise VerificationError(
            f"the file's SHA-256 {sha256} is not among the {len(documents)} document(s) of entry seq "
            f"{show(entry.get('seq'))} ({show(entry.get('kind'))})", where="document")
    result = {"sha256": sha256, "size_bytes": size, "kind": named[0].get("kind"), "entry": entry,
              "signature": None}
    if keys_path is not None:
        keys = load_keys_file(keys_path)
        seq = entry.get("seq")
        if type(seq) is not int or seq < 0:
            raise VerificationError(f"the entry's seq is {show(seq)}, not a number", where="entry")
        try:
            line = canonical_bytes(entry)
        except (ValueError, TypeError) as exc:
            raise VerificationError(f"the entry has no canonical form: {exc}", where="entry") from None
        check_line(line, seq, keys)
        result["signature"] = entry["sig"]["key_id"]
    return result


def document_text(result: dict) -> str:
    entry = result["entry"]
    redemption = (entry.get("refs") or {}).get("redemption")
    lines = [f"OK: {result['sha256']} ({result['size_bytes']} bytes) is the {result['kind']} named by entry seq "
             f"{entry.get('seq')} ({entry.get('kind')}" + (f", redemption {redemption})" if redemption else ")")]
    if result["signature"]:
        lines.append(f"  signature: verified, key {result['signature']} of region {entry.get('region')}, "
                     f"valid at {entry.get('ts')}")
    else:
        lines.append("  signature: not checked (pass --keys with the JSON of GET /ledger/keys)")
    return "\n".join(lines)
