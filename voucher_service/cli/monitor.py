"""`vouchers monitor`: follow a log's published checkpoints and check every new entry (DESIGN §10).

    vouchers monitor --url URL --state DIR --token-file F [--once] [--interval-s N]

Each round it reads GET /ledger/keys (new regions' first keys are trusted on
first use, see ledger/verify/follow.py), GET /ledger/checkpoint, and, when the
tree grew, the consistency proof from the checkpoint it kept last and the new
entries (GET /ledger/export?start=&end=, with the auditor token in F). The
entries go through the follower: canonical form, gapless seq, signatures by
trusted keys valid at their time, rotations endorsed, no account outside
treasury negative; then they must hash to the checkpoint's root.

DIR holds:
    keys.json               the keys document as served at the first run (pinned; never rewritten)
    state.json              the follower's state and the checkpoint it kept last
    checkpoints/            every checkpoint seen, one file each, never overwritten
    evidence/<time>-<what>/ on a failure: the kept and the served checkpoint, the proof or the
                            entries that failed, the keys served, and report.txt saying what happened

Exit status: 0 consistent (with --once; without, it runs until a failure);
1 the log misbehaved (a rollback, a fork, a proof or entry that does not
verify, a checkpoint not signed as it must be): evidence written; 2 the
check could not be made (network, an HTTP error, a bad state directory).
Without --once a round that cannot be made is reported and retried.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from datetime import datetime, timezone

import click

from voucher_service.cli.client import ApiClient, TransportError
from voucher_service.ledger import merkle
from voucher_service.ledger.note import Checkpoint, NoteError, open_note, parse_note
from voucher_service.ledger.verify import VerificationError, load_keys
from voucher_service.ledger.verify.common import b64, strict_b64
from voucher_service.ledger.verify.follow import Follower
from voucher_service.ledger.verify.keys import PURPOSE_LOG, KeySet

EXIT_OK, EXIT_INCONSISTENT, EXIT_UNCHECKED = 0, 1, 2
MAX_ENTRIES_PER_REQUEST = 1_000
MAX_PROOF_HASHES = 128            # two per level of a tree of < 2^64 leaves
MAX_TOKEN_BYTES = 4_096
DEFAULT_INTERVAL_S = 30
KEYS_FILE, STATE_FILE, LOCK_FILE = "keys.json", "state.json", "lock"
CHECKPOINTS_DIR, EVIDENCE_DIR = "checkpoints", "evidence"
STATE_VERSION = 1


class Unchecked(Exception):
    """The round could not be made: nothing was learnt about the log."""


class Inconsistent(Exception):
    """The log misbehaved. `what` names the kind (rollback, fork, ...), `files` the evidence beyond the
    two checkpoints, by file name."""

    def __init__(self, what: str, why: str, *, served: str | None = None, files: dict | None = None):
        super().__init__(f"{what}: {why}")
        self.what, self.why, self.served, self.files = what, why, served, files or {}
        self.evidence: str | None = None  # the folder written, once it is


def _atomic_write(path: str, data: bytes, *, replace: bool = True) -> bool:
    """Write a file whole or not at all: a temp file in its folder, fsync, then rename (or, with
    replace=False, link: an existing file is kept). Returns whether the file was written."""
    folder = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return True
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _json_bytes(value) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def open_served(note: str, keys: KeySet) -> tuple[Checkpoint, list]:
    """The checkpoint and the trusted keys whose signatures on it verify. A line by a trusted key that
    does not verify is a failure; lines by other keys (witnesses' cosignatures) are ignored."""
    try:
        text, good = open_note(note, keys.verifiers)
        checkpoint = Checkpoint.parse(text)
    except NoteError as exc:
        raise Inconsistent("signature", f"the served checkpoint does not verify with the trusted keys: {exc}",
                           served=note) from None
    if checkpoint.origin != keys.origin:
        raise Inconsistent("checkpoint", f"origin {checkpoint.origin!r} is not the log's {keys.origin!r}", served=note)
    return checkpoint, [keys.by_note[(v.name, v.key_hash)] for v in good]


def require_signers(note: str, signers: list, keys: KeySet, last_ts: str | None) -> str:
    """DESIGN §10: a checkpoint covering an entry from the upgrade on carries the log key's signature;
    one covering only older entries may instead be signed by every region with a key valid at its
    newest entry (`last_ts`; None when that is not known here: then only the log key will do, once
    there is one)."""
    if any(key.purpose == PURPOSE_LOG for key in signers):
        return "signed by the log key"
    upgraded_at = keys.upgraded_at
    if upgraded_at is not None and (last_ts is None or last_ts >= upgraded_at):
        raise Inconsistent("signature", f"not signed by the log key, and it covers entries from the upgrade to "
                                        f"witnessed checkpoints ({upgraded_at}) on", served=note)
    required = keys.regions_valid_at(last_ts) if last_ts is not None else keys.active_regions()
    signed = {key.region for key in signers if last_ts is None or key.valid_at(last_ts)}
    missing = sorted(required - signed)
    if missing:
        raise Inconsistent("signature", f"a checkpoint from before the upgrade, not signed by region(s) "
                                        f"{', '.join(missing)}", served=note)
    return "signed by every region (before the upgrade)"


class Monitor:
    def __init__(self, client: ApiClient, token: str, state_dir: str):
        self.client, self.token, self.dir = client, token, state_dir

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    # --- HTTP -------------------------------------------------------------------------------------

    def _get(self, path: str, *, query: dict | None = None, token: str | None = None):
        try:
            reply = self.client.api("GET", path, token, query=query)
        except TransportError as exc:
            raise Unchecked(str(exc)) from None
        if reply.status != 200:
            raise Unchecked(f"GET {path} answered {reply.status}: {reply.problem}")
        return reply

    def _keys_document(self) -> dict:
        document = self._get("/ledger/keys").json
        if not isinstance(document, dict):
            raise Unchecked("GET /ledger/keys did not answer a JSON object")
        return document

    def _checkpoint_note(self) -> str:
        try:
            return self._get("/ledger/checkpoint").raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Inconsistent("checkpoint", "the served checkpoint is not UTF-8 text") from None

    def _proof(self, first: int, second: int) -> list[bytes]:
        body = self._get("/ledger/proofs/consistency", query={"first": first, "second": second}).json
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES or not all(isinstance(h, str)
                                                                                      for h in hashes):
            raise Unchecked("GET /ledger/proofs/consistency did not answer {\"hashes\": [base64, ...]}")
        raw = [strict_b64(h) for h in hashes]
        if any(h is None or len(h) != merkle.HASH_SIZE for h in raw):
            raise Unchecked("the consistency proof's hashes are not base64 SHA-256 hashes")
        return raw

    def _entries(self, start: int, end: int) -> list[bytes]:
        raw = self._get("/ledger/export", query={"start": start, "end": end}, token=self.token).raw
        lines = raw.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        if len(lines) != end - start:
            raise Unchecked(f"GET /ledger/export?start={start}&end={end} gave {len(lines)} entries, not "
                            f"{end - start}")
        return lines

    # --- the state directory ----------------------------------------------------------------------

    def load(self, served_keys: dict) -> tuple[Follower, str | None]:
        """The follower and the last kept checkpoint; at the first run, pin the keys served now."""
        if not os.path.exists(self.path(KEYS_FILE)):
            if os.path.exists(self.path(STATE_FILE)):
                raise Unchecked(f"{self.path(STATE_FILE)} exists without the pinned {KEYS_FILE}")
            try:
                load_keys(served_keys)
            except VerificationError as exc:
                raise Unchecked(f"the served keys cannot be pinned: {exc.why}") from None
            _atomic_write(self.path(KEYS_FILE), _json_bytes(served_keys), replace=False)
        try:
            if not os.path.exists(self.path(STATE_FILE)):
                with open(self.path(KEYS_FILE), "rb") as handle:
                    return Follower(load_keys(json.load(handle))), None
            with open(self.path(STATE_FILE), "rb") as handle:
                state = json.load(handle)
            if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                raise Unchecked(f"{self.path(STATE_FILE)} is not a monitor state of version {STATE_VERSION}")
            kept = state.get("checkpoint")
            if not isinstance(kept, str):
                raise Unchecked(f"{self.path(STATE_FILE)} has no kept checkpoint")
            return Follower.from_state(state.get("follower")), kept
        except (OSError, ValueError) as exc:
            raise Unchecked(f"cannot read the state in {self.dir}: {exc}") from None
        except VerificationError as exc:
            raise Unchecked(f"the state in {self.dir} does not load: {exc}") from None

    def keep_checkpoint(self, note: str, checkpoint: Checkpoint) -> str:
        digest = hashlib.sha256(note.encode("utf-8")).hexdigest()[:16]
        name = f"{checkpoint.size:012d}-{digest}.txt"
        _atomic_write(self.path(CHECKPOINTS_DIR, name), note.encode("utf-8"), replace=False)
        return name

    def save(self, note: str, follower: Follower) -> None:
        _atomic_write(self.path(STATE_FILE), _json_bytes({"version": STATE_VERSION, "checkpoint": note,
                                                          "follower": follower.to_state()}))

    def write_evidence(self, failure: Inconsistent, kept: str | None, served_keys: dict | None) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        folder = self.path(EVIDENCE_DIR, f"{stamp}-{failure.what}")
        os.makedirs(folder)
        files = {"report.txt": f"{failure.what}: {failure.why}\n", **failure.files}
        if kept is not None:
            files["kept-checkpoint.txt"] = kept
        if failure.served is not None:
            files["served-checkpoint.txt"] = failure.served
        if served_keys is not None:
            files["served-keys.json"] = _json_bytes(served_keys)
        for name, content in files.items():
            _atomic_write(os.path.join(folder, name), content if isinstance(content, bytes) else
                          content.encode("utf-8"), replace=False)
        return folder

    # --- one round --------------------------------------------------------------------------------

    def round(self) -> str:
        """Check what the log serves now against what was kept; keep it if it is consistent."""
        for folder in (CHECKPOINTS_DIR, EVIDENCE_DIR):
            os.makedirs(self.path(folder), exist_ok=True)
        served_keys = self._keys_document()
        follower, kept = self.load(served_keys)
        try:
            return self._check(follower, kept, served_keys)
        except Inconsistent as failure:
            failure.evidence = self.write_evidence(failure, kept, served_keys)
            raise

    def _check(self, follower: Follower, kept: str | None, served_keys: dict) -> str:
        try:
            load_keys(served_keys)
        except VerificationError as exc:
            raise Unchecked(f"GET /ledger/keys: {exc.why}") from None
        try:
            follower.accept_keys(served_keys)
        except VerificationError as exc:
            raise Inconsistent("keys", f"the served keys contradict the trusted ones: {exc.why}") from None
        note = self._checkpoint_note()
        served, signers = open_served(note, follower.keys)
        self.keep_checkpoint(note, served)
        old = Checkpoint.parse(parse_note(kept)[0]) if kept is not None else Checkpoint(served.origin, 0,
                                                                                         merkle.EMPTY_ROOT)
        if served.size < old.size:
            require_signers(note, signers, follower.keys, None)
            raise Inconsistent("rollback", f"the log's checkpoint has size {served.size}, below the size "
                                           f"{old.size} of the checkpoint kept before", served=note)
        if served.size == old.size and served.root_hash != old.root_hash:
            require_signers(note, signers, follower.keys, follower.last_ts)
            raise Inconsistent("fork", f"two checkpoints of size {served.size} with different roots: "
                                       f"{b64(old.root_hash)} kept, {b64(served.root_hash)} served", served=note)
        grown = served.size - old.size
        if grown and old.size:
            proof = self._proof(old.size, served.size)
            if not merkle.verify_consistency(old.size, served.size, old.root_hash, served.root_hash, proof):
                raise Inconsistent("inconsistent", f"the consistency proof from size {old.size} to {served.size} "
                                                   f"does not verify: the log does not extend the kept checkpoint",
                                   served=note, files={"consistency-proof.json": _json_bytes(
                                       {"first": old.size, "second": served.size, "hashes": list(map(b64, proof))})})
        for start in range(follower.size, served.size, MAX_ENTRIES_PER_REQUEST):
            end = min(start + MAX_ENTRIES_PER_REQUEST, served.size)
            lines = self._entries(start, end)
            try:
                follower.extend(lines)
            except VerificationError as exc:
                raise Inconsistent("entries", exc.report(), served=note, files={
                    f"entries-{start}-{end}.jsonl": b"".join(line + b"\n" for line in lines)}) from None
        if follower.root() != served.root_hash:
            raise Inconsistent("root", f"the entries up to {served.size} hash to {b64(follower.root())}, the "
                                       f"checkpoint says {b64(served.root_hash)}", served=note)
        _served, signers = open_served(note, follower.keys)  # again: the keys may have grown by a rotation
        signed = require_signers(note, signers, follower.keys, follower.last_ts)
        self.save(note, follower)
        if kept is not None and not grown:
            return f"ok: size {served.size} unchanged, root {b64(served.root_hash)}"
        since = f"consistent with the kept size {old.size}" if kept is not None else "the first checkpoint kept"
        return (f"ok: size {served.size}, root {b64(served.root_hash)}, {signed}; {grown} new entries verified, "
                f"{since}")


def _read_token(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            token = handle.read(MAX_TOKEN_BYTES + 1).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the token file {path}: {exc}") from None
    if not token or len(token) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
        raise click.UsageError(f"{path} must hold one auditor token")
    return token


@click.command("monitor")
@click.option("--url", required=True, help="the service's base URL, e.g. http://127.0.0.1:8000")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="the monitor's own folder: pinned keys, kept checkpoints, evidence")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False), help="a file holding an auditor token")
@click.option("--once", is_flag=True, help="one round: exit 0 when the log is consistent")
@click.option("--interval-s", type=click.IntRange(min=1), default=DEFAULT_INTERVAL_S, show_default=True,
              help="seconds between rounds")
def monitor_command(url, state_dir, token_file, once, interval_s):
    """Follow the log at URL: check each published checkpoint against the last one kept and verify every
    new entry; on a fork or an inconsistency write the evidence and exit 1."""
    try:
        client = ApiClient(url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    monitor = Monitor(client, _read_token(token_file), state_dir)
    try:
        os.makedirs(state_dir, exist_ok=True)
        lock = open(os.path.join(state_dir, LOCK_FILE), "a")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        click.echo(f"cannot use {state_dir} (another monitor on it?): {exc}", err=True)
        raise SystemExit(EXIT_UNCHECKED) from None
    while True:
        try:
            click.echo(monitor.round())
        except Inconsistent as failure:
            click.echo(f"FAILED: {failure}\nevidence: {failure.evidence}", err=True)
            raise SystemExit(EXIT_INCONSISTENT) from None
        except (Unchecked, OSError) as exc:
            click.echo(f"not checked: {exc}", err=True)
            if once:
                raise SystemExit(EXIT_UNCHECKED) from None
        if once:
            return
        time.sleep(interval_s)
