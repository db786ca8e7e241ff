"""Evidence of a redemption (DESIGN §9): upload, list and download its documents.

An upload is multipart/form-data with `file` and `kind`. Its type is decided by
its first bytes (PDF, PNG or JPEG), never by its name or Content-Type: anything
else is a 415 problem. At most VOUCHERS_MAX_DOCUMENT_BYTES (default 10 MiB) per
document, a 413 problem beyond (http/security.py raises the body limit for this
route only). werkzeug spools the file to a temporary file while it parses;
the service reads it back in chunks of 256 KiB, hashing and storing each.
"""
import re

from flask import Response, current_app, stream_with_context
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from voucher_service.db import read_only
from voucher_service.http import access
from voucher_service.http.common import Blueprint, ResourceSchema, domain_context
from voucher_service.models.evidence import DOCUMENT_KINDS, MEDIA_TYPES
from voucher_service.process import documents
from voucher_service.programme.errors import NotFound

URL = "/redemptions"
blp = Blueprint("documents", __name__, description="Evidence of a redemption: contracts, invoices, acceptance, "
                                                   "payment proofs")

SHA256_HEX = re.compile("[0-9a-f]{64}")
UPLOAD_ENDPOINT = "documents.upload"


class DocumentFile(Upload):
    """A file part of a multipart body (a text field of the same name is not a file)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise ValidationError("Must be a file part of a multipart/form-data body.")
        return value


class DocumentUpload(Schema):
    file = DocumentFile(required=True, metadata={"description": "the document: a PDF, PNG or JPEG file"})
    kind = fields.String(required=True, validate=validate.OneOf(DOCUMENT_KINDS))


class DocumentSchema(ResourceSchema):
    sha256 = fields.String(metadata={"description": "hex SHA-256 of the document's bytes: its name"})
    kind = fields.String(metadata={"enum": list(DOCUMENT_KINDS)})
    media_type = fields.String(metadata={"enum": list(MEDIA_TYPES), "description": "decided by content"})
    size_bytes = fields.Integer()
    uploaded_by = fields.String()
    uploaded_at = fields.String()


class DocumentList(Schema):
    items = fields.List(fields.Nested(DocumentSchema))


_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}


def _file_chunks(upload: FileStorage):
    stream = upload.stream
    while chunk := stream.read(documents.CHUNK_BYTES):
        yield chunk


@blp.route("/<string:redemption_id>/documents", methods=["POST"], endpoint="upload")
@blp.arguments(DocumentUpload, location="files")
@blp.response(201, DocumentSchema)
@blp.doc(responses={
    "413": {"description": "the document is larger than VOUCHERS_MAX_DOCUMENT_BYTES", "content": _PROBLEM},
    "415": {"description": "the document is not a PDF, PNG or JPEG file, by its content", "content": _PROBLEM}})
def upload(body, redemption_id):
    access.load("redemption", redemption_id)
    link, document = documents.add_document(
        domain_context(), redemption_id, kind=body["kind"], chunks=_file_chunks(body["file"]),
        max_bytes=current_app.config["VOUCHERS_MAX_DOCUMENT_BYTES"])
    return documents.describe(link, document), 201


@blp.route("/<string:redemption_id>/documents", endpoint="list_documents")
@blp.response(200, DocumentList)
def list_documents(redemption_id):
    access.load("redemption", redemption_id)
    return {"items": documents.documents_of(domain_context(), redemption_id)}


@blp.route("/<string:redemption_id>/documents/<string:sha256>", endpoint="get_document")
@blp.doc(responses={"200": {"description": "the document's bytes, with its stored media type, as an attachment",
                            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}
                                        for media_type in MEDIA_TYPES}}})
def get_document(redemption_id, sha256):
    access.load("redemption", redemption_id)
    if SHA256_HEX.fullmatch(sha256) is None:
        raise NotFound("document", f"no document {sha256} on redemption {redemption_id}")
    ctx = domain_context()
    document = documents.document_of(ctx, redemption_id, sha256)
    response = Response(stream_with_context(_streamed(ctx, document)), mimetype=document.media_type)
    response.headers["Content-Length"] = str(document.size_bytes)
    response.headers["Content-Disposition"] = f'attachment; filename="{sha256}{_EXTENSIONS[document.media_type]}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _streamed(ctx, document):
    """The bytes, chunk by chunk, after the view has returned: in a read-only
    transaction of their own (on SQLite a deferred BEGIN, which blocks no
    writer), ended with the last chunk."""
    with read_only():
        try:
            yield from documents.read_chunks(ctx, document)
        finally:
            ctx.session.rollback()


_EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}
