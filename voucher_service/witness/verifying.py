"""Verifying mode: before cosigning, read the log's new entries and check them
as the offline verifier would (ledger.verify.follow.Follower: canonical bytes,
gapless seq, signatures by keys it can trace, postings), and that they hash
to the checkpoint's root.

The follower's state at the cosigned size is stored with the checkpoint
(state.py), so each request reads only the entries after it. A witness with
no follower yet (new, or run in plain mode before) reads the log from entry
0 and first checks that those entries hash to the root it cosigned: a log
that shows its auditors another history than the one it had cosigned is
caught there.

Reads are plain HTTP with the auditor token from D (no redirects: the token
goes to the configured URL only), bounded in entries, bytes and time.
"""
from __future__ import annotations

import http.client
import json
import urllib.parse

from voucher_service.ledger.replies import one_line
from voucher_service.ledger.verify.common import VerificationError
from voucher_service.ledger.verify.follow import Follower
from voucher_service.ledger.verify.keys import load_keys

from .directory import LogConfig
from .state import Cosigned

LEDGER_PATH = "/api/v1/ledger"
PAGE_ENTRIES = 500
MAX_PAGE_BYTES = 32 << 20
MAX_KEYS_BYTES = 8 << 20
TIMEOUT_S = 30.0


class FetchError(Exception):
    """The log's entries or keys could not be read (the witness answers 503)."""


class ContentError(Exception):
    """The log's entries do not verify (422, kept as evidence)."""

    def __init__(self, reason: str, seq: int | None = None, entry: bytes | None = None):
        super().__init__(reason)
        self.reason, self.seq, self.entry = reason, seq, entry


def check_new_entries(log: LogConfig, cosigned: Cosigned, checkpoint) -> tuple[dict, int]:
    """The follower's state at the checkpoint's size, once every entry up to it verified."""
    follower = _stored_follower(cosigned)
    if follower is not None and follower.size == checkpoint.size == cosigned.size:
        return follower.to_state(), follower.size  # the same checkpoint again: nothing new to read
    with _Reader(log) as reader:
        keys_json = reader.keys()
        try:
            published = load_keys(keys_json)
            if follower is None:
                follower = Follower(published)
            else:
                follower.accept_keys(keys_json)
        except VerificationError as exc:
            raise ContentError(f"the log's published keys: {exc.why}") from None
        _check_published_log_key(log, published)
        if follower.size < cosigned.size:
            _extend(reader, follower, cosigned.size, cosigned.root,
                    mismatch=f"the log's entries up to size {cosigned.size} do not hash to the root this witness "
                             f"cosigned at that size: it shows another history than the one it had witnessed")
        _extend(reader, follower, checkpoint.size, checkpoint.root_hash,
                mismatch=f"the log's entries up to size {checkpoint.size} do not hash to the checkpoint's root")
    return follower.to_state(), follower.size


def _check_published_log_key(log: LogConfig, published) -> None:
    """Auditors without a policy take the log key from the published keys. A
    document naming another log key, or none (which reads as a deployment from
    before witnesses, whose checkpoints every region's key could sign), would have
    them trust checkpoints that no witness saw: the key this witness checks the
    log's signatures with must be among them."""
    if published.origin != log.origin:
        raise ContentError(f"the log's published keys are for origin {published.origin!r}, not {log.origin!r}")
    ours = log.verifier
    if not any(key.public_key_raw == ours.public_key_raw and key.note_name == ours.name
               for key in published.log_keys):
        named = ", ".join(key.key_id for key in published.log_keys) or "none"
        raise ContentError(f"the log's published keys do not include the log key this witness checks its "
                           f"checkpoints with (log keys published: {named}): auditors reading them would trust "
                           f"checkpoints no witness saw")


def _stored_follower(cosigned: Cosigned) -> Follower | None:
    if cosigned.follower is None or cosigned.follower_size is None:
        return None
    try:
        follower = Follower.from_state(cosigned.follower)
    except VerificationError:
        return None  # unreadable: start again from entry 0, which checks more, not less
    return follower if follower.size == cosigned.follower_size <= cosigned.size else None


def _extend(reader: "_Reader", follower: Follower, end: int, expected_root: bytes, *, mismatch: str) -> None:
    if follower.size == end:
        if follower.root() != expected_root:
            raise ContentError(mismatch)
        return
    while follower.size < end:
        start = follower.size
        stop = min(end, start + PAGE_ENTRIES)
        lines = reader.entries(start, stop)
        try:
            follower.extend(lines, expected_root=expected_root if stop == end else None)
        except VerificationError as exc:
            if exc.where == "checkpoint":
                raise ContentError(f"{mismatch} ({exc.why})") from None
            entry = lines[exc.seq - start] if exc.seq is not None and start <= exc.seq < stop else None
            raise ContentError(f"entry seq {exc.seq} does not verify: {exc.why}" if exc.seq is not None
                               else exc.why, exc.seq, entry) from None


class _Reader:
    """One keep-alive connection to the log for the whole check."""

    def __init__(self, log: LogConfig):
        parts = urllib.parse.urlsplit(log.url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._connection = connection_class(parts.netloc, timeout=TIMEOUT_S)
        self._base_path = parts.path.rstrip("/") + LEDGER_PATH
        self._headers = {"Authorization": f"Bearer {log.token}"} if log.token else {}
        self._url = log.url

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc) -> None:
        self._connection.close()

    def _get(self, path: str, limit: int) -> bytes:
        try:
            self._connection.request("GET", self._base_path + path, headers=self._headers)
            response = self._connection.getresponse()
            body = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"GET {self._url}{LEDGER_PATH}{path}: {exc or type(exc).__name__}") from None
        if response.status != 200:
            raise FetchError(f"GET {self._url}{LEDGER_PATH}{path} answered {response.status}: {one_line(body)}")
        if len(body) > limit:
            raise FetchError(f"GET {self._url}{LEDGER_PATH}{path}: the answer is larger than {limit} bytes")
        return body

    def keys(self) -> dict:
        body = self._get("/keys", MAX_KEYS_BYTES)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"{self._url}{LEDGER_PATH}/keys did not answer JSON") from None

    def entries(self, start: int, stop: int) -> list[bytes]:
        body = self._get(f"/export?start={start}&end={stop}", MAX_PAGE_BYTES)
        lines = body.split(b"\n")
        if lines[-1] != b"" or len(lines) - 1 != stop - start:
            raise FetchError(f"the export of entries {start}..{stop} did not answer {stop - start} lines")
        return lines[:-1]
