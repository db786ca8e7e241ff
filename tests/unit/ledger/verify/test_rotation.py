"""Key rotations in the offline verifier (ledger/verify/rotation.py, applied by
entries.check_line): since the upgrade to witnessed checkpoints a `key.rotated`
entry must be endorsed by the key it retires; an endorsement that does not
verify is refused at any time; the published keys must be the ones the entry
hands over between. The same rule as the follower's (tests/unit/ledger/test_follow.py)."""
from __future__ import annotations

import pytest
from tlog_fixture import TLog

from voucher_service.ledger import SigningKey
from voucher_service.ledger.note import verifier_key
from voucher_service.ledger.verify import VerificationError, check_entry, load_keys, verify_export


def first_failure(log: TLog, keys_json: dict | None = None) -> VerificationError | None:
    keys = load_keys(keys_json or log.keys_json())
    for seq, line in enumerate(log.lines):
        try:
            check_entry(line, seq, keys)
        except VerificationError as error:
            return error
    return None


def test_an_endorsed_rotation_verifies():
    log = TLog()
    log.fund("KS", 10_000)
    log.rotate("KS")
    log.issue("KS", "v-1", 1_000)
    assert first_failure(log) is None


def test_a_legacy_export_with_an_endorsed_rotation_verifies_whole():
    """Before the upgrade the service already endorsed its rotations: the export verifies as before."""
    log = TLog(upgraded=False)
    log.fund("KS", 10_000)
    log.rotate("KS")
    log.issue("KS", "v-1", 1_000)
    summary = verify_export(log.lines, log.checkpoint(log=False, legacy=True), load_keys(log.keys_json()))
    assert summary.entries == 3


def test_an_unendorsed_rotation_after_the_upgrade_is_refused():
    log = TLog()
    log.fund("KS", 10_000)
    log.rotate("KS", endorsed=False)
    error = first_failure(log)
    assert error is not None and error.seq == 1
    assert "not endorsed by the retired key" in error.why and log.log_key_valid_from in error.why


def test_an_unendorsed_rotation_from_before_the_upgrade_still_verifies():
    log = TLog(upgraded=False)
    log.fund("KS", 10_000)
    log.rotate("KS", endorsed=False)
    log.upgrade()
    log.rotate("GZ")
    assert first_failure(log) is None


@pytest.mark.parametrize("upgraded", [True, False], ids=["after-upgrade", "legacy"])
def test_an_endorsement_by_another_key_is_refused_at_any_time(upgraded):
    log = TLog(upgraded=upgraded)
    log.rotate("KS", endorse_with=SigningKey.generate("KS"))
    error = first_failure(log)
    assert error is not None and error.seq == 0
    assert "endorsement is not a valid signature by the retired key" in error.why


def test_an_endorsement_that_names_another_key_is_refused():
    log = TLog()
    log.rotate("KS", data_extra={"endorsement": {"key_id": "KS-0000000000000000", "alg": "ed25519",
                                                 "value": "AAAA"}})
    error = first_failure(log)
    assert error is not None and error.seq == 0 and "endorsement" in error.why


def test_a_rotation_to_another_key_than_the_published_one_is_refused():
    log = TLog()
    stranger = SigningKey.generate("KS").public_key_raw
    log.rotate("KS", data_extra={"note_key": verifier_key(f"{log.origin}/KS", stranger)})
    error = first_failure(log)
    assert error is not None and error.seq == 0 and "is not the key the rotation introduces" in error.why


def test_a_rotation_whose_retired_key_is_still_published_as_active_is_refused():
    log = TLog()
    retired = log.active_key("KS").key.key_id
    log.rotate("KS")
    document = log.keys_json()
    for record in document["keys"]:
        if record["key_id"] == retired:
            record["valid_until"] = None
    error = first_failure(log, document)
    assert error is not None and error.seq == 0 and f"the retired key {retired} is published" in error.why


@pytest.mark.parametrize("change", [
    {"retired_key_id": None}, {"key_id": 7}, {"note_key": "not a key"}, {"valid_from": "soon"},
], ids=["no-retired", "numeric-key-id", "bad-note-key", "bad-valid-from"])
def test_a_rotation_of_the_wrong_shape_is_refused_not_crashed_on(change):
    log = TLog(upgraded=False)
    log.rotate("KS", endorsed=False, data_extra=change)
    error = first_failure(log)
    assert error is not None and error.seq == 0 and "rotation" in error.why
