"""The add-checkpoint request body and the 409 size body of C2SP tlog-witness:
the spec's own example parses, what we write is what we read, and every way
of bending a line is refused (a witness answers those with 400)."""
from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voucher_service.ledger.note import Checkpoint, sign_note
from voucher_service.ledger.tlog_witness import (
    MAX_BODY_BYTES,
    MAX_PROOF_LINES,
    RequestError,
    parse_cosignatures,
    parse_request,
    parse_size_body,
    request_body,
    size_body,
)

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "schemas", "vectors")
with open(os.path.join(VECTORS, "c2sp-examples.json"), encoding="utf-8") as _handle:
    SPEC = json.load(_handle)["tlog_witness"]
with open(os.path.join(VECTORS, "cosignature-vectors.json"), encoding="utf-8") as _handle:
    OURS = json.load(_handle)

HASH = hashlib.sha256(b"a node").digest()
NOTE = SPEC["add_checkpoint_body"].split("\n\n", 1)[1]  # the spec's signed checkpoint
PROOF_LINE = base64.b64encode(HASH).decode("ascii")


def test_the_spec_example_body_parses():
    request = parse_request(SPEC["add_checkpoint_body"].encode("utf-8"))
    assert request.old_size == SPEC["old_size"]
    assert [base64.b64encode(h).decode() for h in request.proof] == SPEC["proof"]
    assert request.checkpoint == Checkpoint.parse(SPEC["checkpoint_text"])
    assert request.checkpoint.size == 20852163 and request.checkpoint.origin == "example.com/behind-the-sofa"
    assert request.note == NOTE and request.note.startswith(SPEC["checkpoint_text"] + "\n")


def test_request_body_writes_the_spec_example_byte_for_byte():
    proof = [base64.b64decode(h) for h in SPEC["proof"]]
    assert request_body(SPEC["old_size"], proof, NOTE) == SPEC["add_checkpoint_body"].encode("utf-8")


@pytest.mark.parametrize("request_vector", OURS["add_checkpoint_requests"], ids=lambda r: f"old {r['old_size']}")
def test_our_vector_bodies_parse(request_vector):
    request = parse_request(request_vector["body"].encode("utf-8"))
    assert request.old_size == request_vector["old_size"]
    assert [base64.b64encode(h).decode() for h in request.proof] == request_vector["proof"]
    assert request.note == request_vector["checkpoint_note"]


@given(old_size=st.integers(0, (1 << 64) - 1), proof=st.lists(st.binary(min_size=32, max_size=32), max_size=63))
def test_what_we_write_we_read(old_size, proof):
    request = parse_request(request_body(old_size, proof, NOTE))
    assert (request.old_size, list(request.proof), request.note) == (old_size, proof, NOTE)


def body(old_line: str = "old 5", proof_lines=(PROOF_LINE,), note: str = NOTE) -> bytes:
    return (old_line + "\n" + "".join(line + "\n" for line in proof_lines) + "\n" + note).encode("utf-8")


def test_the_helper_body_is_well_formed():
    """The malformed bodies below differ from this one in one thing each."""
    assert parse_request(body()).old_size == 5


MALFORMED = {
    "leading zero": body("old 05"),
    "zero written twice": body("old 00"),
    "negative": body("old -1"),
    "plus sign": body("old +5"),
    "two spaces": body("old  5"),
    "tab": body("old\t5"),
    "capital": body("Old 5"),
    "no size": body("old "),
    "not a number": body("old five"),
    "unicode digits": body("old \u0665"),
    "size over 2^64 - 1": body(f"old {1 << 64}"),
    "trailing space on old line": body("old 5 "),
    "carriage return": body("old 5\r"),
    "no blank line": (f"old 5\n{PROOF_LINE}\n" + NOTE.replace("\n\n", "\n")).encode("utf-8"),
    "proof hash of 31 bytes": body(proof_lines=[base64.b64encode(HASH[:31]).decode()]),
    "proof hash of 33 bytes": body(proof_lines=[base64.b64encode(HASH + b"x").decode()]),
    "proof line unpadded": body(proof_lines=[PROOF_LINE.rstrip("=")]),
    "proof line with stray bits": body(proof_lines=[PROOF_LINE[:-2] + "B="]),
    "proof line url-safe alphabet": body(proof_lines=[base64.urlsafe_b64encode(b"\xff" * 32).decode()]),
    "proof line with a space": body(proof_lines=[" " + PROOF_LINE[1:]]),
    "64 proof lines": body(proof_lines=[PROOF_LINE] * (MAX_PROOF_LINES + 1)),
    "no final newline": body()[:-1],
    "checkpoint unsigned": body(note=NOTE.split("\n\n")[0] + "\n\n"),
    "checkpoint without its blank line": body(note=NOTE.replace("\n\n", "\n", 1)),
    "checkpoint with a bad root": body(note=NOTE.replace("CsUYapGG", "CsUY")),
    "checkpoint size with a leading zero": body(note=NOTE.replace("\n20852163\n", "\n020852163\n")),
    "empty": b"",
    "only the old line": b"old 0\n",
    "not UTF-8": body()[:-2] + b"\xff\n",
    "too large": body(note=NOTE + "\u2014 x " + "A" * MAX_BODY_BYTES + "\n"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_bodies_are_refused(name):
    with pytest.raises(RequestError):
        parse_request(MALFORMED[name])


def test_request_body_refuses_what_a_witness_would():
    with pytest.raises(RequestError):
        request_body(-1, [], NOTE)
    with pytest.raises(RequestError):
        request_body(1, [HASH] * 64, NOTE)
    with pytest.raises(RequestError):
        request_body(1, [HASH[:31]], NOTE)
    with pytest.raises(RequestError):
        request_body(1, [], "not a note\n")


def test_old_zero_is_written_as_0():
    assert request_body(0, [], NOTE).startswith(b"old 0\n\n")
    assert parse_request(body("old 0", ())).old_size == 0


@pytest.mark.parametrize("size", [0, 1, 20852163, (1 << 64) - 1])
def test_size_body_round_trip(size):
    assert parse_size_body(size_body(size)) == size
    assert size_body(size) == f"{size}\n".encode()


@pytest.mark.parametrize("raw", [b"", b"7", b"07\n", b"7\n\n", b" 7\n", b"-7\n", b"7\r\n", b"seven\n",
                                 f"{1 << 64}\n".encode(), "\u0667\n".encode()])
def test_malformed_size_bodies_are_refused(raw):
    with pytest.raises(RequestError):
        parse_size_body(raw)


def test_cosignature_responses():
    line = OURS["cosignatures"][0]["signature_line"]
    assert parse_cosignatures(line.encode()) == line
    assert parse_cosignatures((line * 2).encode()) == line * 2
    other = sign_note(Checkpoint("o", 1, HASH).text(), [("o", lambda m: b"\0" * 64, b"\1" * 32)])
    assert parse_cosignatures(other.split("\n\n")[1].encode()).startswith("\u2014 o ")
    for raw in (b"", line.encode()[:-1], b"- name AAAA\n", ("\u2014 name\n").encode(), ("\u2014 n !!\n").encode(),
                b"\xff\n"):
        with pytest.raises(RequestError):
            parse_cosignatures(raw)
