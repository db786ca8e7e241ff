"""The follower (ledger/verify/follow.py): the incremental check a verifying
witness and the monitor make of each new stretch of a log, and the custody of
the keys it trusts. Logs are real: signed entries of tests/tlog_fixture.py."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tlog_fixture import TLog, b64

from voucher_service.ledger import SigningKey, merkle
from voucher_service.ledger.note import verifier_key
from voucher_service.ledger.verify import VerificationError, load_keys
from voucher_service.ledger.verify.follow import Follower


def grown_log() -> tuple[TLog, dict]:
    """A log and the keys document published before its first entry (what a follower pins)."""
    log = TLog()
    pinned = log.keys_json()
    log.fund("KS", 100_000)
    log.fund("GZ", 50_000)
    log.issue("KS", "v-1", 30_000)
    log.reserve("KS", "v-1", 10_000)
    log.rotate("KS")
    log.several(6, "KS")
    log.rotate("GZ")
    log.several(5, "GZ")
    log.rotate("KS")
    log.issue("KS", "v-2", 1_000)
    return log, pinned


@pytest.fixture(scope="module")
def grown():
    return grown_log()


def follower_of(pinned: dict) -> Follower:
    return Follower(load_keys(pinned))


def refused(follower: Follower, lines, **options) -> VerificationError:
    """The follower refuses the lines, and is exactly as it was before."""
    before = json.dumps(follower.to_state(), sort_keys=True)
    with pytest.raises(VerificationError) as raised:
        follower.extend(lines, **options)
    assert json.dumps(follower.to_state(), sort_keys=True) == before
    return raised.value


# --- growth ----------------------------------------------------------------------------------------

@settings(max_examples=30)
@given(cuts=st.lists(st.integers(min_value=0, max_value=22), max_size=6))
def test_extending_in_pieces_gives_the_root_of_all_the_leaves(grown, cuts):
    log, pinned = grown
    follower = follower_of(pinned)
    bounds = [0, *sorted(min(cut, log.size) for cut in cuts), log.size]
    for start, end in zip(bounds, bounds[1:]):
        follower.extend(log.lines[start:end])
        assert follower.size == end
        assert follower.root() == merkle.root_from_leaves(log.leaves[:end])
    whole = follower_of(pinned)
    whole.extend(log.lines)
    assert whole.root() == follower.root() == log.root()
    assert whole.to_state() == follower.to_state()


def test_an_empty_follower_has_the_empty_root(grown):
    follower = follower_of(grown[1])
    follower.extend([])
    assert (follower.size, follower.root(), follower.last_ts) == (0, merkle.EMPTY_ROOT, None)


def test_balances_are_the_replayed_postings(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:4])
    assert follower.balances == {"treasury:KS": -100_000, "budget:KS": 70_000, "treasury:GZ": -50_000,
                                 "budget:GZ": 50_000, "voucher:v-1": 20_000, "voucher:v-1:held": 10_000}
    assert follower.last_ts == json.loads(log.lines[3])["ts"]


@pytest.mark.parametrize("size", [0, 1, 5, 8, 13])
def test_the_state_round_trips_through_json_and_goes_on_as_if_never_stopped(grown, size):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:size])
    text = json.dumps(follower.to_state())
    resumed = Follower.from_state(json.loads(text))
    assert resumed.to_state() == follower.to_state()
    assert (resumed.size, resumed.root(), resumed.balances) == (follower.size, follower.root(), follower.balances)
    resumed.extend(log.lines[size:])
    assert resumed.root() == log.root()


@pytest.mark.parametrize("change", [
    lambda s: s.update(version=2),
    lambda s: s.update(size=s["size"] + 2),  # 7 leaves need three subtrees, the state has two
    lambda s: s["tree"].append(s["tree"][0]),
    lambda s: s["tree"].__setitem__(0, "not base64!"),
    lambda s: s["tree"].__setitem__(0, b64(b"short")),
    lambda s: s["balances"].update({"budget:KS": 1}),
    lambda s: s["balances"].update({"budget:KS": "70000"}),
    lambda s: s.update(last_ts=None),
    lambda s: s.update(last_ts="yesterday"),
    lambda s: s["keys"].update(keys=[]),
    lambda s: s.pop("keys"),
    lambda s: s.clear(),
], ids=["version", "size", "extra-hash", "bad-hash", "short-hash", "unbalanced", "string-amount", "no-ts",
        "bad-ts", "no-keys", "missing-keys", "empty"])
def test_a_damaged_state_is_refused_plainly(grown, change):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:5])
    state = json.loads(json.dumps(follower.to_state()))
    change(state)
    with pytest.raises(VerificationError) as raised:
        Follower.from_state(state)
    assert raised.value.where == "follower state"


@pytest.mark.parametrize("state", [None, [], "state", 7])
def test_a_state_that_is_not_an_object_is_refused(state):
    with pytest.raises(VerificationError):
        Follower.from_state(state)


# --- refusals: the first bad seq, and nothing changed ---------------------------------------------------

def _amount_raised(entry):
    entry["postings"][0]["amount"] += 1


def test_a_tampered_entry_is_refused_with_its_seq(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:3])
    tampered = log.fork(log.size)
    tampered.edit(5, _amount_raised)
    error = refused(follower, tampered.lines[3:10])
    assert error.seq == 5 and "does not verify" in error.why


def test_entries_out_of_order_are_refused_with_the_first_misplaced_seq(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:3])
    lines = log.lines[3:10]
    lines[2], lines[3] = lines[3], lines[2]
    error = refused(follower, lines)
    assert error.seq == 5 and "expected seq 5, found seq 6" in error.why


def test_an_entry_signed_by_no_known_key_is_refused(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:2])
    other = log.fork(2)
    other.append("budget.funded", "KS", postings=[("treasury:KS", "budget:KS", 5)], key=SigningKey.generate("KS"))
    error = refused(follower, other.lines[2:])
    assert error.seq == 2 and "does not trust" in error.why


def test_an_entry_without_a_signature_is_refused(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    tampered = log.fork(3)
    tampered.edit(2, lambda entry: entry.pop("sig"))
    error = refused(follower, tampered.lines)
    assert error.seq == 2 and "missing sig" in error.why


def test_an_entry_that_overspends_an_account_is_refused_and_no_balance_moves(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:3])
    other = log.fork(3)
    other.issue("GZ", "v-9", 20_000)
    other.issue("GZ", "v-10", 40_000)  # budget:GZ had 50 000 fen
    error = refused(follower, other.lines[3:])
    assert error.seq == 4 and "account budget:GZ goes negative (-10000 fen)" in error.why


def test_a_root_other_than_the_checkpoints_is_refused_and_nothing_changes(grown):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:3])
    error = refused(follower, log.lines[3:8], expected_root=log.root(7))
    assert error.where == "checkpoint"
    follower.extend(log.lines[3:8], expected_root=log.root(8))
    assert follower.size == 8


def test_a_failing_source_of_lines_leaves_the_follower_unchanged(grown):
    log, pinned = grown
    follower = follower_of(pinned)

    def lines():
        yield from log.lines[:4]
        raise OSError("connection reset")

    before = follower.to_state()
    with pytest.raises(OSError):
        follower.extend(lines())
    assert follower.to_state() == before


# --- custody ------------------------------------------------------------------------------------------

def test_a_rotation_is_learnt_from_its_entry_and_retires_the_old_key():
    log = TLog()
    pinned = log.keys_json()
    old = log.active_key("KS").key
    log.fund("KS", 1_000)
    log.rotate("KS")
    new = log.active_key("KS").key
    log.issue("KS", "v-1", 100)
    follower = follower_of(pinned)
    assert new.key_id not in follower.keys.by_id
    follower.extend(log.lines)
    learnt = follower.keys.by_id[new.key_id]
    assert learnt.public_key_raw == new.public_key_raw and learnt.valid_until is None
    assert follower.keys.by_id[old.key_id].valid_until == learnt.valid_from
    # ...and survives the state: a resumed follower trusts it too, and not the retired key any more.
    resumed = Follower.from_state(json.loads(json.dumps(follower.to_state())))
    retired = log.fork(log.size)
    retired.append("voucher.issued", "KS", postings=[("budget:KS", "voucher:v-2", 100)], key=old)
    error = refused(resumed, retired.lines[log.size:])
    assert error.seq == log.size and old.key_id in error.why and "valid from" in error.why


def test_a_follower_pinned_after_the_rotation_checks_it_against_what_it_pinned():
    log = TLog()
    log.fund("KS", 1_000)
    log.rotate("KS")
    follower = follower_of(log.keys_json())
    follower.extend(log.lines)
    assert follower.size == 2


def test_an_unendorsed_rotation_after_the_upgrade_is_refused():
    log = TLog()
    pinned = log.keys_json()
    log.fund("KS", 1_000)
    log.rotate("KS", endorsed=False)
    error = refused(follower_of(pinned), log.lines)
    assert error.seq == 1 and "not endorsed by the retired key" in error.why


def test_an_unendorsed_rotation_before_the_upgrade_is_followed():
    log = TLog(upgraded=False)
    pinned = log.keys_json()
    log.fund("KS", 1_000)
    log.rotate("KS", endorsed=False)
    log.upgrade()
    log.issue("KS", "v-1", 10)
    pinned["keys"] += [k for k in log.keys_json()["keys"] if k["purpose"] == "log"]
    follower = follower_of(pinned)
    follower.extend(log.lines)
    assert follower.size == 3


@pytest.mark.parametrize("upgraded", [True, False], ids=["after-upgrade", "legacy"])
def test_an_endorsement_that_does_not_verify_is_refused_at_any_time(upgraded):
    log = TLog(upgraded=upgraded)
    pinned = log.keys_json()
    log.fund("KS", 1_000)
    log.rotate("KS", endorse_with=log.active_key("GZ").key)
    error = refused(follower_of(pinned), log.lines)
    assert error.seq == 1 and "endorsement is not a valid signature by the retired key" in error.why


def test_a_rotation_by_a_key_of_another_region_is_refused():
    log = TLog()
    pinned = log.keys_json()
    gz = log.active_key("GZ").key.key_id
    log.rotate("KS", data_extra={"retired_key_id": gz})
    error = refused(follower_of(pinned), log.lines)
    assert error.seq == 0 and f"retires key '{gz}', which is not a known key of region KS" in error.why


def test_a_new_region_is_trusted_on_first_use_through_accept_keys():
    log = TLog()
    follower = follower_of(log.keys_json())
    log.fund("KS", 10)
    first = log.join("SH").key
    log.fund("SH", 500)
    refused(follower, log.lines)
    assert follower.accept_keys(log.keys_json()) == [first.key_id]
    follower.extend(log.lines)
    assert follower.size == 2 and "SH" in follower.keys.regions()
    assert follower.accept_keys(log.keys_json()) == []


def test_only_a_new_regions_first_key_is_taken_on_first_use():
    log = TLog()
    follower = follower_of(log.keys_json())
    first = log.join("SH").key
    log.fund("SH", 500)
    log.rotate("SH")
    second = log.active_key("SH").key
    assert follower.accept_keys(log.keys_json()) == [first.key_id]
    assert second.key_id not in follower.keys.by_id
    follower.extend(log.lines)  # the second from the endorsed rotation
    assert second.key_id in follower.keys.by_id


def _published_with_swapped_key(log: TLog, region: str, key: SigningKey) -> dict:
    document = log.keys_json()
    name = f"{log.origin}/{region}"
    document["keys"].append({"key_id": key.key_id, "region": region, "alg": "ed25519",
                             "public_key": b64(key.public_key_raw), "note_name": name,
                             "note_key": verifier_key(name, key.public_key_raw),
                             "valid_from": log.tick(), "valid_until": None, "purpose": "entry"})
    return document


def test_a_swapped_key_for_a_region_that_has_keys_is_not_trusted():
    log = TLog()
    follower = follower_of(log.keys_json())
    swapped = SigningKey.generate("KS")
    assert follower.accept_keys(_published_with_swapped_key(log, "KS", swapped)) == []
    log.append("budget.funded", "KS", postings=[("treasury:KS", "budget:KS", 5)], key=swapped)
    error = refused(follower, log.lines)
    assert error.seq == 0 and swapped.key_id in error.why and "does not trust" in error.why


def test_a_keys_document_that_contradicts_a_trusted_key_is_refused():
    log = TLog()
    follower = follower_of(log.keys_json())
    document = log.keys_json()
    other = SigningKey.generate("KS").public_key_raw
    document["keys"][0].update(public_key=b64(other), note_key=verifier_key(document["keys"][0]["note_name"], other))
    before = follower.to_state()
    with pytest.raises(VerificationError) as raised:
        follower.accept_keys(document)
    assert raised.value.where == "keys" and document["keys"][0]["key_id"] in raised.value.why
    assert follower.to_state() == before


def test_a_keys_document_of_another_log_is_refused():
    follower = follower_of(TLog().keys_json())
    with pytest.raises(VerificationError) as raised:
        follower.accept_keys(TLog(origin="another.test/log").keys_json())
    assert raised.value.where == "keys" and "origin" in raised.value.why


def test_the_log_key_of_an_upgrade_is_trusted_on_first_use_and_only_the_first():
    log = TLog(upgraded=False)
    follower = follower_of(log.keys_json())
    assert follower.keys.upgraded_at is None
    log.upgrade()
    assert follower.accept_keys(log.keys_json()) == [log.log_key.key_id]
    assert follower.keys.upgraded_at == log.log_key_valid_from
    other = TLog(upgraded=False)
    other.region_keys, other.now = log.region_keys, log.now
    other.upgrade()
    assert follower.accept_keys(other.keys_json()) == []
    assert [k.key_id for k in follower.keys.log_keys] == [log.log_key.key_id]


_json_values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=8),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=8)
_rotation_shaped = st.fixed_dictionaries({
    "kind": st.just("key.rotated"), "region": st.sampled_from(["KS", "GZ", ""]),
    "ts": st.sampled_from(["2026-03-02T09:00:00.000000Z", "later"]),
    "sig": st.dictionaries(st.sampled_from(["key_id", "alg", "value"]), _json_values | st.just("KS-0000"), max_size=3),
    "data": st.dictionaries(st.sampled_from(["retired_key_id", "key_id", "note_key", "valid_from", "endorsement"]),
                            _json_values, max_size=5),
}).map(lambda entry: json.dumps(entry).encode())


@settings(max_examples=60)
@given(garbage=st.binary(max_size=120) | _json_values.map(lambda v: json.dumps(v).encode()) | _rotation_shaped)
def test_any_garbage_line_is_a_verification_error_that_changes_nothing(grown, garbage):
    log, pinned = grown
    follower = follower_of(pinned)
    follower.extend(log.lines[:2])
    error = refused(follower, [*log.lines[2:4], garbage])
    assert error.seq == 4
