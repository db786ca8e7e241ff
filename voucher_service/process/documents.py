"""Evidence of a redemption (DESIGN §9): documents, stored in the database by content.

An upload arrives as an iterator of byte chunks (the view reads them from
the request; this module knows nothing of HTTP). Each chunk is hashed and
written as it comes, under a staging name, so that no upload is ever held
whole in memory; once the last chunk is in, the chunks take the document's
SHA-256 as their name, or, when those bytes are stored already, are deleted.
All of it in the request's one transaction: a refused upload leaves no chunk.

The type is decided by the first bytes (PDF, PNG, JPEG), never by a name or
a client's Content-Type. Linking a document to a redemption is a state change:
one `redemption.document_added` entry, carrying the document's sha256.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Iterable, Iterator

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy import select as core_select
from sqlmodel import select

from voucher_service.models import Document, DocumentChunk, Redemption, RedemptionDocument
from voucher_service.models.process import LIVE_CLAIM_STATUSES
from voucher_service.process import rules
from voucher_service.programme.context import Context
from voucher_service.programme.errors import InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from voucher_service.programme.writes import append, lock

CHUNK_BYTES = 256 * 1024
DEFAULT_MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
# Magic numbers: the only thing that decides what a document is.
SIGNATURES = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
SNIFF_BYTES = max(len(magic) for magic, _type in SIGNATURES)

_CHUNK = DocumentChunk.__table__
_ONE_CHUNK = core_select(_CHUNK.c.data).where(_CHUNK.c.sha256 == bindparam("sha256"), _CHUNK.c.idx == bindparam("idx"))


def media_type_of(head: bytes) -> str | None:
    for magic, media_type in SIGNATURES:
        if head.startswith(magic):
            return media_type
    return None


def _rechunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The same bytes in pieces of exactly CHUNK_BYTES (the last one shorter)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= CHUNK_BYTES:
            yield bytes(pending[:CHUNK_BYTES])
            del pending[:CHUNK_BYTES]
    if pending:
        yield bytes(pending)


def _stage(ctx: Context, chunks: Iterable[bytes], max_bytes: int) -> tuple[str, str, int, int, str]:
    """Write the chunks under a staging name: (staging name, sha256, size, chunk count, media type)."""
    staging = "~" + secrets.token_hex(20)  # never a hex digest
    digest = hashlib.sha256()
    size = count = 0
    media_type = None
    connection = ctx.session.connection()
    for piece in _rechunked(chunks):
        if count == 0:
            media_type = media_type_of(piece[:SNIFF_BYTES])
            if media_type is None:
                raise UnsupportedMediaType(
                    "unsupported_media_type",
                    "the document is not a PDF, PNG or JPEG file (decided by its content, not its name "
                    "or Content-Type)")
        size += len(piece)
        if size > max_bytes:
            raise TooLarge("document_too_large",
                           f"the document is larger than the {max_bytes} bytes allowed (VOUCHERS_MAX_DOCUMENT_BYTES)")
        digest.update(piece)
        connection.execute(insert(_CHUNK), {"sha256": staging, "idx": count, "data": piece})
        count += 1
    if size == 0:
        raise InvalidInput("file", "the document is empty")
    return staging, digest.hexdigest(), size, count, media_type


def add_document(ctx: Context, redemption_id: str, *, kind: str, chunks: Iterable[bytes],
                 max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> tuple[RedemptionDocument, Document]:
    redemption = ctx.get(Redemption, redemption_id, "redemption")
    rules.check_documents_accepted(redemption.status, redemption.id)
    # Before the ledger lock: the bytes are written while other writers go on
    # (on PostgreSQL; SQLite has one writer at a time whatever we do).
    staging, sha256, size, count, media_type = _stage(ctx, chunks, max_bytes)
    lock(ctx)
    redemption = ctx.get(Redemption, redemption_id, "redemption", for_update=True)
    rules.check_documents_accepted(redemption.status, redemption.id)
    rules.check_document_not_attached(ctx.session.exec(select(RedemptionDocument.kind).where(
        RedemptionDocument.redemption_id == redemption.id, RedemptionDocument.sha256 == sha256)).first(), sha256)
    connection = ctx.session.connection()
    document = ctx.session.get(Document, sha256)
    if document is None:
        connection.execute(update(_CHUNK).where(_CHUNK.c.sha256 == staging).values(sha256=sha256))
        document = Document(sha256=sha256, media_type=media_type, size_bytes=size, chunks=count,
                            created_at=ctx.now_str)
        ctx.session.add(document)
    else:  # stored already, by this upload's twin: keep one copy
        connection.execute(delete(_CHUNK).where(_CHUNK.c.sha256 == staging))
    link = RedemptionDocument(redemption_id=redemption.id, sha256=sha256, kind=kind, uploaded_by=ctx.actor,
                              uploaded_at=ctx.now_str)
    ctx.session.add(link)
    ctx.session.flush()
    append(ctx, kind="redemption.document_added", region=redemption.region,
           refs={"redemption": redemption.id, "voucher": redemption.voucher_id,
                 "enterprise": redemption.enterprise_id, "provider": redemption.provider_id},
           data={"sha256": sha256, "kind": kind, "media_type": document.media_type,
                 "size_bytes": document.size_bytes})
    return link, document


def documents_of(ctx: Context, redemption_id: str) -> list[dict]:
    """The redemption's documents, in upload order."""
    rows = ctx.session.exec(
        select(RedemptionDocument, Document).join(Document, Document.sha256 == RedemptionDocument.sha256)
        .where(RedemptionDocument.redemption_id == redemption_id)
        .order_by(RedemptionDocument.uploaded_at, RedemptionDocument.sha256)).all()
    return [describe(link, document) for link, document in rows]


def describe(link: RedemptionDocument, document: Document) -> dict:
    return {"sha256": document.sha256, "kind": link.kind, "media_type": document.media_type,
            "size_bytes": document.size_bytes, "uploaded_by": link.uploaded_by, "uploaded_at": link.uploaded_at}


def document_of(ctx: Context, redemption_id: str, sha256: str) -> Document:
    """One document of the redemption: NotFound unless it is attached to it."""
    link = ctx.session.get(RedemptionDocument, (redemption_id, sha256))
    if link is None:
        raise NotFound("document", f"no document {sha256} on redemption {redemption_id}")
    return ctx.session.get(Document, sha256)


def read_chunks(ctx: Context, document: Document) -> Iterator[bytes]:
    """The document's bytes, one stored chunk at a time: never the whole file in memory."""
    connection = ctx.session.connection()
    for idx in range(document.chunks):
        yield connection.execute(_ONE_CHUNK, {"sha256": document.sha256, "idx": idx}).scalar_one()


def claim_evidence(ctx: Context, redemption: Redemption) -> list[dict]:
    """The evidence a claim rests on, checked: a contract and an invoice, none of them
    evidencing another live claim. Returns `data.documents` of the claim's entry."""
    links = ctx.session.exec(select(RedemptionDocument).where(
        RedemptionDocument.redemption_id == redemption.id)).all()
    rules.check_evidence_present({link.kind for link in links})
    reused = dict(ctx.session.exec(
        select(RedemptionDocument.sha256, RedemptionDocument.redemption_id)
        .join(Redemption, Redemption.id == RedemptionDocument.redemption_id)
        .where(RedemptionDocument.sha256.in_([link.sha256 for link in links]),
               RedemptionDocument.redemption_id != redemption.id,
               Redemption.status.in_(LIVE_CLAIM_STATUSES))).all())
    rules.check_documents_not_reused(reused)
    return sorted(({"kind": link.kind, "sha256": link.sha256} for link in links),
                  key=lambda item: (item["kind"], item["sha256"]))


def live_claim_of_invoice(ctx: Context, provider_id: str, invoice_no: str) -> str | None:
    """The redemption whose live claim used this provider's invoice number, if any."""
    return ctx.session.exec(select(Redemption.id).where(
        Redemption.provider_id == provider_id, Redemption.invoice_no == invoice_no,
        Redemption.status.in_(LIVE_CLAIM_STATUSES))).first()
