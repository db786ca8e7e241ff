"""Access: API tokens (hashes only) and the idempotency records of writes."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import (
    CheckConstraint,
    Column,
    LargeBinary,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint("role IN ('sme', 'provider', 'officer', 'finance', 'auditor', 'admin')", name="token_role"),
        CheckConstraint(
            "(role = 'sme' AND enterprise_id IS NOT NULL) OR (role = 'provider' AND provider_id IS NOT NULL)"
            " OR (role IN ('officer', 'finance') AND region IS NOT NULL) OR role IN ('auditor', 'admin')",
            name="token_binding"),
    )
    id: str = Field(primary_key=True, max_length=40)
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash: str = Field(max_length=64, unique=True)
    principal_id: str = Field(max_length=64, index=True)
    role: str = Field(max_length=16)
    region: Optional[str] = Field(default=None, foreign_key="region.code", max_length=8)
    enterprise_id: Optional[str] = Field(default=None, foreign_key="enterprise.id", max_length=40)
    provider_id: Optional[str] = Field(default=None, foreign_key="provider.id", max_length=40)
    created_at: str = Field(max_length=40)
    expires_at: str = Field(max_length=40)
    revoked_at: Optional[str] = Field(default=None, max_length=40)


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("principal_id", "idempotency_key", name="uq_idempotency_principal_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    principal_id: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=255)
    # Role and region, enterprise or provider of the token that made the response
    # (http/transaction.py): one principal's tokens may be bound differently, and a
    # response is replayed only to its own binding. Empty for rows from before
    # migration 0005, which are replayed to none.
    token_binding: str = Field(default="", max_length=120, sa_column_kwargs={"server_default": ""})
    request_hash: str = Field(max_length=64)
    status_code: int
    content_type: str = Field(max_length=100)
    location: Optional[str] = Field(default=None, max_length=500)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: str = Field(max_length=40)


class ConsoleSession(SQLModel, table=True):
    """A signed-in web console (DESIGN §11). The browser holds a random session
    id in an HttpOnly cookie; this row holds only its SHA-256, and the pasted
    token sealed with a key derived from the id (console/sessions.py): neither
    a database reader nor a cookie alone is a usable credential after sign-out
    deletes the row."""
    __tablename__ = "console_session"
    id_digest: str = Field(primary_key=True, max_length=64)
    token_id: str = Field(foreign_key="api_token.id", max_length=40, index=True)
    sealed_token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    csrf_token: str = Field(max_length=64)
    created_at: str = Field(max_length=40)
    expires_at: str = Field(max_length=40)
