"""The incremental content check of a log, and the custody of its keys.

A verifying witness (before it cosigns) and `vouchers monitor` (before it keeps
a checkpoint) read every entry of the log once, stretch by stretch, and check
each as the offline verifier does (entries.check_line: canonical form,
gapless seq, signature, key validity at `ts`, a rotation's rule; replay's
apply_postings: no account outside treasury goes negative). Between stretches
they keep what a follower needs and no more: the tree size, the running
tree's O(log n) stack, the non-zero balances, the time of the last entry and
the keys it trusts. `to_state`/`from_state` write that as JSON.

Custody: the follower trusts the keys it started with (pinned) and, after
them, only keys it can trace back to them:

- a key introduced by a `key.rotated` entry of the log, learnt from the entry
  itself (data.note_key is the new public key; the retired key's validity
  ends at data.valid_from), under the rule of rotation.py: since the pinned
  keys' upgrade to witnessed checkpoints (KeySet.upgraded_at) the retired
  key must have endorsed it, and an endorsement that does not verify is
  refused whenever it was written;
- through `accept_keys`, the first key of a region that had none (a newly
  joined region), and the log key of a deployment pinned before it had one:
  trust on first use, as there is nothing older to trace them to.

A published key that is neither is not trusted: entries signed by it are
refused, naming their seq.
"""
from __future__ import annotations

import json
from typing import Iterable

from ..entry import SIGNATURE_ALG
from ..merkle import HASH_SIZE, leaf_hash
from ..note import verifier_key
from .common import VerificationError, b64, check_timestamp, show, strict_b64
from .entries import check_line, line_bytes, posting_tuples
from .keys import PURPOSE_ENTRY, KeySet, PublishedKey, load_keys
from .replay import RunningTree, apply_postings
from .rotation import ROTATION_KIND, rotation_of

STATE_VERSION = 1


def key_record(key: PublishedKey) -> dict:
    """A key as GET /ledger/keys publishes it (with its purpose)."""
    return {"key_id": key.key_id, "region": key.region, "alg": SIGNATURE_ALG, "public_key": b64(key.public_key_raw),
            "note_name": key.note_name, "note_key": verifier_key(key.note_name, key.public_key_raw),
            "valid_from": key.valid_from, "valid_until": key.valid_until, "purpose": key.purpose}


def keys_document(keys: KeySet) -> dict:
    return {"origin": keys.origin, "keys": [key_record(k) for k in keys.keys]}


class Follower:
    """The checked prefix of a log: `size` entries, their root, balances and trusted keys."""

    def __init__(self, keys: KeySet):
        self.keys = keys
        self.balances: dict[str, int] = {}
        self.last_ts: str | None = None
        self._tree = RunningTree()

    @property
    def size(self) -> int:
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def extend(self, lines: Iterable[bytes], *, expected_root: bytes | None = None) -> None:
        """Check and take the lines of entries `size`, `size + 1`, ... in order.

        On the first bad entry raises VerificationError naming its seq; with
        `expected_root`, also when the new tree's root is not that (where
        "checkpoint"). Whatever fails, the follower is left as it was.
        """
        tree = RunningTree.resume(self._tree.size, self._tree.hashes)
        keys, balances, last_ts = self.keys, self.balances, self.last_ts
        before: dict[str, int | None] = {}  # each touched account's balance before this call
        try:
            for line in lines:
                line = line_bytes(line)
                index = tree.size
                entry, keys = self._check(line, index, keys)
                postings = posting_tuples(entry)
                if postings:
                    for source, destination, _amount in postings:
                        before.setdefault(source, balances.get(source))
                        before.setdefault(destination, balances.get(destination))
                    apply_postings(balances, postings, index)
                tree.append(leaf_hash(line))
                last_ts = entry["ts"]
            if expected_root is not None and tree.root() != expected_root:
                raise VerificationError(f"the entries up to {tree.size} hash to the root {b64(tree.root())}, the "
                                        f"checkpoint says {b64(expected_root)}", where="checkpoint")
        except BaseException:
            for account, balance in before.items():
                if balance is None:
                    balances.pop(account, None)
                else:
                    balances[account] = balance
            raise
        self._tree, self.keys, self.last_ts = tree, keys, last_ts

    def _check(self, line: bytes, index: int, keys: KeySet) -> tuple[dict, KeySet]:
        """check_line against the keys trusted so far, or against those a rotation entry introduces."""
        try:
            return check_line(line, index, keys), keys
        except VerificationError:
            peeked = _peek(line)
            key_id = peeked["sig"].get("key_id") if peeked else None
            if not isinstance(key_id, str) or key_id in keys.by_id:
                raise
            if peeked["kind"] != ROTATION_KIND:
                raise VerificationError(
                    f"signed by key {show(key_id)}, which this follower does not trust: not among the keys it "
                    f"pinned, not introduced by a key.rotated entry, not the first key of a new region",
                    seq=index) from None
            learnt = _keys_after_rotation(peeked, index, keys)
            return check_line(line, index, learnt), learnt

    def accept_keys(self, keys_json: dict) -> list[str]:
        """Trust, from a newer GET /ledger/keys document, the first key of each
        region the follower has no key of, and the log key if it has none (trust
        on first use: nothing older vouches for them). Every other key in the
        document is left alone: a rotated key is learnt from its key.rotated
        entry, and a key that no entry introduced stays untrusted. A document
        that contradicts a trusted key (same id, another key or region) or has
        another origin is refused. Returns the ids of the keys now trusted."""
        published = load_keys(keys_json)
        if published.origin != self.keys.origin:
            raise VerificationError(f"origin {published.origin!r} is not the follower's {self.keys.origin!r}",
                                    where="keys")
        for key in published.keys:
            trusted = self.keys.by_id.get(key.key_id)
            if trusted is not None and (trusted.public_key_raw != key.public_key_raw or trusted.region != key.region
                                        or trusted.purpose != key.purpose or trusted.note_name != key.note_name):
                raise VerificationError(f"key {key.key_id} is published as another key than the one this follower "
                                        f"trusts", where="keys")
        known_regions = self.keys.regions()
        first_keys: dict[str, PublishedKey] = {}
        for key in published.entry_keys:
            if key.region not in known_regions and (key.region not in first_keys
                                                    or key.valid_from < first_keys[key.region].valid_from):
                first_keys[key.region] = key
        new = list(first_keys.values())
        if not self.keys.log_keys and published.log_keys:
            new.append(min(published.log_keys, key=lambda k: k.valid_from))
        new = [k for k in new if k.key_id not in self.keys.by_id]
        if new:
            document = keys_document(self.keys)
            document["keys"] += [key_record(k) for k in new]
            self.keys = load_keys(document)
        return [k.key_id for k in new]

    def to_state(self) -> dict:
        return {"version": STATE_VERSION, "size": self.size, "tree": [b64(h) for h in self._tree.hashes],
                "balances": dict(sorted(self.balances.items())), "last_ts": self.last_ts,
                "keys": keys_document(self.keys)}

    @classmethod
    def from_state(cls, state: dict) -> "Follower":
        """A follower from `to_state`'s JSON; VerificationError (where "follower state") if it is not one."""
        def fail(why):
            raise VerificationError(why, where="follower state")

        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            fail(f"not a follower state of version {STATE_VERSION}")
        size, hashes = state.get("size"), state.get("tree")
        if type(size) is not int or not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            fail("size must be an integer and tree a list of base64 hashes")
        raw = [strict_b64(h) for h in hashes]
        if any(h is None or len(h) != HASH_SIZE for h in raw):
            fail("tree must be a list of base64 SHA-256 hashes")
        try:
            tree = RunningTree.resume(size, raw)
        except ValueError as exc:
            fail(str(exc))
        balances = state.get("balances")
        if not isinstance(balances, dict) or any(type(v) is not int or v == 0 for v in balances.values()):
            fail("balances must map accounts to non-zero integers of fen")
        if sum(balances.values()) != 0:
            fail(f"balances sum to {sum(balances.values())} fen, not zero")
        last_ts = state.get("last_ts")
        if (last_ts is None) != (size == 0):
            fail("last_ts is the time of the last entry: null exactly when there is none")
        if last_ts is not None:
            check_timestamp(last_ts, "last_ts", fail)
        try:
            keys = load_keys(state.get("keys"))
        except VerificationError as exc:
            fail(f"keys: {exc.why}")
        follower = cls(keys)
        follower._tree, follower.balances, follower.last_ts = tree, dict(balances), last_ts
        return follower


def _peek(line: bytes) -> dict | None:
    """The line as an entry, leniently, if it has what custody looks at: kind, region, ts, data, sig.key_id."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(entry, dict) and isinstance(entry.get("kind"), str) and isinstance(entry.get("sig"), dict)
            and isinstance(entry.get("data"), dict) and isinstance(entry.get("region"), str)
            and isinstance(entry.get("ts"), str)):
        return None
    return entry


def _keys_after_rotation(entry: dict, index: int, keys: KeySet) -> KeySet:
    """`keys` with the rotation the entry states: the retired key ends, the new one begins."""
    def fail(why):
        raise VerificationError(why, seq=index)

    rotation = rotation_of(entry, keys, fail)
    document = keys_document(keys)
    for record in document["keys"]:
        if record["key_id"] == rotation.retired.key_id:
            record["valid_until"] = rotation.valid_from
    document["keys"].append({
        "key_id": rotation.key_id, "region": rotation.region, "alg": SIGNATURE_ALG,
        "public_key": b64(rotation.verifier.public_key_raw), "note_name": rotation.verifier.name,
        "note_key": entry["data"]["note_key"], "valid_from": rotation.valid_from, "valid_until": None,
        "purpose": PURPOSE_ENTRY})
    try:
        return load_keys(document)
    except VerificationError as exc:
        fail(f"the rotation's new key cannot be trusted: {exc.why}")
