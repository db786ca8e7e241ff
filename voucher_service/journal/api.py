"""The ledger, for auditors and for anyone holding the public keys: checkpoints,
keys, proofs, entries, the JSON Lines export and receipts."""
from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timezone

from flask import Response, current_app, stream_with_context
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlmodel import Session, select

from voucher_service.clock import local_midnight_utc, rfc3339
from voucher_service.db import get_engine, get_session, read_only
from voucher_service.http import access
from voucher_service.http.common import Blueprint, FullMatch
from voucher_service.http.problems import problem, rule_type
from voucher_service.journal import beancount as beancount_export
from voucher_service.journal import tree
from voucher_service.models import LedgerEntry, LedgerRef

URL = "/ledger"
blp = Blueprint("ledger", __name__, description="The signed, append-only ledger and its proofs")

MAX_ENTRIES_PAGE = 1000
MAX_SEQ = 2**53
EXPORT_BATCH = 1000
TEXT_PLAIN = "text/plain; charset=utf-8"
JSON_LINES = "application/jsonl"
KIND_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$"
REGION_PATTERN = r"^[A-Z]{2,8}$"
# TYPE is a refs key of the entry JSON (voucher, enterprise, region, ...); ID
# is what ledger_ref stores (the values alone, at most 80 characters).
REF_PATTERN = r"^[a-z][a-z_]{0,31}:[^\s:]{1,80}$"
# How many index rows one page may read past refs of another type (a region
# code that is also a category code, say) before it returns what it has.
MAX_SCANNED_ROWS = 10 * MAX_ENTRIES_PAGE


class KeySchema(Schema):
    key_id = fields.String()
    purpose = fields.String(metadata={"description": "`entry`: a region's key, signs entries; `log`: the "
                                                     "operator's log key, signs checkpoints (region null)"})
    region = fields.String(allow_none=True)
    alg = fields.String()
    public_key = fields.String(metadata={"description": "raw Ed25519 public key, base64"})
    note_name = fields.String()
    note_key = fields.String(metadata={"description": "C2SP signed-note verifier key: name+hash+base64(0x01||key)"})
    valid_from = fields.String()
    valid_until = fields.String(allow_none=True)


class KeysSchema(Schema):
    origin = fields.String(metadata={"description": "the checkpoint origin line"})
    keys = fields.List(fields.Nested(KeySchema))


class ProofSchema(Schema):
    hashes = fields.List(fields.String(), metadata={"description": "base64 SHA-256 hashes, RFC 9162 order"})


class InclusionArgs(Schema):
    index = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_SEQ))
    tree_size = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_SEQ))


class ConsistencyArgs(Schema):
    first = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_SEQ))
    second = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_SEQ))


class PostingSchema(Schema):
    source = fields.String()
    destination = fields.String()
    amount = fields.Integer()


class SignatureSchema(Schema):
    key_id = fields.String()
    alg = fields.String()
    value = fields.String()


class EntrySchema(Schema):
    v = fields.Integer()
    seq = fields.Integer()
    ts = fields.String()
    kind = fields.String()
    region = fields.String()
    actor = fields.String()
    refs = fields.Dict(keys=fields.String(), values=fields.String())
    postings = fields.List(fields.Nested(PostingSchema))
    data = fields.Dict()
    sig = fields.Nested(SignatureSchema)


class Moment(fields.String):
    """An RFC 3339 timestamp (any offset), or a date YYYY-MM-DD meaning its
    midnight in the programme's time zone (Asia/Shanghai); loaded as the
    ledger's own ts form (UTC, microseconds), which sorts as text."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return local_midnight_utc(date.fromisoformat(text))
            elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", text):
                # datetime takes at most microseconds: a finer fraction is cut, never rounded up.
                text = re.sub(r"(\.\d{6})\d+", r"\1", text)
                moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            else:
                raise ValueError
            return rfc3339(moment.astimezone(timezone.utc))
        except (ValueError, OverflowError):
            raise ValidationError("Not an RFC 3339 timestamp (2025-01-02T08:00:00Z) "
                                  "nor a date (2025-01-02, midnight Asia/Shanghai).") from None


class EntriesArgs(Schema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SEQ))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_ENTRIES_PAGE))
    kind = fields.String(validate=[validate.Length(max=64), FullMatch(KIND_PATTERN)],
                         metadata={"description": "exactly this kind, e.g. voucher.issued"})
    region = fields.String(validate=FullMatch(REGION_PATTERN),
                           metadata={"description": "recorded by this region's authority"})
    ref = fields.String(validate=FullMatch(REF_PATTERN),
                        metadata={"description": "TYPE:ID, an entry whose refs map TYPE to ID, "
                                                 "e.g. voucher:vch_... or enterprise:ent-ks-003"})
    from_ = Moment(data_key="from", metadata={"description": "ts at or after: RFC 3339, or a date "
                                                            "YYYY-MM-DD (midnight Asia/Shanghai)"})
    to = Moment(metadata={"description": "ts before (exclusive): RFC 3339, or a date YYYY-MM-DD "
                                         "(midnight Asia/Shanghai)"})

    @validates_schema
    def _window(self, data, **_kwargs):
        if "from_" in data and "to" in data and data["from_"] > data["to"]:
            raise ValidationError("must not be after `to`.", "from")


class EntriesPage(Schema):
    items = fields.List(fields.Nested(EntrySchema))
    next_start = fields.Integer(allow_none=True, metadata={"description": "start of the next page, or null"})


class ReceiptSchema(Schema):
    entry = fields.String(metadata={"description": "the entry's canonical bytes (one export line)"})
    leaf_index = fields.Integer()
    leaf_hash = fields.String()
    tree_size = fields.Integer()
    inclusion_proof = fields.List(fields.String())
    checkpoint = fields.String(metadata={"description": "signed note cosigned by every region"})
    tlog_proof = fields.String(metadata={"description": "the same proof in C2SP tlog-proof form"})


def _tree_error(error: tree.TreeError):
    abort(422, message=error.detail, errors={"query": {error.field: [error.detail]}})


def _nothing_published():
    """503 until the background publisher (journal/election.py) signs the first
    checkpoint: readers, however many, never write or take the ledger lock."""
    abort(503, message="no checkpoint has been published yet: the publisher signs one within "
                       f"{current_app.config['VOUCHERS_CHECKPOINT_INTERVAL_S']:g} s of `vouchers init`",
          headers={"Retry-After": _retry_after()})


def _retry_after() -> str:
    return str(max(1, math.ceil(current_app.config["VOUCHERS_CHECKPOINT_INTERVAL_S"] or 1)))


def _visible_row(seq: int) -> LedgerEntry:
    if not 0 <= seq <= MAX_SEQ:  # beyond what the database's integer holds: no such entry
        abort(404, message=f"no ledger entry {seq}")
    return access.load("ledger_entry", seq)


def _entry_json(row: LedgerEntry) -> dict:
    return json.loads(bytes(row.canonical))


@blp.route("/checkpoint")
@blp.doc(security=[], responses={"200": {"description": "the latest published checkpoint: a C2SP tlog-checkpoint "
                                                       "in a signed note, signed by the log key and cosigned "
                                                       "(cosignature/v1) by the witnesses that have seen it",
                                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                                 "503": {"description": "nothing published yet (Retry-After)"}})
def checkpoint():
    note = tree.published_note(get_engine(), get_session, current_app.config["VOUCHERS_CHECKPOINT_INTERVAL_S"])
    if note is None:
        _nothing_published()
    return Response(note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


class WitnessSchema(Schema):
    name = fields.String()
    vkey = fields.String(metadata={"description": "C2SP vkey, cosignature/v1 (type 0x04)"})
    cosigned_size = fields.Integer(allow_none=True, metadata={"description": "tree size it last cosigned"})
    cosigned_at = fields.String(allow_none=True)
    attempted_at = fields.String(allow_none=True, metadata={"description": "when it was last asked"})
    ok = fields.Boolean(metadata={"description": "its last answer was a valid cosignature"})


class WitnessesSchema(Schema):
    published_size = fields.Integer(allow_none=True, metadata={"description": "size of the latest published "
                                                                             "checkpoint"})
    witnesses = fields.List(fields.Nested(WitnessSchema))


@blp.route("/witnesses")
@blp.doc(security=[])
@blp.response(200, WitnessesSchema)
def witnesses():
    """The witnesses this deployment asks to cosign (VOUCHERS_WITNESSES) and the size each last cosigned."""
    session = get_session()
    return tree.witness_report(session, current_app.extensions["vouchers_witnesses"])


@blp.route("/keys")
@blp.doc(security=[])
@blp.response(200, KeysSchema)
def keys():
    return tree.published_keys(get_session(), current_app.config["VOUCHERS_LEDGER_ORIGIN"])


@blp.route("/proofs/inclusion")
@blp.doc(security=[])
@blp.arguments(InclusionArgs, location="query")
@blp.response(200, ProofSchema)
def inclusion(args):
    try:
        hashes = tree.inclusion_proof(get_session(), args["index"], args["tree_size"])
    except tree.TreeError as error:
        _tree_error(error)
    return {"hashes": [tree.b64(h) for h in hashes]}


@blp.route("/proofs/consistency")
@blp.doc(security=[])
@blp.arguments(ConsistencyArgs, location="query")
@blp.response(200, ProofSchema)
def consistency(args):
    try:
        hashes = tree.consistency_proof(get_session(), args["first"], args["second"])
    except tree.TreeError as error:
        _tree_error(error)
    return {"hashes": [tree.b64(h) for h in hashes]}


@blp.route("/entries")
@blp.arguments(EntriesArgs, location="query")
@blp.response(200, EntriesPage)
def entries(args):
    """Entries in seq order from `start`, narrowed by every filter given (and
    by what the caller may see). A page may hold fewer than `limit` items
    while next_start is not null (see MAX_SCANNED_ROWS): only a null
    next_start means there are no more."""
    session = get_session()
    query = access.visible("ledger_entry", filtered_entries(session, select(LedgerEntry), args))
    return page_of_entries(session, query, args)


def _first_seq_at_or_after(session, ts: str) -> int | None:
    return session.exec(select(LedgerEntry.seq).where(LedgerEntry.ts >= ts)
                        .order_by(LedgerEntry.ts, LedgerEntry.seq).limit(1)).first()


def filtered_entries(session, query, args):
    """`query` narrowed by the filters of EntriesArgs, in SQL; a ref's TYPE is
    checked by page_of_entries, as ledger_ref holds the ids alone.

    The time window is also turned into a stretch of seq, found with one probe
    of the (ts, seq) index per bound: ts never decreases along seq (the write
    path reads the clock after taking the ledger lock), and with a seq range a
    page reads `limit` rows however deep in the log the window lies, where the
    ts predicate alone has the database scan from `start` or sort the whole
    window. The ts predicates stay, so that even if a clock step broke that
    order no entry outside [from, to) is returned."""
    if "kind" in args:
        query = query.where(LedgerEntry.kind == args["kind"])
    if "region" in args:
        query = query.where(LedgerEntry.region == args["region"])
    if "ref" in args:
        ref_id = args["ref"].split(":", 1)[1]
        query = query.where(LedgerEntry.seq.in_(select(LedgerRef.seq).where(LedgerRef.ref == ref_id)))
    if "from_" in args:
        first = _first_seq_at_or_after(session, args["from_"])
        query = query.where(LedgerEntry.ts >= args["from_"], LedgerEntry.seq >= (MAX_SEQ if first is None else first))
    if "to" in args:
        end = _first_seq_at_or_after(session, args["to"])
        query = query.where(LedgerEntry.ts < args["to"])
        if end is not None:
            query = query.where(LedgerEntry.seq < end)
    return query


def page_of_entries(session, query, args) -> dict:
    ref_type, ref_id = args["ref"].split(":", 1) if "ref" in args else (None, None)
    limit, start, items, scanned = args["limit"], args["start"], [], 0
    while True:
        batch = session.exec(query.where(LedgerEntry.seq >= start)
                             .order_by(LedgerEntry.seq).limit(limit + 1)).all()
        for row in batch:
            entry = _entry_json(row)
            if ref_type is None or entry["refs"].get(ref_type) == ref_id:
                if len(items) == limit:
                    return {"items": items, "next_start": items[-1]["seq"] + 1}
                items.append(entry)
        scanned += len(batch)
        if len(batch) <= limit:
            return {"items": items, "next_start": None}
        start = batch[-1].seq + 1
        if scanned >= MAX_SCANNED_ROWS:
            return {"items": items, "next_start": start}


@blp.route("/entries/<int:seq>")
@blp.response(200, EntrySchema)
def entry(seq):
    return _entry_json(_visible_row(seq))


class ExportArgs(Schema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SEQ),
                           metadata={"description": "first seq (default 0)"})
    end = fields.Integer(validate=validate.Range(min=0, max=MAX_SEQ),
                         metadata={"description": "seq after the last one, at most the tree size (default: the "
                                                  "tree size); with start, what a witness or monitor reads"})

    @validates_schema
    def _range(self, data, **_kwargs):
        if "end" in data and data["start"] > data["end"]:
            raise ValidationError("must not be after `end`.", "start")


@blp.route("/export")
@blp.arguments(ExportArgs, location="query")
@blp.doc(responses={"200": {"description": "JSON Lines: each line is exactly the canonical bytes of one entry, "
                                           "in seq order, from `start` (0) to `end` (the tree size, given in "
                                           "Ledger-Tree-Size)",
                            "content": {JSON_LINES: {"schema": {"type": "string"}}}}})
def export(args):
    current = tree.tree_size(get_session())
    size = args.get("end", current)
    if size > current:
        message = f"end must be at most the tree size {current}"
        abort(422, message=message, errors={"query": {"end": [message]}})
    engine = get_engine()

    def lines():
        # Its own session, read in batches: memory stays flat however long the
        # log. Explicitly read-only: a client that stops reading must never
        # leave a write lock behind.
        with read_only(), Session(engine) as session:
            start = args["start"]
            while start < size:
                rows = session.exec(select(LedgerEntry.canonical)
                                    .where(LedgerEntry.seq >= start, LedgerEntry.seq < size)
                                    .order_by(LedgerEntry.seq).limit(EXPORT_BATCH)).all()
                if not rows:
                    return
                yield b"".join(bytes(canonical) + b"\n" for canonical in rows)
                start += len(rows)

    return Response(stream_with_context(lines()), mimetype=JSON_LINES,
                    headers={"Ledger-Tree-Size": str(size), "Content-Disposition": "attachment; filename=ledger.jsonl"})


@blp.route("/beancount")
@blp.doc(responses={"200": {"description": "the ledger as a Beancount file: one transaction per entry in seq order, "
                                           "an open directive per account and, after the last entry, a balance "
                                           "assertion per account from the stored balances, so `bean-check` "
                                           "confirms the balances replay; the header names the tree size and root",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
def beancount():
    # Its own session and one read transaction, so the file is one snapshot
    # (entries and stored balances agree); read in batches, memory stays flat.
    # The first chunk is made here: the snapshot begins before the response
    # does, and a failure before the first byte is an ordinary error response.
    session = Session(get_engine())
    try:
        with read_only():
            chunks = beancount_export.iter_chunks(session, origin=current_app.config["VOUCHERS_LEDGER_ORIGIN"])
            first = next(chunks, "")
    except BaseException:
        session.close()
        raise

    def body():
        try:
            yield first.encode("utf-8")
            with read_only():
                for chunk in chunks:
                    yield chunk.encode("utf-8")
        finally:
            chunks.close()
            session.close()

    response = Response(stream_with_context(body()), content_type=TEXT_PLAIN,
                        headers={"Content-Disposition": "attachment; filename=ledger.beancount"})
    response.call_on_close(session.close)
    return response


@blp.route("/receipts/<int:seq>")
@blp.response(200, ReceiptSchema)
def receipt(seq):
    """The entry, its inclusion proof and the latest published (cosigned)
    checkpoint; 409 `not_yet_published` (with Retry-After) while the entry
    is newer than that checkpoint."""
    _visible_row(seq)
    checkpoint = tree.latest_checkpoint(get_session()) or _nothing_published()
    if seq >= checkpoint.size:
        return problem(409, f"entry {seq} is not yet under a published checkpoint (size {checkpoint.size}); the "
                            f"publisher signs one within {current_app.config['VOUCHERS_CHECKPOINT_INTERVAL_S']:g} s",
                       title="Not yet published", type_=rule_type("not_yet_published"), rule="not_yet_published",
                       headers={"Retry-After": _retry_after()})
    return tree.receipt(get_session(), seq, checkpoint)
