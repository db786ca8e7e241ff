"""payout accounts and their four-eyes changes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00

DESIGN §9: PUT /providers/{id}/payout-account records a pending change
(payout_account_change); a different officer of the provider's home region
confirms it (POST .../payout-account/confirm), and only then is it the account
in effect (payout_account, one row per provider). payout_account_change's
pending_provider_id (the provider's id while pending, NULL once decided) is
UNIQUE, so a provider never has two pending changes; its CHECK refuses a
change confirmed by its proposer even if the code let one through.

Neither table is reference data: no reservation reads them, so the registry
triggers of 0004 do not watch them. Two new tables, nothing else touched.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payout_account_change',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('pending_provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('account_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('bank_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('account_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('account_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('proposed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('confirmed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'replaced')", name='payout_account_change_status'),
    sa.CheckConstraint('proposed_by <> confirmed_by', name='payout_account_change_four_eyes'),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('pending_provider_id')
    )
    op.create_index('ix_payout_account_change_provider_id', 'payout_account_change', ['provider_id'], unique=False)

    op.create_table('payout_account',
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('bank_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('account_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('account_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('change_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('confirmed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('effective_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['payout_account_change.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.PrimaryKeyConstraint('provider_id')
    )


def downgrade():
    op.drop_table('payout_account')
    op.drop_index('ix_payout_account_change_provider_id', table_name='payout_account_change')
    op.drop_table('payout_account_change')
