"""The spec's checks of a signed add-checkpoint request against what the witness
holds (service.check_request), in the spec's order, and the D/logs line."""
from __future__ import annotations

import hashlib

import pytest

from voucher_service.ledger import merkle
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.signing import SigningKey
from voucher_service.ledger.tlog_witness import SIZE_MEDIA_TYPE, parse_request, request_body
from voucher_service.witness.directory import WitnessSetupError, parse_log_line
from voucher_service.witness.service import check_request, checkpoint_text
from voucher_service.witness.state import NEVER, Cosigned

ORIGIN = "vouchers.test/service"
KEY = SigningKey.generate("log")
LEAVES = [merkle.leaf_hash(b"entry %d" % n) for n in range(12)]


def read_nodes(nodes):
    return [merkle.root_from_leaves(LEAVES[index << level:(index + 1) << level]) for level, index in nodes]


def root(size: int) -> bytes:
    return merkle.root_from_leaves(LEAVES[:size])


def request(old: int, size: int, proof=None, root_hash: bytes | None = None):
    text = Checkpoint(ORIGIN, size, root_hash or root(size)).text()
    note = sign_note(text, [(ORIGIN, KEY.sign, KEY.public_key_raw)])
    proof = merkle.consistency_proof(old, size, read_nodes) if proof is None else proof
    return parse_request(request_body(old, proof, note))


HELD = Cosigned(5, root(5))


def test_a_consistent_request_passes():
    assert check_request(request(5, 12), HELD) is None
    assert check_request(request(0, 5), NEVER) is None
    assert check_request(request(5, 5), HELD) is None


@pytest.mark.parametrize("old, size, held, status, kind", [
    (6, 5, HELD, 400, "old-beyond-size"),
    (0, 12, HELD, 409, "stale-old-size"),
    (4, 12, HELD, 409, "stale-old-size"),
    (6, 12, HELD, 409, "stale-old-size"),
    (5, 12, NEVER, 409, "stale-old-size"),
])
def test_refusals_in_the_spec_order(old, size, held, status, kind):
    refusal = check_request(request(old, size, proof=[]), held)
    assert (refusal.status, refusal.kind) == (status, kind)
    if kind == "stale-old-size":
        assert refusal.reply().content_type == SIZE_MEDIA_TYPE and refusal.reply().body == f"{held.size}\n".encode()


def test_the_same_size_with_another_root_is_a_fork():
    refusal = check_request(request(5, 5, proof=[], root_hash=hashlib.sha256(b"other").digest()), HELD)
    assert (refusal.status, refusal.kind) == (409, "fork")
    assert refusal.reply().content_type.startswith("text/plain")


def test_a_proof_that_does_not_reach_the_held_root_is_422():
    good = merkle.consistency_proof(5, 12, read_nodes)
    for proof in ([bytes(32)] + good[1:], good[:-1], good + good[:1]):
        assert check_request(request(5, 12, proof=proof), HELD).status == 422
    other_held = Cosigned(5, hashlib.sha256(b"another root at 5").digest())
    assert check_request(request(5, 12), other_held).kind == "bad-proof"
    assert check_request(request(0, 5, proof=[bytes(32)]), NEVER).status == 422  # old 0: the proof is empty


def test_what_a_cosignature_signs_is_the_note_text_with_extension_lines():
    text = Checkpoint(ORIGIN, 5, root(5)).text() + "an extension line\n"
    note = sign_note(text, [(ORIGIN, KEY.sign, KEY.public_key_raw)])
    assert checkpoint_text(parse_request(request_body(0, [], note))) == text


def test_a_log_line():
    vkey = verifier_key(ORIGIN, KEY.public_key_raw)
    assert parse_log_line(f"{ORIGIN} {vkey}")[2] is None
    origin, verifier, url = parse_log_line(f"{ORIGIN} {vkey} https://vouchers.example/base/")
    assert (origin, verifier.public_key_raw, url) == (ORIGIN, KEY.public_key_raw, "https://vouchers.example/base")
    for bad in (f"{ORIGIN}", f"{ORIGIN}  {vkey}", f"{ORIGIN} {vkey} http://x y", f"{ORIGIN} not-a-key",
                f"{ORIGIN} {vkey} file:///etc", f"{ORIGIN} {vkey} http://host/?q=1"):
        with pytest.raises(WitnessSetupError):
            parse_log_line(bad)
