"""The rule of a `key.rotated` entry: the one statement the offline verifier
(entries.check_line) and the incremental follower (follow.py) both apply.

A rotation entry is signed by the new key, which proves only that its writer
holds the new key. What ties the new key to the region is the retired key's
endorsement (ledger/endorsement.py). After the deployment was upgraded to
witnessed checkpoints (the log key's valid_from, KeySet.upgraded_at) every
rotation must carry one; an endorsement that does not verify is refused at
any time, since nothing honest writes one. Rotations from before the upgrade
were written without: they stay verifiable as they were.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..endorsement import check_endorsement
from ..note import NoteError, Verifier
from .common import check_string, check_timestamp, show
from .keys import PURPOSE_ENTRY, KeySet, PublishedKey

ROTATION_KIND = "key.rotated"
ROTATION_FIELDS = ("retired_key_id", "key_id", "note_key", "valid_from")


@dataclass(frozen=True)
class Rotation:
    """What a rotation entry says: `retired` (a key known before it) hands over to `key_id`."""
    region: str
    retired: PublishedKey
    key_id: str
    verifier: Verifier           # the new key as a note verifier: its name and public key
    valid_from: str


def rotation_of(entry: dict, keys: KeySet, fail) -> Rotation:
    """The rotation an entry of the right shape states, checked against the keys
    known before it: the retired key is an entry key of the entry's region, in
    force until the rotation; the new key keeps the region's note name and is
    the key that signs the entry. Nothing here checks a signature."""
    data = entry["data"]
    for name in ROTATION_FIELDS:
        check_string(data.get(name), f"the rotation's data.{name}", fail)
    region, valid_from = entry["region"], check_timestamp(data["valid_from"], "the rotation's data.valid_from", fail)
    retired = keys.by_id.get(data["retired_key_id"])
    if retired is None or retired.purpose != PURPOSE_ENTRY or retired.region != region:
        fail(f"the rotation retires key {show(data['retired_key_id'])}, which is not a known key of region {region}")
    if data["key_id"] == retired.key_id:
        fail(f"the rotation replaces key {retired.key_id} with itself")
    if entry["sig"]["key_id"] != data["key_id"]:
        fail(f"the rotation to key {data['key_id']} is signed by key {entry['sig']['key_id']}, not by the new key")
    try:
        verifier = Verifier.parse(data["note_key"])
    except NoteError as exc:
        fail(f"the rotation's data.note_key does not parse: {exc}")
    if verifier.name != retired.note_name:
        fail(f"the new key's note name {verifier.name!r} is not the region's {retired.note_name!r}")
    if not retired.valid_from <= valid_from <= entry["ts"]:
        fail(f"the rotation takes effect at {valid_from}, outside [{retired.valid_from}, {entry['ts']}] (from the "
             f"retired key's start to the entry's time)")
    if retired.valid_until not in (None, valid_from):
        fail(f"key {retired.key_id} was retired at {retired.valid_until}, not by this rotation at {valid_from}")
    return Rotation(region, retired, data["key_id"], verifier, valid_from)


def check_rotation(entry: dict, keys: KeySet, fail) -> None:
    """A `key.rotated` entry checked against keys that include its new key (the
    published keys; or, in the follower, the keys it learnt from the entry): the
    keys agree with what the entry states, and the endorsement rule holds."""
    rotation = rotation_of(entry, keys, fail)
    if rotation.retired.valid_until != rotation.valid_from:
        fail(f"the retired key {rotation.retired.key_id} is published {rotation.retired.validity()}, but this "
             f"rotation retired it at {rotation.valid_from}")
    new = keys.by_id[rotation.key_id]  # it signed the entry: check_line found it
    if new.verifier != rotation.verifier or new.valid_from != rotation.valid_from:
        fail(f"the published key {new.key_id} ({new.verifier.name}+{new.verifier.key_hash.hex()}, {new.validity()}) "
             f"is not the key the rotation introduces ({rotation.verifier.name}+{rotation.verifier.key_hash.hex()}, "
             f"valid from {rotation.valid_from})")
    check_endorsement_rule(entry, rotation.retired, keys.upgraded_at, fail)


def check_endorsement_rule(entry: dict, retired: PublishedKey, upgraded_at: str | None, fail) -> None:
    data = entry["data"]
    if "endorsement" in data:
        if not check_endorsement(entry["region"], data, retired.public_key_raw):
            fail(f"the rotation's endorsement is not a valid signature by the retired key {retired.key_id}")
    elif upgraded_at is not None and entry["ts"] >= upgraded_at:
        fail(f"the rotation is not endorsed by the retired key {retired.key_id}: every rotation since the upgrade "
             f"to witnessed checkpoints ({upgraded_at}) must be")
