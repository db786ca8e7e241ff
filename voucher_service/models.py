"""Tables only. Validation lives in the API schemas and the domain rules; what
must never happen whatever the code does is a database constraint here.

Timestamps are RFC 3339 UTC strings (they sort and compare as text on every
database); calendar dates are DATE columns; money is integer fen.
"""
from __future__ import annotations

from datetime import date
from typing import Optional

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, LargeBinary, Text, UniqueConstraint
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


class Redemption(SQLModel, table=True):
    __tablename__ = "redemption"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="redemption_amount_positive"),
        CheckConstraint("service_fee_fen > 0", name="redemption_fee_positive"),
        CheckConstraint("amount_fen <= service_fee_fen", name="redemption_amount_within_fee"),
        CheckConstraint(
            "status IN ('reserved', 'claimed', 'confirmed', 'redeemed', 'cancelled', 'rejected', 'settled')",
            name="redemption_status"),
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


class Account(SQLModel, table=True):
    """Running balance per ledger account; must equal a replay of all postings."""
    __tablename__ = "account"
    __table_args__ = (
        # Only a region's treasury (money outside the programme) may go negative.
        CheckConstraint("balance_fen >= 0 OR name LIKE 'treasury:%'", name="account_non_negative"),
    )
    name: str = Field(primary_key=True, max_length=120)
    balance_fen: int = Field(default=0, sa_type=BigInteger)


class LedgerHead(SQLModel, table=True):
    """One row; writers lock it, so seq assignment is serialised by the database."""
    __tablename__ = "ledger_head"
    __table_args__ = (CheckConstraint("id = 1", name="ledger_head_single_row"),
                      CheckConstraint("size >= 0", name="ledger_head_size"))
    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=BigInteger)
    # Moved by database triggers on every change to reference data
    # (migration 0004); caches of that data are valid for one version.
    registry_version: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    # The audit trail's filters (GET /ledger/entries) read pages in seq order:
    # (kind, seq) and (region, seq) give them already ordered, so a page of a
    # common kind and one of a rare kind both stop after `limit` index rows.
    __table_args__ = (CheckConstraint("seq >= 0", name="ledger_seq_non_negative"),
                      Index("ix_ledger_entry_kind_seq", "kind", "seq"),
                      Index("ix_ledger_entry_region_seq", "region", "seq"),
                      Index("ix_ledger_entry_ts_seq", "ts", "seq"))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    ts: str = Field(max_length=40)
    kind: str = Field(max_length=64)
    region: str = Field(max_length=8)
    actor: str = Field(max_length=64)
    key_id: str = Field(max_length=64)
    # The canonical bytes of the whole signed entry: the entry *is* these bytes.
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LedgerRef(SQLModel, table=True):
    """Which ids an entry concerns, so principals can be shown their own entries."""
    __tablename__ = "ledger_ref"
    __table_args__ = (Index("ix_ledger_ref_ref", "ref", "seq"),)
    seq: int = Field(sa_column=Column(BigInteger, ForeignKey("ledger_entry.seq"), primary_key=True))
    ref: str = Field(primary_key=True, max_length=80)


class LedgerPosting(SQLModel, table=True):
    """The postings of each entry as rows, written with the entry, so totals
    and balances as of a date are SQL aggregates, not a replay in Python.
    The entry's canonical bytes stay the record; these rows are an index."""
    __tablename__ = "ledger_posting"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="ledger_posting_amount_positive"),
        Index("ix_ledger_posting_source_ts", "source", "ts"),
        Index("ix_ledger_posting_destination_ts", "destination", "ts"),
        Index("ix_ledger_posting_region_ts", "region", "ts"),
    )
    seq: int = Field(sa_column=Column(BigInteger, ForeignKey("ledger_entry.seq"), primary_key=True))
    position: int = Field(primary_key=True)
    ts: str = Field(max_length=40)
    kind: str = Field(max_length=64)
    region: str = Field(max_length=8)
    source: str = Field(max_length=120)
    destination: str = Field(max_length=120)
    amount_fen: int = Field(sa_type=BigInteger)


class LedgerNode(SQLModel, table=True):
    """Stored Merkle subtree hashes. Node (level, idx) covers leaves
    [idx * 2^level, (idx + 1) * 2^level) and is stored under one integer key,
    idx * 64 + level, so a batch of nodes is a primary-key IN list that every
    database answers from its index. Written once, when the subtree completes."""
    __tablename__ = "ledger_node"
    __table_args__ = (CheckConstraint("id >= 0", name="ledger_node_id"),)
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LedgerCheckpoint(SQLModel, table=True):
    """Every checkpoint the service has signed, so it can prove it never forked."""
    __tablename__ = "ledger_checkpoint"
    __table_args__ = (CheckConstraint("size >= 0", name="ledger_checkpoint_size"),)
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: str = Field(max_length=40)


class SigningKeyRecord(SQLModel, table=True):
    __tablename__ = "signing_key"
    key_id: str = Field(primary_key=True, max_length=64)
    # The key's name in signed notes (checkpoints); fixed when the key is made.
    note_name: str = Field(max_length=200)
    # No foreign key: a region's first ledger entry is signed by its key, so the
    # key exists before the region row does.
    region: str = Field(max_length=8, index=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    valid_from: str = Field(max_length=40)
    valid_until: Optional[str] = Field(default=None, max_length=40)


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


class Settlement(SQLModel, table=True):
    """A batch of one paying region's redeemed, unsettled redemptions for one period."""
    __tablename__ = "settlement"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'approved', 'executed', 'cancelled')", name="settlement_status"),
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
    executed_by: Optional[str] = Field(default=None, max_length=64)
    cancelled_at: Optional[str] = Field(default=None, max_length=40)
    cancelled_by: Optional[str] = Field(default=None, max_length=64)
    reason: Optional[str] = Field(default=None, max_length=500)


class SettlementLine(SQLModel, table=True):
    __tablename__ = "settlement_line"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="settlement_line_amount_positive"),
                      CheckConstraint("redemption_count > 0", name="settlement_line_count_positive"))
    settlement_id: str = Field(foreign_key="settlement.id", primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=40)
    provider_region: str = Field(max_length=8)
    amount_fen: int = Field(sa_type=BigInteger)
    redemption_count: int


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
