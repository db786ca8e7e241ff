"""Signed checkpoints: which published keys signed one, whether those are the
keys that had to (the trust model of DESIGN §4 and §10), and, given a policy,
whether the witnesses it requires cosigned it.

Since the upgrade to witnessed checkpoints (the log key's `valid_from`,
`KeySet.upgraded_at`) the operator signs each checkpoint with its one log key
and independent witnesses cosign it. Before, every region's entry key signed
it inside the one service; such checkpoints stay verifiable, but only for
entries from before the upgrade: an operator holding every region's key could
otherwise sign a fork of the new history with them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..note import Checkpoint, NoteError, open_note, parse_note
from ..policy import MAX_POLICY_BYTES, Policy, PolicyError
from .common import DECIMAL, VerificationError
from .files import read_text
from .keys import PURPOSE_LOG, KeySet, PublishedKey


@dataclass(frozen=True)
class Signed:
    """Who vouches for a checkpoint, once it is signed as it must be."""
    log_key: str | None                     # the key id of the log key that signed it
    regions: tuple[str, ...]                # regions whose entry key signed it (legacy checkpoints)
    witnesses: tuple[str, ...] | None = None  # witnesses that cosigned it, when a policy was checked

    def text(self) -> str:
        if self.log_key is None:
            said = f"cosigned by {', '.join(self.regions)}"
        else:
            said = f"signed by the log key {self.log_key}"
            if self.regions:
                said += f" and by regions {', '.join(self.regions)}"
        if self.witnesses is not None:
            said += (f", cosigned by witnesses {', '.join(self.witnesses)}" if self.witnesses
                     else ", cosigned by no witness (the policy's quorum is none)")
        return said


def open_checkpoint(note_text: str, keys: KeySet, *,
                    where: str = "checkpoint") -> tuple[Checkpoint, list[PublishedKey]]:
    """Parse a signed checkpoint and check every signature on it by a published key.

    Signature lines by keys that are not published are ignored, as
    c2sp.org/signed-note and Go's note.Open do: a witness's cosignature is
    one, and anyone may add one. A line by a published key must verify, and
    at least one must be there. Which keys had to sign depends on the entries
    it covers, see `check_signers`.
    """
    def fail(why):
        raise VerificationError(why, where=where)

    if not isinstance(note_text, str):
        fail("a checkpoint is a signed note (text)")
    try:
        text, signatures = parse_note(note_text)
        checkpoint = Checkpoint.parse(text)
    except ValueError as exc:  # NoteError, or text that cannot be UTF-8
        fail(f"not a signed C2SP checkpoint: {exc}")
    if not DECIMAL.match(text.split("\n")[1]):
        fail("the tree size must be written in ASCII digits")
    if checkpoint.origin != keys.origin:
        fail(f"origin {checkpoint.origin!r} is not the keys' origin {keys.origin!r}")
    message = text.encode("utf-8")
    signers: list[PublishedKey] = []
    for sig in signatures:
        key = keys.by_note.get((sig.name, sig.key_hash))
        if key is None:
            continue
        if not key.verifier.verify(message, sig.signature):
            fail(f"the signature by {key.note_name} (key {key.key_id}) does not verify")
        if key not in signers:
            signers.append(key)
    if not signers:
        fail(f"signed by no published key (signature lines by {', '.join(sorted({s.name for s in signatures}))})")
    try:
        # The same check as stock tooling (Go's note.Open) makes: redundant
        # after the loop above, kept so the two can never disagree silently.
        open_note(note_text, keys.verifiers)
    except NoteError as exc:
        fail(str(exc))
    return checkpoint, signers


def check_signers(signers: list[PublishedKey], keys: KeySet, *, last_ts: str | None, require_active: bool,
                  where: str = "checkpoint") -> Signed:
    """Who signed the checkpoint, once the keys that had to have.

    `last_ts` is the time of the newest entry the checkpoint covers (it was
    signed after it): a key retired by then cannot have signed it honestly.
    A checkpoint covering an entry from the upgrade on must be signed by the
    log key. One covering only older entries may instead satisfy the legacy
    rule: every region with a key valid at `last_ts` signed it, and, for a
    current checkpoint of a deployment without a log key, every region with
    an active key.
    """
    def fail(why):
        raise VerificationError(why, where=where)

    for key in signers:
        if last_ts is not None and key.retired_by(last_ts):
            owner = "the log" if key.purpose == PURPOSE_LOG else key.region
            fail(f"signed by key {key.key_id} of {owner}, retired at {key.valid_until}, before the newest entry "
                 f"it covers ({last_ts})")
    log_key = next((key.key_id for key in signers if key.purpose == PURPOSE_LOG), None)
    cosigned = tuple(sorted({key.region for key in signers if key.purpose != PURPOSE_LOG}))
    upgraded_at = keys.upgraded_at
    if log_key is not None:
        return Signed(log_key, cosigned)
    if upgraded_at is not None and last_ts is not None and last_ts >= upgraded_at:
        fail(f"not signed by the log key, yet it covers entries written since the upgrade to witnessed checkpoints "
             f"(the log key is valid from {upgraded_at}, the newest entry is of {last_ts}): region keys alone "
             f"(here {', '.join(cosigned)}) no longer vouch for a checkpoint")
    required = set(keys.active_regions()) if require_active and (upgraded_at is None or last_ts is None) else set()
    if last_ts is not None:
        required |= keys.regions_valid_at(last_ts)
    missing = sorted(required - set(cosigned))
    if missing:
        fail(f"not cosigned by region{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
             f"(cosigned by {', '.join(cosigned) or 'nobody'})")
    return Signed(None, cosigned)


def load_policy_file(path: str) -> Policy:
    """A policy file (`--policy`), parsed; its errors name the line."""
    try:
        return Policy.parse(read_text(path, "policy", MAX_POLICY_BYTES))
    except PolicyError as exc:
        raise VerificationError(str(exc), where="policy") from None


def check_policy(policy: Policy, note_text: str, *, where: str = "checkpoint") -> tuple[str, ...]:
    """The witnesses that cosigned the checkpoint, once it satisfies the policy."""
    try:
        _checkpoint, witnesses = policy.check(note_text)
    except PolicyError as exc:
        raise VerificationError(f"does not satisfy the policy: {exc}", where=where) from None
    return tuple(witnesses)
