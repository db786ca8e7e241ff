"""merkle nodes, checkpoints, note key names

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 08:19:54.103986
"""
import os

import sqlalchemy as sa
import sqlmodel
from alembic import op

from voucher_service.ledger.merkle import node_key, nodes_for_append

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ledger_checkpoint',
    sa.Column('size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint('size >= 0', name='ledger_checkpoint_size'),
    sa.PrimaryKeyConstraint('size')
    )
    op.create_table('ledger_node',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.CheckConstraint('id >= 0', name='ledger_node_id'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
    # Keys made before checkpoints existed are named after the configured origin.
    origin = os.environ.get("VOUCHERS_LEDGER_ORIGIN", "vouchers.example/ledger")
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE signing_key SET note_name = :origin || '/' || region"), {"origin": origin})
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.alter_column('note_name', existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                              nullable=False)
    _store_nodes_of_existing_entries(connection)


def _store_nodes_of_existing_entries(connection):
    stored = {}
    node = sa.table("ledger_node", sa.column("id"), sa.column("hash"))
    rows = connection.execute(sa.text("SELECT seq, leaf_hash FROM ledger_entry ORDER BY seq"))
    batch = []
    for seq, leaf in rows:
        for position, value in nodes_for_append(seq, bytes(leaf), lambda nodes: [stored[n] for n in nodes]):
            stored[position] = value
            batch.append({"id": node_key(position), "hash": value})
    if batch:
        op.bulk_insert(node, batch)



def downgrade():
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.drop_column('note_name')

    op.drop_table('ledger_node')
    op.drop_table('ledger_checkpoint')
