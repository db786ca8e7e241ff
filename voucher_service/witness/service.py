"""What the witness answers to POST /add-checkpoint (c2sp.org/tlog-witness).

In the order of the spec: a body that is not a request is 400; a checkpoint of
a log it does not witness 404; no valid signature by that log's key 403. From
then on the log has signed what it sent, so every refusal is kept as evidence
(state.py): old size above the checkpoint's 400; old size other than the size
it last cosigned for the log 409 with that size (text/x.tlog.size); the same
size with another root 409; a consistency proof that does not verify 422.

Verifying mode (ours, DESIGN §10): then the new entries are read from the log
and checked (verifying.py): an entry or root that does not verify is 422 with
the seq named, kept as evidence; entries that cannot be read are 503, and
nothing is cosigned. Finally the checkpoint is stored and cosigned in one
transaction that re-reads the stored size under the write lock (state.commit),
and answered 200 with the cosignature line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from voucher_service.ledger.cosignature import cosign
from voucher_service.ledger.merkle import verify_consistency
from voucher_service.ledger.note import NoteError, open_note
from voucher_service.ledger.tlog_witness import SIZE_MEDIA_TYPE, AddCheckpoint, RequestError, parse_request, size_body

from . import verifying
from .directory import Identity, LogConfig
from .state import MAX_STORED_SIZE, Cosigned, Evidence, State

TEXT = "text/plain; charset=utf-8"
MODES = ("verifying", "plain")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = TEXT


def text_reply(status: int, message: str) -> Reply:
    return Reply(status, (message.replace("\n", " ") + "\n").encode("utf-8"))


@dataclass(frozen=True)
class Refusal:
    status: int
    kind: str                 # the evidence kind (state.Evidence)
    reason: str
    seq: int | None = None
    entry: bytes | None = None
    size_body: bytes | None = None  # a 409 for a wrong old size answers the size alone

    def reply(self) -> Reply:
        if self.size_body is not None:
            return Reply(self.status, self.size_body, SIZE_MEDIA_TYPE)
        return text_reply(self.status, self.reason)


def utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Witness:
    def __init__(self, identity: Identity, logs: dict[str, LogConfig], state: State, *, mode: str = "verifying",
                 clock=time.time):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.identity, self.logs, self.state, self.mode, self.clock = identity, logs, state, mode, clock

    def add_checkpoint(self, body: bytes) -> Reply:
        try:
            request = parse_request(body)
        except RequestError as exc:
            return text_reply(400, f"malformed add-checkpoint request: {exc}")
        origin = request.checkpoint.origin
        log = self.logs.get(origin)
        if log is None:
            return text_reply(404, f"this witness does not witness a log with origin {origin!r}")
        try:
            open_note(request.note, [log.verifier])
        except NoteError as exc:
            return text_reply(403, f"the checkpoint has no valid signature by the log key "
                                   f"{log.verifier.name}+{log.verifier.key_hash.hex()}: {exc}")
        cosigned = self.state.latest(origin)
        refusal = check_request(request, cosigned)
        if refusal is not None:
            return self._refuse(request, body, cosigned, refusal)
        follower = follower_size = None
        if self.mode == "verifying" and log.url is not None:
            try:
                follower, follower_size = verifying.check_new_entries(log, cosigned, request.checkpoint)
            except verifying.FetchError as exc:
                return text_reply(503, f"cannot read the log's entries to check them, nothing cosigned: {exc}")
            except verifying.ContentError as exc:
                return self._refuse(request, body, cosigned, Refusal(422, "content", exc.reason, exc.seq, exc.entry))
        checkpoint = request.checkpoint
        text = checkpoint_text(request)
        line, now = self.state.commit(
            origin, cosigned, size=checkpoint.size, root=checkpoint.root_hash, note=request.note,
            now_s=int(self.clock()), follower=follower, follower_size=follower_size, updated_at=utc_now_text(),
            cosign=lambda timestamp: cosign(text, self.identity.name, self.identity.key.sign,
                                            self.identity.key.public_key_raw, timestamp))
        if line is None:
            # Another request moved the log on while this one was checked: answer
            # as the state it left says (a 409 with the new size).
            refusal = check_request(request, now) or Refusal(409, "stale-old-size", "the state changed",
                                                             size_body=size_body(now.size))
            return self._refuse(request, body, now, refusal)
        return Reply(200, line.encode("utf-8"))

    def _refuse(self, request: AddCheckpoint, body: bytes, cosigned: Cosigned, refusal: Refusal) -> Reply:
        self.state.keep_evidence(Evidence(
            origin=request.checkpoint.origin, kind=refusal.kind, status=refusal.status, reason=refusal.reason,
            old_size=request.old_size, checkpoint_size=request.checkpoint.size, note=request.note, body=body,
            cosigned=cosigned, seq=refusal.seq, entry=refusal.entry), utc_now_text())
        return refusal.reply()


def checkpoint_text(request: AddCheckpoint) -> str:
    """The note text the log signed, extension lines included: what a cosignature signs."""
    return request.note[: request.note.rindex("\n\n") + 1]


def check_request(request: AddCheckpoint, cosigned: Cosigned) -> Refusal | None:
    """The spec's checks of a signed request against the latest cosigned checkpoint."""
    old, checkpoint = request.old_size, request.checkpoint
    if old > checkpoint.size:
        return Refusal(400, "old-beyond-size", f"the old size {old} is larger than the checkpoint's size "
                                               f"{checkpoint.size}")
    if checkpoint.size > MAX_STORED_SIZE:
        return Refusal(400, "size-out-of-range", f"a tree size above {MAX_STORED_SIZE} is not one this witness keeps")
    if old != cosigned.size:
        return Refusal(409, "stale-old-size", f"the latest checkpoint cosigned for this log has size "
                                              f"{cosigned.size}, not {old}", size_body=size_body(cosigned.size))
    if old == checkpoint.size and checkpoint.root_hash != cosigned.root:
        return Refusal(409, "fork", f"the checkpoint's root at size {old} is not the root this witness cosigned at "
                                    f"that size: the log forked")
    if not verify_consistency(old, checkpoint.size, cosigned.root, checkpoint.root_hash, request.proof):
        return Refusal(422, "bad-proof", f"the consistency proof from size {old} to {checkpoint.size} does not "
                                         f"verify against the cosigned root and the checkpoint's root")
    return None
