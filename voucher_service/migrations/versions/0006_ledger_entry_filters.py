"""indexes for the audit trail's filters

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00

GET /ledger/entries filters by kind, region, ref and time and pages in seq
order. The single-column indexes on kind and region gave the rows of a kind
in no useful order, so a page of a common kind meant sorting all of them;
(kind, seq) and (region, seq) hand them over in seq order and a page stops
after `limit` rows. (ts, seq) serves the time window. Refs already have
ix_ledger_ref_ref (ref, seq). Index changes only: batch mode does not copy
the table for them, even on SQLite.
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entry_kind_seq', ['kind', 'seq'], unique=False)
        batch_op.create_index('ix_ledger_entry_region_seq', ['region', 'seq'], unique=False)
        batch_op.create_index('ix_ledger_entry_ts_seq', ['ts', 'seq'], unique=False)
        batch_op.drop_index('ix_ledger_entry_kind')
        batch_op.drop_index('ix_ledger_entry_region')


def downgrade():
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entry_region', ['region'], unique=False)
        batch_op.create_index('ix_ledger_entry_kind', ['kind'], unique=False)
        batch_op.drop_index('ix_ledger_entry_ts_seq')
        batch_op.drop_index('ix_ledger_entry_region_seq')
        batch_op.drop_index('ix_ledger_entry_kind_seq')
