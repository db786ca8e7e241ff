"""The registry: regions and their policies, the shared catalogue and its proposals,
providers (with the regions excluding them) and enterprises."""
from __future__ import annotations

from datetime import date
from typing import Optional

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class Region(SQLModel, table=True):
    __tablename__ = "region"
    code: str = Field(primary_key=True, max_length=8)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=100)
    currency: str = Field(max_length=3)
    timezone: str = Field(max_length=64)
    created_at: str = Field(max_length=40)


class Policy(SQLModel, table=True):
    __tablename__ = "policy"
    __table_args__ = (
        UniqueConstraint("region", "effective_from"),
        CheckConstraint("enterprise_cap_fen > 0", name="policy_enterprise_cap_positive"),
        CheckConstraint("team_cap_fen > 0", name="policy_team_cap_positive"),
        CheckConstraint("subsidy_ratio_bp > 0 AND subsidy_ratio_bp <= 10000", name="policy_ratio_range"),
        CheckConstraint("validity_days > 0", name="policy_validity_positive"),
        CheckConstraint("budget_fen >= 0", name="policy_budget_non_negative"),
        CheckConstraint("payout_cycle IN ('monthly', 'quarterly')", name="policy_payout_cycle"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    effective_from: date
    enterprise_cap_fen: int = Field(sa_type=BigInteger)
    team_cap_fen: int = Field(sa_type=BigInteger)
    subsidy_ratio_bp: int
    validity_days: int
    payout_cycle: str = Field(max_length=16)
    budget_fen: int = Field(sa_type=BigInteger)


class CatalogCategory(SQLModel, table=True):
    __tablename__ = "catalog_category"
    code: str = Field(primary_key=True, max_length=32)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=100)


class CatalogItem(SQLModel, table=True):
    __tablename__ = "catalog_item"
    __table_args__ = (
        CheckConstraint("max_subsidy_ratio_bp > 0 AND max_subsidy_ratio_bp <= 10000", name="catalog_ratio_range"),
    )
    code: str = Field(primary_key=True, max_length=32)
    category: str = Field(foreign_key="catalog_category.code", max_length=32, index=True)
    name_zh: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    max_subsidy_ratio_bp: int
    active: bool = True
    created_at: str = Field(max_length=40)
    updated_at: str = Field(max_length=40)


class CatalogProposal(SQLModel, table=True):
    """A change to the shared catalogue, in effect once a quorum of member regions approves (DESIGN §8)."""
    __tablename__ = "catalog_proposal"
    __table_args__ = (CheckConstraint("status IN ('open', 'adopted', 'withdrawn')", name="catalog_proposal_status"),)
    id: str = Field(primary_key=True, max_length=40)
    code: str = Field(max_length=32, index=True)
    # JSON text: {"action": "create" | "update", "code": ..., "fields": {...}}
    change: str = Field(sa_column=Column(Text, nullable=False))
    # The item's code while open, NULL once decided: UNIQUE, so one open proposal an item.
    open_code: Optional[str] = Field(default=None, max_length=32, unique=True)
    region: str = Field(foreign_key="region.code", max_length=8)
    proposed_by: str = Field(max_length=64)
    proposed_at: str = Field(max_length=40)
    status: str = Field(max_length=16)
    decided_at: Optional[str] = Field(default=None, max_length=40)
    decided_quorum: Optional[int] = None  # approvals the decision was measured against


class CatalogProposalApproval(SQLModel, table=True):
    """One region's approval: the primary key stores at most one per region, even in a race."""
    __tablename__ = "catalog_proposal_approval"
    proposal_id: str = Field(foreign_key="catalog_proposal.id", primary_key=True, max_length=40)
    region: str = Field(foreign_key="region.code", primary_key=True, max_length=8)
    approved_by: str = Field(max_length=64)
    approved_at: str = Field(max_length=40)


class Provider(SQLModel, table=True):
    __tablename__ = "provider"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="provider_status"),)
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    uscc: str = Field(max_length=18, unique=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    status: str = Field(max_length=16)
    created_at: str = Field(max_length=40)
    updated_at: str = Field(max_length=40)


class ProviderCategory(SQLModel, table=True):
    __tablename__ = "provider_category"
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
    category: str = Field(foreign_key="catalog_category.code", primary_key=True, max_length=32)


class ProviderExclusion(SQLModel, table=True):
    """A region's refusal of a provider for the vouchers it issues (DESIGN §8); readmission
    deletes the row, the ledger keeps both events. Reservations read it by its key."""
    __tablename__ = "provider_exclusion"
    __table_args__ = (Index("ix_provider_exclusion_provider_id", "provider_id"),)
    region: str = Field(foreign_key="region.code", primary_key=True, max_length=8)
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
    reason: str = Field(max_length=500)
    excluded_by: str = Field(max_length=64)
    excluded_at: str = Field(max_length=40)


class Enterprise(SQLModel, table=True):
    __tablename__ = "enterprise"
    __table_args__ = (CheckConstraint("kind IN ('enterprise', 'team')", name="enterprise_kind"),)
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    uscc: str = Field(max_length=18, unique=True)
    region: str = Field(foreign_key="region.code", max_length=8, index=True)
    kind: str = Field(max_length=16)
    created_at: str = Field(max_length=40)


class EnterpriseRelatedProvider(SQLModel, table=True):
    __tablename__ = "enterprise_related_provider"
    enterprise_id: str = Field(foreign_key="enterprise.id", primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
