"""Banking: the accounts providers are paid into, and the four-eyes changes to them (DESIGN §9).

The account number is stored in clear here, because the finance payout file must
carry it; the ledger never holds it (its entries carry `account_sha256`), and every
API response masks it but that file's.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel


class PayoutAccount(SQLModel, table=True):
    """The account in effect for a provider: one row, replaced by each confirmed change."""
    __tablename__ = "payout_account"
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
    account_name: str = Field(max_length=200)
    bank_name: str = Field(max_length=200)
    account_no: str = Field(max_length=30)
    account_sha256: str = Field(max_length=64)
    change_id: str = Field(foreign_key="payout_account_change.id", max_length=40)
    proposed_by: str = Field(max_length=64)
    confirmed_by: str = Field(max_length=64)
    effective_at: str = Field(max_length=40)


class PayoutAccountChange(SQLModel, table=True):
    """A proposed change, pending until a different officer of the home region confirms it.
    `pending_provider_id` is the provider's id while pending, NULL once decided: UNIQUE,
    so a provider has at most one pending change, even in a race."""
    __tablename__ = "payout_account_change"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'confirmed', 'replaced')", name="payout_account_change_status"),
        CheckConstraint("proposed_by <> confirmed_by", name="payout_account_change_four_eyes"),
        Index("ix_payout_account_change_provider_id", "provider_id"),
    )
    id: str = Field(primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="provider.id", max_length=40)
    pending_provider_id: Optional[str] = Field(default=None, max_length=40, unique=True)
    account_name: str = Field(max_length=200)
    bank_name: str = Field(max_length=200)
    account_no: str = Field(max_length=30)
    account_sha256: str = Field(max_length=64)
    status: str = Field(max_length=16)
    proposed_by: str = Field(max_length=64)
    proposed_at: str = Field(max_length=40)
    confirmed_by: Optional[str] = Field(default=None, max_length=64)
    decided_at: Optional[str] = Field(default=None, max_length=40)
