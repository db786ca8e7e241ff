"""Publishing checkpoints (DESIGN §10): sign the tree with the log key when it
grew, ask every witness to cosign, keep the result for GET /ledger/checkpoint.

Nothing here runs in a request: `publish_round` is called by the background
publisher (journal/election.py) and by `vouchers checkpoint publish`,
`sign_checkpoint` alone by `vouchers init`. Reading the tree needs no ledger lock: nodes and entries
below the head never change once written, so the checkpoint is computed in
a read-only transaction, and only the insert of the signed row is a (short)
write. Network calls to witnesses hold no transaction at all.

A witness's answer is trusted only as far as its signature: each returned
line is checked with the witness's vkey (cosignature/v1) before it is added
to the stored note.
"""
from __future__ import annotations

import http.client
import logging
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from voucher_service.clock import rfc3339, utc_now
from voucher_service.journal import store as journal
from voucher_service.journal.keys import KeyUnavailable, log_key_record
from voucher_service.journal.tree import check_new_leaves, forget_published_note, latest_checkpoint, tree_size
from voucher_service.ledger import merkle
from voucher_service.ledger.cosignature import Cosigner, add_signature_lines, cosignatures
from voucher_service.ledger.note import Checkpoint, NoteError, key_hash, parse_note, sign_note
from voucher_service.ledger.replies import one_line
from voucher_service.ledger.tlog_witness import ADD_CHECKPOINT_PATH, SIZE_MEDIA_TYPE, parse_size_body, request_body
from voucher_service.models import LedgerCheckpoint, PublisherStatus, WitnessStatus

log = logging.getLogger(__name__)

DEFAULT_WITNESS_TIMEOUT_S = 5.0
MAX_RESPONSE_BYTES = 64 * 1024
ERROR_CHARS = 500


@dataclass(frozen=True)
class Witness:
    name: str
    cosigner: Cosigner
    url: str


def parse_witnesses(text: str, where: str = "VOUCHERS_WITNESSES") -> list[Witness]:
    """`NAME VKEY URL` a line (blank lines and # comments skipped)."""
    witnesses, names = [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{where} line {number}: expected NAME VKEY URL")
        name, vkey, url = parts
        try:
            cosigner = Cosigner.parse(vkey)
        except NoteError as exc:
            raise ValueError(f"{where} line {number}: {exc}") from None
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{where} line {number}: {url!r} is not an http(s) URL")
        if name in names:
            raise ValueError(f"{where} line {number}: witness {name} is listed twice")
        names.add(name)
        witnesses.append(Witness(name, cosigner, url.rstrip("/")))
    return witnesses


def load_witnesses(path: str | None) -> list[Witness]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_witnesses(handle.read(), path)
    except OSError as exc:
        raise ValueError(f"VOUCHERS_WITNESSES: cannot read {path}: {exc.strerror}") from None


# --- signing ---------------------------------------------------------------------

def _log_signed(note: str, origin: str, public_key_raw: bytes) -> bool:
    _text, signatures = parse_note(note)
    expected = key_hash(origin, public_key_raw)
    return any(s.name == origin and s.key_hash == expected for s in signatures)


def _log_signature_lines(text: str, key, origin: str, public_key_raw: bytes) -> str:
    note = sign_note(text, [(origin, key.sign, public_key_raw)])
    return note[len(text) + 1:]


def sign_checkpoint(engine, keyring, origin: str, *, reading=nullcontext) -> LedgerCheckpoint:
    """The latest checkpoint, signed by the log key, after signing the current
    tree if it grew. Refuses (LedgerInvariantError) to sign a tree that does
    not extend the last checkpoint: a removed tail or an edited entry.

    `reading()` wraps the transactions that only read (the caller passes
    db.read_only, so that on SQLite checking a round's new entries never
    holds the write lock that writers wait for)."""
    with reading(), Session(engine, expire_on_commit=False) as session:
        record = log_key_record(session)
        if record is None:
            raise KeyUnavailable("there is no log key: run `vouchers init`")
        public_key = bytes(record.public_key)
        key = keyring.load(record.key_id)
        size = tree_size(session)
        previous = latest_checkpoint(session)
        if previous is not None and previous.size > size:
            raise journal.LedgerInvariantError(
                f"refusing to sign: the ledger holds {size} entries, fewer than the {previous.size} of the last "
                f"signed checkpoint; its tail was removed")
        read = journal.node_reader(session)
        if previous is not None and previous.size == size:
            if _log_signed(previous.note, origin, public_key):
                return previous
            # A checkpoint from before the log key (region-signed): the same
            # tree, now signed by the log key too, so it can be witnessed.
            if merkle.root(size, read) != bytes(previous.root_hash):
                raise journal.LedgerInvariantError(
                    f"refusing to sign: the stored tree of size {size} no longer has the checkpoint's root")
            text = Checkpoint(origin, size, bytes(previous.root_hash)).text()
            upgrade_lines, row = _log_signature_lines(text, key, origin, public_key), None
        else:
            check_new_leaves(session, previous.size if previous else 0, size, read)
            new_root = merkle.root(size, read)
            if previous is not None:
                proof = merkle.consistency_proof(previous.size, size, read)
                if not merkle.verify_consistency(previous.size, size, bytes(previous.root_hash), new_root, proof):
                    raise journal.LedgerInvariantError(
                        f"refusing to sign: the tree of size {size} does not extend the checkpoint of size "
                        f"{previous.size}")
            note = sign_note(Checkpoint(origin, size, new_root).text(), [(origin, key.sign, public_key)])
            row = LedgerCheckpoint(size=size, root_hash=new_root, note=note, created_at=rfc3339(utc_now()))
    with Session(engine, expire_on_commit=False) as session:
        try:
            if row is None:
                row = session.get(LedgerCheckpoint, size)
                row.note = add_signature_lines(row.note, upgrade_lines)
            session.add(row)
            session.commit()
        except IntegrityError:  # another publisher signed this size first: theirs stands
            session.rollback()
            row = session.get(LedgerCheckpoint, size)
    return row


# --- cosigning -------------------------------------------------------------------

class WitnessError(Exception):
    """No cosignature. `refused`: the witness answered and said no (asking
    again about the same checkpoint would only add to its evidence), as
    opposed to no answer at all (asked again next round)."""

    def __init__(self, why: str, *, refused: bool = True):
        super().__init__(why)
        self.refused = refused


def _post(witness: Witness, body: bytes, timeout_s: float) -> tuple[int, str, bytes]:
    parsed = urllib.parse.urlsplit(witness.url)
    connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parsed.hostname, parsed.port, timeout=timeout_s)
    try:
        connection.request("POST", (parsed.path or "") + ADD_CHECKPOINT_PATH, body=body,
                           headers={"Content-Type": "text/plain; charset=utf-8"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise WitnessError(f"no answer from {witness.url}: {type(exc).__name__}: {exc}", refused=False) from None
    finally:
        connection.close()


def request_cosignature(witness: Witness, checkpoint: LedgerCheckpoint, old_size: int, proof_for,
                        timeout_s: float) -> tuple[int, str]:
    """(size cosigned, the witness's signature lines). One retry, after a 409
    that tells the size the witness holds; anything else is a WitnessError."""
    text, _ = parse_note(checkpoint.note)
    for _attempt in range(2):
        body = request_body(old_size, proof_for(old_size, checkpoint.size), checkpoint.note)
        status, content_type, answer = _post(witness, body, timeout_s)
        if status == 200:
            lines = answer.decode("utf-8", "replace")
            try:
                good = cosignatures(text + "\n" + lines, [witness.cosigner])
            except NoteError as exc:
                raise WitnessError(f"answered 200 with a bad cosignature: {exc}") from None
            if witness.cosigner.name not in good:
                raise WitnessError("answered 200 without a cosignature by its key")
            own = [line for line in lines.split("\n") if line.startswith(f"\u2014 {witness.cosigner.name} ")]
            return checkpoint.size, "\n".join(own) + "\n"
        if status == 409 and content_type.split(";")[0].strip() == SIZE_MEDIA_TYPE:
            held = parse_size_body(answer)
            if held > checkpoint.size:
                raise WitnessError(f"it has cosigned a tree of size {held}, larger than our latest checkpoint "
                                   f"({checkpoint.size}): the log was rolled back or forked")
            if held == old_size:
                break
            old_size = held
            continue
        raise WitnessError(f"refused with {status}: {one_line(answer)}",
                           refused=status < 500)
    raise WitnessError(f"refused with 409 at old size {old_size}: the tree it holds has another root (a fork)")


def _has_cosignature(note: str, witness: Witness) -> bool:
    try:
        return bool(cosignatures(note, [witness.cosigner]))
    except NoteError:
        return False


def collect_cosignatures(engine, checkpoint: LedgerCheckpoint, witnesses: list[Witness], *,
                         timeout_s: float = DEFAULT_WITNESS_TIMEOUT_S, reading=nullcontext) -> LedgerCheckpoint:
    """Ask, in parallel, every witness that has not cosigned `checkpoint`;
    store what they sign and how each answered."""
    with reading(), Session(engine) as session:
        statuses = {s.name: (s.cosigned_size, s.refused_size) for s in session.exec(select(WitnessStatus)).all()}
    held = {name: cosigned for name, (cosigned, _refused) in statuses.items()}
    pending = [w for w in witnesses if not _has_cosignature(checkpoint.note, w)
               and statuses.get(w.name, (None, None))[1] != checkpoint.size]
    if not pending:
        return checkpoint

    def proof_for(old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        with reading(), Session(engine) as session:
            return merkle.consistency_proof(old, new, journal.node_reader(session))

    def ask(witness: Witness):
        old = held.get(witness.name) or 0
        if old > checkpoint.size:
            old = 0  # its answer (409) says what it holds
        try:
            return witness, request_cosignature(witness, checkpoint, old, proof_for, timeout_s), None, False
        except WitnessError as exc:
            return witness, None, str(exc)[:ERROR_CHARS], exc.refused
        except (ValueError, journal.LedgerInvariantError) as exc:
            return witness, None, str(exc)[:ERROR_CHARS], False

    with ThreadPoolExecutor(max_workers=len(pending)) as pool:
        results = list(pool.map(ask, pending))
    now = rfc3339(utc_now())
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(LedgerCheckpoint, checkpoint.size)
        for witness, answer, error, refused in results:
            status = session.get(WitnessStatus, witness.name) or WitnessStatus(name=witness.name,
                                                                              vkey=witness.cosigner.vkey)
            status.vkey, status.attempted_at, status.error = witness.cosigner.vkey, now, error
            status.refused_size = checkpoint.size if refused else None
            if answer is not None:
                row.note = add_signature_lines(row.note, answer[1])
                status.cosigned_size, status.cosigned_at = answer[0], now
            else:
                log.warning("witness %s did not cosign checkpoint %d: %s", witness.name, checkpoint.size, error)
            session.add(status)
        session.add(row)
        session.commit()
    return row


def publish_round(engine, keyring, origin: str, witnesses: list[Witness], *,
                  timeout_s: float = DEFAULT_WITNESS_TIMEOUT_S, reading=nullcontext) -> LedgerCheckpoint:
    """One round: sign the tree if it grew, collect the witnesses' cosignatures,
    and keep the outcome in publisher_status (read by /readyz): a refusal to
    sign for integrity is kept until a round signs again."""
    now = rfc3339(utc_now())
    try:
        try:
            checkpoint = sign_checkpoint(engine, keyring, origin, reading=reading)
        except journal.LedgerInvariantError as exc:
            _record_round(engine, attempted_at=now, integrity_error=str(exc)[:ERROR_CHARS])
            raise
        _record_round(engine, attempted_at=now, published_at=now, integrity_error=None)
        return collect_cosignatures(engine, checkpoint, witnesses, timeout_s=timeout_s, reading=reading)
    finally:
        forget_published_note(engine)


def _record_round(engine, **outcome) -> None:
    with Session(engine) as session:
        status = session.get(PublisherStatus, 1) or PublisherStatus(id=1)
        for name, value in outcome.items():
            setattr(status, name, value)
        session.add(status)
        try:
            session.commit()
        except IntegrityError:  # two rounds wrote the first row at once: the other's stands
            session.rollback()


def integrity_refusal(session: Session) -> str | None:
    """Why the last publishing round refused to sign, if it did."""
    status = session.get(PublisherStatus, 1)
    return status.integrity_error if status else None
