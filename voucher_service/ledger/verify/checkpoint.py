"""Signed checkpoints: every signature on one by a published key, and every
region that had to cosign it has."""
from __future__ import annotations

from ..note import Checkpoint, NoteError, open_note, parse_note
from .common import DECIMAL, VerificationError
from .keys import KeySet, PublishedKey


def open_checkpoint(note_text: str, keys: KeySet, *,
                    where: str = "checkpoint") -> tuple[Checkpoint, list[PublishedKey]]:
    """Parse a signed checkpoint and check every signature on it.

    Every signature line must be by a published key (the service signs only
    with its own, published keys: anything else is a forgery or a mix-up) and
    must verify. Which regions had to sign depends on the entries it covers,
    see `check_cosigners`.
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
            fail(f"signed by {sig.name}+{sig.key_hash.hex()}, which is not a published key")
        if not key.verifier.verify(message, sig.signature):
            fail(f"the signature by {key.note_name} (key {key.key_id}) does not verify")
        if key not in signers:
            signers.append(key)
    try:
        # The same check as stock tooling (Go's note.Open) makes: redundant
        # after the loop above, kept so the two can never disagree silently.
        open_note(note_text, keys.verifiers)
    except NoteError as exc:
        fail(str(exc))
    return checkpoint, signers


def check_cosigners(signers: list[PublishedKey], keys: KeySet, *, last_ts: str | None, require_active: bool,
                    where: str = "checkpoint") -> list[str]:
    """The regions that cosigned, once every region that had to has.

    `last_ts` is the time of the newest entry the checkpoint covers (it was
    signed after it): a key retired by then cannot have signed it honestly,
    and every region with a key valid then must have signed. A current
    checkpoint must also be signed by every region with an active key.
    """
    for key in signers:
        if last_ts is not None and key.retired_by(last_ts):
            raise VerificationError(
                f"signed by key {key.key_id} of {key.region}, retired at {key.valid_until}, before the newest "
                f"entry it covers ({last_ts})", where=where)
    cosigned = {key.region for key in signers}
    required = set(keys.active_regions()) if require_active else set()
    if last_ts is not None:
        required |= keys.regions_valid_at(last_ts)
    missing = sorted(required - cosigned)
    if missing:
        raise VerificationError(f"not cosigned by region{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                f"(cosigned by {', '.join(sorted(cosigned)) or 'nobody'})", where=where)
    return sorted(cosigned)
