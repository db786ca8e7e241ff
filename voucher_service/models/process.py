"""The process: applications, vouchers and their redemptions."""
from __future__ import annotations

from datetime import date
from typing import Optional

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    text,
)
from sqlmodel import Field, SQLModel


class Application(SQLModel, table=True):
    __tablename__ = "application"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="application_amount_positive"),
        CheckConstraint("status IN ('submitted', 'approved', 'rejected')", name="application_status"),
        CheckConstraint("approved_fen IS NULL OR approved_fen > 0", name="application_approved_positive"),
    )
    id: str = Field(primary_key=True, max_length=40)
    enterprise_id: str = Field(foreign_key="enterprise.id", max_length=40, index=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    amount_fen: int = Field(sa_type=BigInteger)
    purpose: str = Field(max_length=500)
    status: str = Field(max_length=16)
    approved_fen: Optional[int] = Field(default=None, sa_type=BigInteger)
    voucher_id: Optional[str] = Field(default=None, max_length=40, unique=True)
    decided_by: Optional[str] = Field(default=None, max_length=64)
    reason: Optional[str] = Field(default=None, max_length=500)
    submitted_at: str = Field(max_length=40)
    decided_at: Optional[str] = Field(default=None, max_length=40)


class Voucher(SQLModel, table=True):
    __tablename__ = "voucher"
    __table_args__ = (
        CheckConstraint("face_fen > 0", name="voucher_face_positive"),
        CheckConstraint("available_fen >= 0 AND held_fen >= 0 AND redeemed_fen >= 0 AND returned_fen >= 0",
                        name="voucher_balances_non_negative"),
        CheckConstraint("available_fen + held_fen + redeemed_fen + returned_fen = face_fen",
                        name="voucher_balances_add_up"),
        CheckConstraint("status IN ('active', 'exhausted', 'expired', 'voided')", name="voucher_status"),
        CheckConstraint("valid_until >= valid_from", name="voucher_validity_order"),
    )
    id: str = Field(primary_key=True, max_length=40)
    code: str = Field(max_length=32, unique=True)
    application_id: str = Field(foreign_key="application.id", max_length=40, unique=True)
    enterprise_id: str = Field(foreign_key="enterprise.id", max_length=40, index=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    face_fen: int = Field(sa_type=BigInteger)
    available_fen: int = Field(sa_type=BigInteger)
    held_fen: int = Field(default=0, sa_type=BigInteger)
    redeemed_fen: int = Field(default=0, sa_type=BigInteger)
    # Value given back to the region's budget by voiding or expiry.
    returned_fen: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=16)
    valid_from: date
    valid_until: date
    issued_at: str = Field(max_length=40)
    closed_at: Optional[str] = Field(default=None, max_length=40)


# Claims that stand (DESIGN §9 duplicates): an invoice number is claimed once per
# provider among them. `recovered` is listed ahead of the status that brings it.
LIVE_CLAIM_STATUSES = ("claimed", "confirmed", "redeemed", "settled", "recovered")
_LIVE_CLAIM = text("status IN (" + ", ".join(f"'{status}'" for status in LIVE_CLAIM_STATUSES) + ")")


class Redemption(SQLModel, table=True):
    __tablename__ = "redemption"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="redemption_amount_positive"),
        CheckConstraint("service_fee_fen > 0", name="redemption_fee_positive"),
        CheckConstraint("amount_fen <= service_fee_fen", name="redemption_amount_within_fee"),
        CheckConstraint(
            "status IN ('reserved', 'claimed', 'confirmed', 'redeemed', 'cancelled', 'rejected', 'settled',"
            " 'recovered')", name="redemption_status"),
        CheckConstraint("recovered_fen IS NULL OR (recovered_fen > 0 AND recovered_fen <= amount_fen)",
                        name="redemption_recovered_within_amount"),
        # The rule check_invoice_not_claimed refuses a duplicate first; this index
        # makes sure no race or other path can commit one.
        Index("uq_redemption_live_invoice", "provider_id", "invoice_no", unique=True,
              sqlite_where=_LIVE_CLAIM, postgresql_where=_LIVE_CLAIM),
    )
    id: str = Field(primary_key=True, max_length=40)
    voucher_id: str = Field(foreign_key="voucher.id", max_length=40, index=True)
    enterprise_id: str = Field(foreign_key="enterprise.id", max_length=40, index=True)
    provider_id: str = Field(foreign_key="provider.id", max_length=40, index=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    catalog_code: str = Field(foreign_key="catalog_item.code", max_length=32)
    service_fee_fen: int = Field(sa_type=BigInteger)
    amount_fen: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)
    invoice_no: Optional[str] = Field(default=None, max_length=64)
    reason: Optional[str] = Field(default=None, max_length=500)
    reserved_at: str = Field(max_length=40)
    claimed_at: Optional[str] = Field(default=None, max_length=40)
    confirmed_at: Optional[str] = Field(default=None, max_length=40)
    redeemed_at: Optional[str] = Field(default=None, max_length=40, index=True)
    cancelled_at: Optional[str] = Field(default=None, max_length=40)
    rejected_at: Optional[str] = Field(default=None, max_length=40)
    settled_at: Optional[str] = Field(default=None, max_length=40)
    # A recovery (clawback) of money found not due, before or after settlement (DESIGN §9).
    recovered_fen: Optional[int] = Field(default=None, sa_type=BigInteger)
    recovered_at: Optional[str] = Field(default=None, max_length=40)
    recovery_reason: Optional[str] = Field(default=None, max_length=500)
