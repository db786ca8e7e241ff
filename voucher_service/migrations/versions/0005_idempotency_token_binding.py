"""idempotency records name the token binding that made them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00

A principal may hold tokens of different bindings (a KS officer's and an SH
officer's), and a stored response is what its binding may see: it is replayed
only to a token of the same role and region, enterprise or provider
(voucher_service/http/transaction.py).

Rows written before this migration get an empty binding. Which token made
them is unknown, so a key among them is refused (422) rather than replayed:
replaying could hand a response to a binding that may not read it, and
running the request again could repeat its effect.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_binding', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False,
                                      server_default=''))


def downgrade():
    with op.batch_alter_table('idempotency_record', schema=None) as batch_op:
        batch_op.drop_column('token_binding')
