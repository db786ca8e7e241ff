"""The ledger, for auditors and for anyone holding the public keys: checkpoints,
keys, proofs, entries, the JSON Lines export and receipts."""
from __future__ import annotations

import json

from flask import Response, current_app, stream_with_context
from flask_smorest import abort
from marshmallow import Schema, fields, validate
from sqlmodel import Session, select

from voucher_service.db import get_engine, get_session, read_only, writing
from voucher_service.http import access
from voucher_service.http.common import Blueprint
from voucher_service.journal import beancount as beancount_export
from voucher_service.journal import tree
from voucher_service.models import LedgerEntry

URL = "/ledger"
blp = Blueprint("ledger", __name__, description="The signed, append-only ledger and its proofs")

MAX_ENTRIES_PAGE = 1000
MAX_SEQ = 2**53
EXPORT_BATCH = 1000
TEXT_PLAIN = "text/plain; charset=utf-8"
JSON_LINES = "application/jsonl"


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


class EntriesArgs(Schema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_SEQ))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_ENTRIES_PAGE))


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
    query = access.visible("ledger_entry", select(LedgerEntry).where(LedgerEntry.seq >= args["start"]))
    rows = get_session().exec(query.order_by(LedgerEntry.seq).limit(args["limit"] + 1)).all()
    more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    return {"items": [_entry_json(r) for r in rows], "next_start": rows[-1].seq + 1 if more else None}


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
