"""Entries are immutable, integer-only, canonical, and signed over their unsigned bytes."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voucher_service.ledger import Entry, Posting, SigningKey, canonical_bytes, leaf_hash, sign_entry
from voucher_service.ledger import verify_entry_signature
from voucher_service.ledger.entry import parse_entry


def entry(**overrides):
    fields = dict(seq=3, ts="2026-11-27T08:00:00.000000Z", kind="redemption.reserved", region="KS", actor="usr_1",
                  refs={"voucher": "vch_1"}, postings=[Posting("voucher:vch_1", "voucher:vch_1:held", 500)],
                  data={"catalog_code": "TS-01", "note": "检验检测"})
    fields.update(overrides)
    return Entry(**fields)


@pytest.mark.parametrize("amount", [0, -1, True, 1.0, "5"])
def test_posting_amount_is_a_positive_integer(amount):
    with pytest.raises((TypeError, ValueError)):
        Posting("a", "b", amount)


def test_posting_to_itself_is_refused():
    with pytest.raises(ValueError):
        Posting("a", "a", 1)


def test_floats_are_refused_anywhere_in_an_entry():
    with pytest.raises(TypeError):
        entry(data={"ratio": 0.5})


def test_entry_is_frozen_even_through_its_mappings():
    e = entry()
    with pytest.raises(Exception):
        e.seq = 4
    with pytest.raises(TypeError):
        e.data["note"] = "changed"


def test_canonical_bytes_follow_rfc8785():
    # Keys sorted, no whitespace, UTF-8 not escaped (RFC 8785 §3.2).
    assert canonical_bytes({"b": 1, "a": "中", "c": [True, None]}) == '{"a":"中","b":1,"c":[true,null]}'.encode()


def test_signed_entry_verifies_and_is_its_own_canonical_form():
    key = SigningKey.generate("KS")
    signed = sign_entry(entry(), key)
    parsed = parse_entry(signed)
    assert parsed["sig"]["key_id"] == key.key_id and parsed["sig"]["alg"] == "ed25519"
    assert verify_entry_signature(parsed, key.public_key_raw)
    assert leaf_hash(signed) == __import__("hashlib").sha256(b"\x00" + signed).digest()


@given(st.sampled_from(["seq", "kind", "region", "actor", "ts", "amount", "data"]))
def test_any_change_breaks_the_signature(field):
    key = SigningKey.generate("KS")
    parsed = json.loads(sign_entry(entry(), key))
    if field == "seq":
        parsed["seq"] += 1
    elif field == "amount":
        parsed["postings"][0]["amount"] += 1
    elif field == "data":
        parsed["data"]["note"] = "检验"
    else:
        parsed[field] = parsed[field] + "x"
    assert not verify_entry_signature(parsed, key.public_key_raw)


def test_another_regions_key_does_not_verify():
    signed = json.loads(sign_entry(entry(), SigningKey.generate("KS")))
    assert not verify_entry_signature(signed, SigningKey.generate("SH").public_key_raw)


def test_non_canonical_bytes_are_refused():
    signed = sign_entry(entry(), SigningKey.generate("KS"))
    with pytest.raises(ValueError):
        parse_entry(json.dumps(json.loads(signed), indent=1).encode())


def test_private_key_round_trips_only_with_its_passphrase():
    key = SigningKey.generate("WJ")
    pem = key.encrypted_pem("correct horse")
    assert b"ENCRYPTED" in pem
    assert SigningKey.from_encrypted_pem(key.key_id, pem, "correct horse").public_key_raw == key.public_key_raw
    with pytest.raises(ValueError):
        SigningKey.from_encrypted_pem(key.key_id, pem, "wrong")
