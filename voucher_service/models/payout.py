"""Payout: settlement batches, their lines, redemptions and approvals."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
)
from sqlmodel import Field, SQLModel


class Settlement(SQLModel, table=True):
    """A batch of one paying region's redeemed, unsettled redemptions for one period."""
    __tablename__ = "settlement"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'approved', 'executed', 'completed', 'cancelled')",
                        name="settlement_status"),
        CheckConstraint("total_fen > 0", name="settlement_total_positive"),
    )
    id: str = Field(primary_key=True, max_length=40)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    period: str = Field(max_length=7)
    period_start: str = Field(max_length=40)
    period_end: str = Field(max_length=40)
    status: str = Field(max_length=16)
    total_fen: int = Field(sa_type=BigInteger)
    created_by: str = Field(max_length=64)
    created_at: str = Field(max_length=40)
    approved_at: Optional[str] = Field(default=None, max_length=40)
    executed_at: Optional[str] = Field(default=None, max_length=40)
    # When the last line's payment result was recorded.
    completed_at: Optional[str] = Field(default=None, max_length=40)
    executed_by: Optional[str] = Field(default=None, max_length=64)
    cancelled_at: Optional[str] = Field(default=None, max_length=40)
    cancelled_by: Optional[str] = Field(default=None, max_length=64)
    reason: Optional[str] = Field(default=None, max_length=500)


class SettlementLine(SQLModel, table=True):
    __tablename__ = "settlement_line"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="settlement_line_amount_positive"),
                      CheckConstraint("redemption_count > 0", name="settlement_line_count_positive"),
                      CheckConstraint("offset_fen >= 0 AND offset_fen <= amount_fen", name="settlement_line_offset"),
                      CheckConstraint("result IS NULL OR result IN ('paid', 'failed')", name="settlement_line_result"))
    settlement_id: str = Field(foreign_key="settlement.id", primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
    provider_region: str = Field(max_length=8)
    amount_fen: int = Field(sa_type=BigInteger)  # gross: what the line's redemptions are owed
    redemption_count: int
    # Taken from the provider's open receivable to the paying region (DESIGN §9); net = amount - offset.
    offset_fen: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    result: Optional[str] = Field(default=None, max_length=8)  # the bank's answer: paid or failed
    bank_reference: Optional[str] = Field(default=None, max_length=100)
    failure_reason: Optional[str] = Field(default=None, max_length=500)
    result_at: Optional[str] = Field(default=None, max_length=40)


class SettlementRedemption(SQLModel, table=True):
    """Which redemptions a batch takes. `live_redemption_id` is the redemption id while the
    batch is live, NULL once cancelled: UNIQUE, so no redemption is in two live batches."""
    __tablename__ = "settlement_redemption"
    settlement_id: str = Field(foreign_key="settlement.id", primary_key=True, max_length=40)
    redemption_id: str = Field(foreign_key="redemption.id", primary_key=True, max_length=40)
    live_redemption_id: Optional[str] = Field(default=None, max_length=40, unique=True)


class SettlementApproval(SQLModel, table=True):
    __tablename__ = "settlement_approval"
    settlement_id: str = Field(foreign_key="settlement.id", primary_key=True, max_length=40)
    region: str = Field(foreign_key="region.code", primary_key=True, max_length=8)
    principal_id: str = Field(max_length=64)
    approved_at: str = Field(max_length=40)
