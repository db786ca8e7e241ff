"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 08:01:16.445655
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('account',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("balance_fen >= 0 OR name LIKE 'treasury:%'", name='account_non_negative'),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('catalog_category',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('idempotency_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('principal_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('location', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('principal_id', 'idempotency_key', name='uq_idempotency_principal_key')
    )
    op.create_table('ledger_entry',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('canonical', sa.LargeBinary(), nullable=False),
    sa.Column('leaf_hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('seq >= 0', name='ledger_seq_non_negative'),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entry_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_region'), ['region'], unique=False)

    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('id = 1', name='ledger_head_single_row'),
    sa.CheckConstraint('size >= 0', name='ledger_head_size'),
    sa.PrimaryKeyConstraint('id')
    )
    # The single head row writers lock to serialise ledger appends.
    op.execute("INSERT INTO ledger_head (id, size) VALUES (1, 0)")
    op.create_table('region',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('catalog_item',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('max_subsidy_ratio_bp', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint('max_subsidy_ratio_bp > 0 AND max_subsidy_ratio_bp <= 10000', name='catalog_ratio_range'),
    sa.ForeignKeyConstraint(['category'], ['catalog_category.code'], ),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('catalog_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_item_category'), ['category'], unique=False)

    op.create_table('enterprise',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('uscc', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint("kind IN ('enterprise', 'team')", name='enterprise_kind'),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uscc')
    )
    with op.batch_alter_table('enterprise', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enterprise_region'), ['region'], unique=False)

    op.create_table('ledger_ref',
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.ForeignKeyConstraint(['seq'], ['ledger_entry.seq'], ),
    sa.PrimaryKeyConstraint('seq', 'ref')
    )
    with op.batch_alter_table('ledger_ref', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_ref_ref', ['ref', 'seq'], unique=False)

    op.create_table('policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('enterprise_cap_fen', sa.BigInteger(), nullable=False),
    sa.Column('team_cap_fen', sa.BigInteger(), nullable=False),
    sa.Column('subsidy_ratio_bp', sa.Integer(), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=False),
    sa.Column('payout_cycle', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('budget_fen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("payout_cycle IN ('monthly', 'quarterly')", name='policy_payout_cycle'),
    sa.CheckConstraint('budget_fen >= 0', name='policy_budget_non_negative'),
    sa.CheckConstraint('enterprise_cap_fen > 0', name='policy_enterprise_cap_positive'),
    sa.CheckConstraint('subsidy_ratio_bp > 0 AND subsidy_ratio_bp <= 10000', name='policy_ratio_range'),
    sa.CheckConstraint('team_cap_fen > 0', name='policy_team_cap_positive'),
    sa.CheckConstraint('validity_days > 0', name='policy_validity_positive'),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('region', 'effective_from')
    )
    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_region'), ['region'], unique=False)

    op.create_table('provider',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('uscc', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended')", name='provider_status'),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uscc')
    )
    with op.batch_alter_table('provider', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_region'), ['region'], unique=False)

    op.create_table('signing_key',
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('valid_from', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('valid_until', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.PrimaryKeyConstraint('key_id')
    )
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signing_key_region'), ['region'], unique=False)

    op.create_table('api_token',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('principal_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.CheckConstraint("(role = 'sme' AND enterprise_id IS NOT NULL) OR (role = 'provider' AND provider_id IS NOT NULL) OR (role IN ('officer', 'finance') AND region IS NOT NULL) OR role IN ('auditor', 'admin')", name='token_binding'),
    sa.CheckConstraint("role IN ('sme', 'provider', 'officer', 'finance', 'auditor', 'admin')", name='token_role'),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_principal_id'), ['principal_id'], unique=False)

    op.create_table('application',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('approved_fen', sa.BigInteger(), nullable=True),
    sa.Column('voucher_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.CheckConstraint("status IN ('submitted', 'approved', 'rejected')", name='application_status'),
    sa.CheckConstraint('amount_fen > 0', name='application_amount_positive'),
    sa.CheckConstraint('approved_fen IS NULL OR approved_fen > 0', name='application_approved_positive'),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('voucher_id')
    )
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_region'), ['region'], unique=False)

    op.create_table('enterprise_related_provider',
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.PrimaryKeyConstraint('enterprise_id', 'provider_id')
    )
    op.create_table('provider_category',
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.ForeignKeyConstraint(['category'], ['catalog_category.code'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.PrimaryKeyConstraint('provider_id', 'category')
    )
    op.create_table('voucher',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('application_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('face_fen', sa.BigInteger(), nullable=False),
    sa.Column('available_fen', sa.BigInteger(), nullable=False),
    sa.Column('held_fen', sa.BigInteger(), nullable=False),
    sa.Column('redeemed_fen', sa.BigInteger(), nullable=False),
    sa.Column('returned_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('issued_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.CheckConstraint("status IN ('active', 'exhausted', 'expired', 'voided')", name='voucher_status'),
    sa.CheckConstraint('available_fen + held_fen + redeemed_fen + returned_fen = face_fen', name='voucher_balances_add_up'),
    sa.CheckConstraint('available_fen >= 0 AND held_fen >= 0 AND redeemed_fen >= 0 AND returned_fen >= 0', name='voucher_balances_non_negative'),
    sa.CheckConstraint('face_fen > 0', name='voucher_face_positive'),
    sa.CheckConstraint('valid_until >= valid_from', name='voucher_validity_order'),
    sa.ForeignKeyConstraint(['application_id'], ['application.id'], ),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('application_id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_voucher_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_voucher_region'), ['region'], unique=False)

    op.create_table('redemption',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('voucher_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('enterprise_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('catalog_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('service_fee_fen', sa.BigInteger(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('invoice_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('reserved_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('confirmed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('redeemed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('cancelled_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('rejected_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.CheckConstraint("status IN ('reserved', 'claimed', 'confirmed', 'redeemed', 'cancelled', 'rejected', 'settled')", name='redemption_status'),
    sa.CheckConstraint('amount_fen <= service_fee_fen', name='redemption_amount_within_fee'),
    sa.CheckConstraint('amount_fen > 0', name='redemption_amount_positive'),
    sa.CheckConstraint('service_fee_fen > 0', name='redemption_fee_positive'),
    sa.ForeignKeyConstraint(['catalog_code'], ['catalog_item.code'], ),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprise.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.ForeignKeyConstraint(['voucher_id'], ['voucher.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_redemption_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_redemption_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_redemption_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_redemption_voucher_id'), ['voucher_id'], unique=False)



def downgrade():
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redemption_voucher_id'))
        batch_op.drop_index(batch_op.f('ix_redemption_region'))
        batch_op.drop_index(batch_op.f('ix_redemption_provider_id'))
        batch_op.drop_index(batch_op.f('ix_redemption_enterprise_id'))

    op.drop_table('redemption')
    with op.batch_alter_table('voucher', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_voucher_region'))
        batch_op.drop_index(batch_op.f('ix_voucher_enterprise_id'))

    op.drop_table('voucher')
    op.drop_table('provider_category')
    op.drop_table('enterprise_related_provider')
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_region'))
        batch_op.drop_index(batch_op.f('ix_application_enterprise_id'))

    op.drop_table('application')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_principal_id'))

    op.drop_table('api_token')
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signing_key_region'))

    op.drop_table('signing_key')
    with op.batch_alter_table('provider', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_region'))

    op.drop_table('provider')
    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policy_region'))

    op.drop_table('policy')
    with op.batch_alter_table('ledger_ref', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_ref_ref')

    op.drop_table('ledger_ref')
    with op.batch_alter_table('enterprise', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enterprise_region'))

    op.drop_table('enterprise')
    with op.batch_alter_table('catalog_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_item_category'))

    op.drop_table('catalog_item')
    op.drop_table('region')
    op.drop_table('ledger_head')
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entry_region'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_kind'))

    op.drop_table('ledger_entry')
    op.drop_table('idempotency_record')
    op.drop_table('catalog_category')
    op.drop_table('account')
