"""The ledger, for auditors and for anyone holding the public keys: checkpoints,
keys, proofs, entries, the JSON Lines export and receipts."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone

from flask import Response, current_app, stream_with_context
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlmodel import Session, select

from voucher_service.clock import local_midnight_utc, rfc3339
from voucher_service.db import get_engine, get_session, read_only, writing
from voucher_service.http import access
from voucher_service.http.common import Blueprint, FullMatch
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
    region = fields.String()
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


def _current_checkpoint():
    """The latest checkpoint, signing a new one first if the tree has grown."""
    app = current_app
    with writing():
        with Session(get_engine(), expire_on_commit=False) as session:
            checkpoint = tree.issue_checkpoint(session, app.extensions["vouchers_keyring"],
                                               app.config["VOUCHERS_LEDGER_ORIGIN"])
            session.commit()
    return checkpoint


def _visible_row(seq: int) -> LedgerEntry:
    if not 0 <= seq <= MAX_SEQ:  # beyond what the database's integer holds: no such entry
        abort(404, message=f"no ledger entry {seq}")
    return access.load("ledger_entry", seq)


def _entry_json(row: LedgerEntry) -> dict:
    return json.loads(bytes(row.canonical))


@blp.route("/checkpoint")
@blp.doc(security=[], responses={"200": {"description": "the latest checkpoint: a C2SP tlog-checkpoint in a "
                                                       "signed note, cosigned by every region's active key",
                                        "content": {"text/plain": {"schema": {"type": "string"}}}}})
def checkpoint():
    return Response(_current_checkpoint().note, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


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


@blp.route("/export")
@blp.doc(responses={"200": {"description": "JSON Lines: each line is exactly the canonical bytes of one entry, "
                                           "in seq order, from 0 to the tree size given in Ledger-Tree-Size",
                            "content": {JSON_LINES: {"schema": {"type": "string"}}}}})
def export():
    size = tree.tree_size(get_session())
    engine = get_engine()

    def lines():
        # Its own session, read in batches: memory stays flat however long the
        # log. Explicitly read-only: a client that stops reading must never
        # leave a write lock behind.
        with read_only(), Session(engine) as session:
            start = 0
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
    _visible_row(seq)
    checkpoint = _current_checkpoint()
    with Session(get_engine()) as session:
        return tree.receipt(session, seq, checkpoint)
