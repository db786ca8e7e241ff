"""C2SP signed-note and tlog-checkpoint, with Ed25519 signatures.

Formats (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) as Go's
golang.org/x/mod/sumdb/note reads them:

    <origin>\\n<tree size>\\n<base64 root hash>\\n      the checkpoint: the note text
    \\n                                              a blank line
    — <key name> <base64(key hash[4] || signature[64])>\\n    one line per signer

The key hash is SHA-256(name || "\\n" || 0x01 || public key)[:4]; a verifier
key is published as "<name>+<hex key hash>+<base64(0x01 || public key)>".
A receipt's c2sp.org/tlog-proof starts with TLOG_PROOF_HEADER.

Signatures are checked by `signing.verify_detached` (libsodium), as every
signature in the service is; see signing.py for why that stays compatible
with stock Go tooling.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from .signing import verify_detached

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash and a space
MAX_NOTE_BYTES = 1_000_000
MAX_SIGNATURES = 100
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"  # first line of a c2sp.org/tlog-proof (receipts)


class NoteError(ValueError):
    pass


def check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise NoteError(f"invalid note key name {name!r}")


def key_hash(name: str, public_key_raw: bytes, alg: int = ALG_ED25519) -> bytes:
    """SHA-256(name || "\\n" || signature type || key)[:4]: the signed-note key
    hash, and with type 0x04 a cosignature/v1 key ID (cosignature.py)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key_raw).digest()[:4]


def verifier_key(name: str, public_key_raw: bytes, alg: int = ALG_ED25519) -> str:
    check_key_name(name)
    return (f"{name}+{key_hash(name, public_key_raw, alg).hex()}+"
            f"{base64.b64encode(bytes([alg]) + public_key_raw).decode('ascii')}")


def parse_verifier_key(text: str, alg: int = ALG_ED25519) -> tuple[str, bytes, bytes]:
    """(name, key hash, 32-byte Ed25519 key) of a vkey `name+hexhash+base64(type || key)`
    whose signature type is `alg`, its hash checked."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key is name+hash+key")
    name, hash_hex, key_b64 = parts
    check_key_name(name)
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hash_hex):
        raise NoteError("a verifier key hash is 8 hex digits")
    try:
        expected_hash = bytes.fromhex(hash_hex)
        key = base64.b64decode(key_b64, validate=True)
    except (ValueError, binascii.Error):
        raise NoteError("malformed verifier key") from None
    if len(key) != 33 or key[0] != alg:
        raise NoteError(f"not a verifier key of signature type 0x{alg:02x} with a 32-byte Ed25519 key")
    if key_hash(name, key[1:], alg) != expected_hash:
        raise NoteError("verifier key hash does not match its key")
    return name, expected_hash, key[1:]


@dataclass(frozen=True)
class Verifier:
    name: str
    key_hash: bytes
    public_key_raw: bytes

    @classmethod
    def parse(cls, text: str) -> "Verifier":
        return cls(*parse_verifier_key(text))

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify_detached(signature, message, self.public_key_raw)


def sign_note(text: str, signers) -> str:
    """`signers`: (name, sign(bytes) -> bytes, public_key_raw) for each signature."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    lines = [text, "\n"]
    for name, sign, public_key_raw in signers:
        check_key_name(name)
        signature = sign(text.encode("utf-8"))
        blob = base64.b64encode(key_hash(name, public_key_raw) + signature).decode("ascii")
        lines.append(f"{SIGNATURE_PREFIX}{name} {blob}\n")
    return "".join(lines)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signatures (nothing verified yet)."""
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise NoteError("a signed note must be valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("a signed note has no control characters but newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a signed note needs a blank line before its signatures")
    text, block = note[: split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, blob = line[len(SIGNATURE_PREFIX):].rpartition(" ")
        check_key_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("malformed signature") from None
        # Other signature types (a witness cosignature is 76 bytes) are kept,
        # as Go's note.Open keeps them; a known Ed25519 key checks the length.
        if len(raw) < 5:
            raise NoteError("malformed signature")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise NoteError("a signed note has 1 to 100 signatures")
    return text, signatures


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """The note text and the verifiers whose signatures verify.

    A signature by a known key that does not verify is an error (as in Go's
    note.Open); signatures by unknown keys are ignored, and at least one known
    signature must verify.
    """
    text, signatures = parse_note(note)
    known = {(v.name, v.key_hash): v for v in verifiers}
    good, seen = [], set()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_hash))
        # Like Go's note.Open: unknown keys are skipped, and so are repeats of a key.
        if verifier is None or (sig.name, sig.key_hash) in seen:
            continue
        seen.add((sig.name, sig.key_hash))
        if not verifier.verify(text.encode("utf-8"), sig.signature):
            raise NoteError(f"invalid signature by {sig.name}")
        if verifier not in good:
            good.append(verifier)
    if not good:
        raise NoteError("no signature by a known key")
    return text, good


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode('ascii')}\n"

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is origin, size and root hash, each on its own line")
        origin, size_text, root_b64 = lines[0], lines[1], lines[2]
        if not origin or not (size_text.isascii() and size_text.isdigit()) or (
                size_text != "0" and size_text.startswith("0")):
            raise NoteError("malformed checkpoint origin or size")
        if len(size_text) > 20 or int(size_text) >= 1 << 64:
            raise NoteError("checkpoint size out of range")
        try:
            root_hash = base64.b64decode(root_b64, validate=True)
        except (ValueError, binascii.Error):
            raise NoteError("malformed checkpoint root hash") from None
        if len(root_hash) != 32:
            raise NoteError("checkpoint root hash must be 32 bytes")
        return cls(origin, int(size_text), root_hash)
