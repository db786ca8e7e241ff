"""Evidence (DESIGN §9): documents stored in the database, content-addressed.

A document is its bytes, named by their SHA-256: the same bytes uploaded twice,
to one redemption or to two, are stored once. The bytes live in chunks of at
most DOCUMENT_CHUNK_BYTES, so that neither an upload nor a download holds a
whole file, and every host of a deployment reads the same ones.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Integer, LargeBinary
from sqlmodel import Field, SQLModel

DOCUMENT_KINDS = ("contract", "invoice", "acceptance", "payment_proof")
MEDIA_TYPES = ("application/pdf", "image/png", "image/jpeg")


class Document(SQLModel, table=True):
    __tablename__ = "document"
    __table_args__ = (
        CheckConstraint("size_bytes > 0", name="document_size_positive"),
        CheckConstraint("media_type IN ('application/pdf', 'image/png', 'image/jpeg')", name="document_media_type"),
    )
    sha256: str = Field(primary_key=True, max_length=64)
    media_type: str = Field(max_length=40)
    size_bytes: int = Field(sa_type=BigInteger)
    chunks: int
    created_at: str = Field(max_length=40)


class DocumentChunk(SQLModel, table=True):
    """One chunk of a document's bytes. No foreign key: an upload writes its
    chunks under a staging name while it hashes them, and renames them to the
    sha256 once it knows it (process/documents.py), in the same transaction."""
    __tablename__ = "document_chunk"
    sha256: str = Field(primary_key=True, max_length=64)
    idx: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RedemptionDocument(SQLModel, table=True):
    """A document as evidence of a redemption, of one kind."""
    __tablename__ = "redemption_document"
    __table_args__ = (
        CheckConstraint("kind IN ('contract', 'invoice', 'acceptance', 'payment_proof')",
                        name="redemption_document_kind"),
    )
    redemption_id: str = Field(foreign_key="redemption.id", primary_key=True, max_length=40)
    sha256: str = Field(foreign_key="document.sha256", primary_key=True, max_length=64, index=True)
    kind: str = Field(max_length=16)
    uploaded_by: str = Field(max_length=64)
    uploaded_at: str = Field(max_length=40)
