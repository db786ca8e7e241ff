"""settlements and posting rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:45:10.364750
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ledger_posting',
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name='ledger_posting_amount_positive'),
    sa.ForeignKeyConstraint(['seq'], ['ledger_entry.seq'], ),
    sa.PrimaryKeyConstraint('seq', 'position')
    )
    with op.batch_alter_table('ledger_posting', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_posting_destination_ts', ['destination', 'ts'], unique=False)
        batch_op.create_index('ix_ledger_posting_region_ts', ['region', 'ts'], unique=False)
        batch_op.create_index('ix_ledger_posting_source_ts', ['source', 'ts'], unique=False)

    op.create_table('settlement',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('period_start', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('period_end', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('approved_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('executed_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('executed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('cancelled_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('cancelled_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'approved', 'executed', 'cancelled')", name='settlement_status'),
    sa.CheckConstraint('total_fen > 0', name='settlement_total_positive'),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('settlement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settlement_region'), ['region'], unique=False)

    op.create_table('settlement_approval',
    sa.Column('settlement_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('principal_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('approved_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.ForeignKeyConstraint(['settlement_id'], ['settlement.id'], ),
    sa.PrimaryKeyConstraint('settlement_id', 'region')
    )
    op.create_table('settlement_line',
    sa.Column('settlement_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('redemption_count', sa.Integer(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name='settlement_line_amount_positive'),
    sa.CheckConstraint('redemption_count > 0', name='settlement_line_count_positive'),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.ForeignKeyConstraint(['settlement_id'], ['settlement.id'], ),
    sa.PrimaryKeyConstraint('settlement_id', 'provider_id')
    )
    op.create_table('settlement_redemption',
    sa.Column('settlement_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('redemption_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('live_redemption_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemption.id'], ),
    sa.ForeignKeyConstraint(['settlement_id'], ['settlement.id'], ),
    sa.PrimaryKeyConstraint('settlement_id', 'redemption_id'),
    sa.UniqueConstraint('live_redemption_id')
    )
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settled_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_redemption_redeemed_at'), ['redeemed_at'], unique=False)
    _index_postings_of_existing_entries()


def _index_postings_of_existing_entries():
    connection = op.get_bind()
    posting = sa.table("ledger_posting", *(sa.column(c) for c in (
        "seq", "position", "ts", "kind", "region", "source", "destination", "amount_fen")))
    rows = []
    for seq, canonical in connection.execute(sa.text("SELECT seq, canonical FROM ledger_entry ORDER BY seq")):
        entry = json.loads(bytes(canonical))
        for position, p in enumerate(entry["postings"]):
            rows.append({"seq": seq, "position": position, "ts": entry["ts"], "kind": entry["kind"],
                         "region": entry["region"], "source": p["source"], "destination": p["destination"],
                         "amount_fen": p["amount"]})
    if rows:
        op.bulk_insert(posting, rows)



def downgrade():
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redemption_redeemed_at'))
        batch_op.drop_column('settled_at')

    op.drop_table('settlement_redemption')
    op.drop_table('settlement_line')
    op.drop_table('settlement_approval')
    with op.batch_alter_table('settlement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settlement_region'))

    op.drop_table('settlement')
    with op.batch_alter_table('ledger_posting', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_posting_source_ts')
        batch_op.drop_index('ix_ledger_posting_region_ts')
        batch_op.drop_index('ix_ledger_posting_destination_ts')

    op.drop_table('ledger_posting')
