"""C2SP tlog-cosignature `cosignature/v1`: a witness's timestamped Ed25519
signature on a checkpoint (c2sp.org/tlog-cosignature).

    key ID     SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]
    vkey       <name>+<hex key ID>+base64(0x04 || public key)
    signature  base64(key ID || u64 big-endian timestamp || 64-byte Ed25519 signature)
    message    "cosignature/v1\\n" "time <timestamp>\\n" <the checkpoint's note text>

The signature line sits in the checkpoint's signed note beside the log's own
(note.py); a note verifier that does not know the witness key skips it, as
the spec asks. Checks go through `signing.verify_detached`, as every
signature in the project does.
"""
from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from .note import SIGNATURE_PREFIX, NoteError, check_key_name, key_hash, parse_note, parse_verifier_key, verifier_key
from .signing import verify_detached

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1
SIGNATURE_BYTES = 4 + 8 + 64


def key_id(name: str, public_key_raw: bytes) -> bytes:
    return key_hash(name, public_key_raw, ALG_COSIGNATURE_V1)


def vkey(name: str, public_key_raw: bytes) -> str:
    return verifier_key(name, public_key_raw, ALG_COSIGNATURE_V1)


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("a cosignature timestamp is between 0 and 2^63 - 1")
    if not checkpoint_text.endswith("\n"):
        raise NoteError("a checkpoint's note text ends with a newline")
    return (HEADER + f"time {timestamp}\n" + checkpoint_text).encode("utf-8")


@dataclass(frozen=True)
class Cosigner:
    """A witness's public key as a client configures it: name and Ed25519 key."""
    name: str
    public_key_raw: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key_raw)

    @property
    def vkey(self) -> str:
        return vkey(self.name, self.public_key_raw)

    @classmethod
    def parse(cls, text: str) -> "Cosigner":
        """A vkey with signature type 0x04."""
        name, _key_id, key = parse_verifier_key(text.strip(), ALG_COSIGNATURE_V1)
        return cls(name, key)

    def verify(self, checkpoint_text: str, signature_blob: bytes) -> int | None:
        """The timestamp of a valid cosignature blob (key ID, timestamp,
        signature) by this key on the checkpoint text; None otherwise."""
        if len(signature_blob) != SIGNATURE_BYTES or signature_blob[:4] != self.key_id:
            return None
        (timestamp,) = struct.unpack(">Q", signature_blob[4:12])
        if timestamp > MAX_TIMESTAMP:
            return None
        message = signed_message(checkpoint_text, timestamp)
        return timestamp if verify_detached(signature_blob[12:], message, self.public_key_raw) else None


def cosign(checkpoint_text: str, name: str, sign, public_key_raw: bytes, timestamp: int) -> str:
    """The note signature line of a cosignature: `sign(bytes) -> 64 bytes`."""
    check_key_name(name)
    signature = sign(signed_message(checkpoint_text, timestamp))
    blob = key_id(name, public_key_raw) + struct.pack(">Q", timestamp) + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def cosignatures(note: str, cosigners: list[Cosigner]) -> dict[str, int]:
    """The witnesses (by name) whose cosignature on the note verifies, with its
    timestamp. Lines by other keys are ignored; a line that claims a known
    witness's key ID and does not verify is an error, as in note.open_note."""
    text, signatures = parse_note(note)
    known = {(c.name, c.key_id): c for c in cosigners}
    good: dict[str, int] = {}
    for sig in signatures:
        cosigner = known.get((sig.name, sig.key_hash))
        if cosigner is None:
            continue
        timestamp = cosigner.verify(text, sig.key_hash + sig.signature)
        if timestamp is None:
            raise NoteError(f"invalid cosignature by witness {sig.name}")
        good.setdefault(cosigner.name, timestamp)
    return good


def add_signature_lines(note: str, lines: str) -> str:
    """The note with signature lines appended, each new (name, blob) once."""
    existing = set(note.split("\n"))
    extra = [line for line in lines.split("\n") if line and line not in existing]
    if any(not line.startswith(SIGNATURE_PREFIX) for line in extra):
        raise NoteError("not a note signature line")
    return note + "".join(line + "\n" for line in extra)
