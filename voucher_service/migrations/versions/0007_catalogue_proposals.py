"""catalogue proposals and their approvals

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00

POST /catalog and PATCH /catalog/{code} no longer change the shared
catalogue at once: they propose a change, which takes effect when officers
of VOUCHERS_CATALOGUE_QUORUM member regions have approved it (DESIGN §8).
Two new tables, nothing else touched: no batch copy of an existing table,
the same statements on SQLite and PostgreSQL. The approvals' primary key
(proposal_id, region) stores one approval per region even in a race, and
catalog_proposal.open_code (the code while open, NULL once decided) is
UNIQUE, so an item never has two open proposals. Neither table is
reference data: the registry triggers of 0004 do not watch them.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('catalog_proposal',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('change', sa.Text(), nullable=False),
    sa.Column('open_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('proposed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('proposed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('decided_quorum', sa.Integer(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'adopted', 'withdrawn')", name='catalog_proposal_status'),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_code')
    )
    op.create_index(op.f('ix_catalog_proposal_code'), 'catalog_proposal', ['code'], unique=False)

    op.create_table('catalog_proposal_approval',
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('approved_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['catalog_proposal.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('proposal_id', 'region')
    )


def downgrade():
    op.drop_table('catalog_proposal_approval')
    op.drop_index(op.f('ix_catalog_proposal_code'), table_name='catalog_proposal')
    op.drop_table('catalog_proposal')
