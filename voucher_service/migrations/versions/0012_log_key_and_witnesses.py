"""the log key and the witnesses: checkpoints signed by the operator, cosigned by regions' witnesses

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:00:00

DESIGN §10. A signing key has a purpose: a region's `entry` key, as every key
was until now, or the operator's one `log` key, which belongs to no region and
signs checkpoints. `vouchers init` makes the log key on an upgraded database;
checkpoints stored before then keep their region signatures and stay
verifiable (docs/ledger.md). witness_status keeps what the publisher last
heard from each witness, publisher_status how its last round ended.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# signing_key is reference data (0004): its changes move the registry version.
# On SQLite a batch alteration rebuilds the table, which drops its triggers;
# they are made again after each rebuild.
BUMP = "UPDATE ledger_head SET registry_version = registry_version + 1 WHERE id = 1"
EVENTS = ("INSERT", "UPDATE", "DELETE")


def _sqlite_registry_triggers():
    if op.get_context().dialect.name == "postgresql":
        return  # PostgreSQL alters in place: its trigger stays
    for event in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS signing_key_{event.lower()}_bumps_registry")
        op.execute(f"CREATE TRIGGER signing_key_{event.lower()}_bumps_registry AFTER {event} ON signing_key "
                   f"BEGIN {BUMP}; END")


def upgrade():
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=8), nullable=False, server_default='entry'))
        batch_op.alter_column('region', existing_type=sa.String(length=8), nullable=True)
        batch_op.create_check_constraint(
            'signing_key_purpose',
            "(purpose = 'entry' AND region IS NOT NULL) OR (purpose = 'log' AND region IS NULL)")
    _sqlite_registry_triggers()
    op.create_table(
        'witness_status',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('vkey', sa.String(length=300), nullable=False),
        sa.Column('cosigned_size', sa.BigInteger(), nullable=True),
        sa.Column('cosigned_at', sa.String(length=40), nullable=True),
        sa.Column('attempted_at', sa.String(length=40), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('refused_size', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table(
        'publisher_status',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('attempted_at', sa.String(length=40), nullable=True),
        sa.Column('published_at', sa.String(length=40), nullable=True),
        sa.Column('integrity_error', sa.String(length=500), nullable=True),
        sa.CheckConstraint('id = 1', name='publisher_status_single_row'),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('publisher_status')
    op.drop_table('witness_status')
    op.execute("DELETE FROM signing_key WHERE purpose = 'log'")
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.drop_constraint('signing_key_purpose', type_='check')
        batch_op.alter_column('region', existing_type=sa.String(length=8), nullable=False)
        batch_op.drop_column('purpose')
    _sqlite_registry_triggers()
