"""C2SP tlog-witness `add-checkpoint` (c2sp.org/tlog-witness): the request
body both sides write and read, and the 409 size body.

    old <size>\\n                 decimal, no leading zeroes ("0" for zero)
    <base64 hash>\\n ...          0 to 63 consistency proof lines, 32 bytes each
    \\n                           a blank line
    <signed checkpoint note>     c2sp.org/tlog-checkpoint in a c2sp.org/signed-note

The witness (voucher_service/witness) parses requests with `parse_request`;
the operator's publisher writes them with `request_body` and reads a 409's
body with `parse_size_body`. Parsing is strict, because a body two parsers
read differently is a body two parties disagree about: every line ends in a
newline, sizes have one spelling, hashes are canonical padded base64.
Nothing here checks a signature or a proof: that needs the witness's state.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from .merkle import HASH_SIZE
from .note import SIGNATURE_PREFIX, Checkpoint, NoteError, parse_note

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
# A checkpoint note is a few hundred bytes; 100 signature lines of a few hundred
# bytes each still fit with room to spare. Anything larger is not a checkpoint.
MAX_NOTE_BYTES = 48 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_SIZE = (1 << 64) - 1
MAX_COSIGNATURE_LINES = 100

_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})\Z")
_SIZE_BODY = re.compile(rb"(0|[1-9][0-9]{0,19})\n\Z")
_HASH_B64_CHARS = 4 * ((HASH_SIZE + 2) // 3)


class RequestError(ValueError):
    """A body that is not an add-checkpoint request (the witness answers 400)."""


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str                # the signed checkpoint note, exactly as sent
    checkpoint: Checkpoint   # its text, parsed (signatures not yet checked)


def request_body(old_size: int, proof_hashes, note: str) -> bytes:
    """The body of POST /add-checkpoint; refuses what the witness would refuse as malformed."""
    proof = list(proof_hashes)
    if not isinstance(old_size, int) or not 0 <= old_size <= MAX_SIZE:
        raise RequestError("the old size is an integer from 0 to 2^64 - 1")
    if len(proof) > MAX_PROOF_LINES:
        raise RequestError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in proof):
        raise RequestError(f"a consistency proof hash is {HASH_SIZE} bytes")
    body = (f"old {old_size}\n" + "".join(base64.b64encode(h).decode("ascii") + "\n" for h in proof)
            + "\n" + note).encode("utf-8")
    parse_request(body)  # one definition of a well-formed body, for both sides
    return body


def parse_request(body: bytes) -> AddCheckpoint:
    if not isinstance(body, bytes) or len(body) > MAX_BODY_BYTES:
        raise RequestError(f"an add-checkpoint body is at most {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the body is not UTF-8") from None
    if not text.endswith("\n"):
        raise RequestError("every line of the body ends with a newline")
    first, _, rest = text.partition("\n")
    match = _OLD_LINE.match(first)
    if match is None:
        raise RequestError("the first line is `old <size>`, the size in decimal without leading zeroes")
    old_size = int(match.group(1))
    if old_size > MAX_SIZE:
        raise RequestError("the old size is at most 2^64 - 1")
    proof = []
    while True:
        line, newline, rest = rest.partition("\n")
        if not newline:
            raise RequestError("no blank line after the consistency proof")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise RequestError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof.append(_proof_hash(line, len(proof)))
    note = rest
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise RequestError(f"the checkpoint note is at most {MAX_NOTE_BYTES} bytes")
    try:
        note_text, _signatures = parse_note(note)
        checkpoint = Checkpoint.parse(note_text)
    except NoteError as exc:
        raise RequestError(f"not a signed checkpoint: {exc}") from None
    return AddCheckpoint(old_size, tuple(proof), note, checkpoint)


def _proof_hash(line: str, position: int) -> bytes:
    if len(line) != _HASH_B64_CHARS:
        raise RequestError(f"consistency proof line {position + 1} is not the base64 of a {HASH_SIZE}-byte hash")
    try:
        raw = base64.b64decode(line, validate=True)
    except (ValueError, binascii.Error):
        raise RequestError(f"consistency proof line {position + 1} is not base64") from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
        raise RequestError(f"consistency proof line {position + 1} is not the base64 of a {HASH_SIZE}-byte hash")
    return raw


def size_body(size: int) -> bytes:
    """The body of a 409 for a wrong old size: the latest cosigned size (Content-Type SIZE_MEDIA_TYPE)."""
    if not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ValueError("a tree size is an integer from 0 to 2^64 - 1")
    return f"{size}\n".encode("ascii")


def parse_size_body(body: bytes) -> int:
    match = _SIZE_BODY.match(body) if isinstance(body, bytes) else None
    if match is None or int(match.group(1)) > MAX_SIZE:
        raise RequestError("a text/x.tlog.size body is a tree size in decimal and a newline")
    return int(match.group(1))


def parse_cosignatures(body: bytes) -> str:
    """A 200's body: one or more note signature lines (`— name base64\\n`), as text
    to append to the checkpoint note (cosignature.add_signature_lines). Which of
    them verify is the client's business (cosignature.cosignatures)."""
    if not isinstance(body, bytes) or not 0 < len(body) <= MAX_BODY_BYTES:
        raise RequestError(f"a cosignature response is 1 to {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the response is not UTF-8") from None
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) - 1 > MAX_COSIGNATURE_LINES:
        raise RequestError(f"1 to {MAX_COSIGNATURE_LINES} signature lines, each ending with a newline")
    for line in lines[:-1]:
        name, space, blob = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        if not line.startswith(SIGNATURE_PREFIX) or not space or not name or not blob:
            raise RequestError("not a note signature line: `— <name> <base64>`")
        try:
            base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            raise RequestError("a note signature is base64") from None
    return text
