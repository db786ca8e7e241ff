"""recoveries and payment results: money that comes back, and what the bank did

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 04:00:00

DESIGN §9. A redemption may be `recovered` (with the amount, when and why);
a settlement line carries the offset taken from the provider's receivable and
the bank's result (paid with a reference, or failed with a reason); a batch
whose every line has a result is `completed`.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

REDEMPTION_STATUSES = "'reserved', 'claimed', 'confirmed', 'redeemed', 'cancelled', 'rejected', 'settled'"
SETTLEMENT_STATUSES = "'draft', 'approved', 'executed', 'cancelled'"


def upgrade():
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recovered_fen', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('recovered_at', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('recovery_reason', sa.String(length=500), nullable=True))
        batch_op.drop_constraint('redemption_status', type_='check')
        batch_op.create_check_constraint('redemption_status',
                                         f"status IN ({REDEMPTION_STATUSES}, 'recovered')")
        batch_op.create_check_constraint(
            'redemption_recovered_within_amount',
            "recovered_fen IS NULL OR (recovered_fen > 0 AND recovered_fen <= amount_fen)")
    with op.batch_alter_table('settlement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completed_at', sa.String(length=40), nullable=True))
        batch_op.drop_constraint('settlement_status', type_='check')
        batch_op.create_check_constraint('settlement_status', f"status IN ({SETTLEMENT_STATUSES}, 'completed')")
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offset_fen', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('result', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('bank_reference', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('failure_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('result_at', sa.String(length=40), nullable=True))
        batch_op.create_check_constraint('settlement_line_offset', "offset_fen >= 0 AND offset_fen <= amount_fen")
        batch_op.create_check_constraint('settlement_line_result', "result IS NULL OR result IN ('paid', 'failed')")


def downgrade():
    with op.batch_alter_table('settlement_line', schema=None) as batch_op:
        batch_op.drop_constraint('settlement_line_result', type_='check')
        batch_op.drop_constraint('settlement_line_offset', type_='check')
        for column in ('result_at', 'failure_reason', 'bank_reference', 'result', 'offset_fen'):
            batch_op.drop_column(column)
    with op.batch_alter_table('settlement', schema=None) as batch_op:
        batch_op.drop_constraint('settlement_status', type_='check')
        batch_op.create_check_constraint('settlement_status', f"status IN ({SETTLEMENT_STATUSES})")
        batch_op.drop_column('completed_at')
    with op.batch_alter_table('redemption', schema=None) as batch_op:
        batch_op.drop_constraint('redemption_recovered_within_amount', type_='check')
        batch_op.drop_constraint('redemption_status', type_='check')
        batch_op.create_check_constraint('redemption_status', f"status IN ({REDEMPTION_STATUSES})")
        for column in ('recovery_reason', 'recovered_at', 'recovered_fen'):
            batch_op.drop_column(column)
