"""provider exclusions: a region refuses a provider for its own vouchers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00

DESIGN §8: POST /regions/{code}/excluded-providers. One row per (region,
provider) while the exclusion stands; readmission deletes it (the ledger keeps
`provider.excluded` and `provider.readmitted`).

Every reservation reads the table under the ledger lock through the registry
cache (voucher_service/journal/reference_cache.py), so the table gets the
triggers that move the registry version, exactly as migration 0004 gave the
other cached tables (tests/unit/journal/test_reference_cache.py checks each
cached table). bump_registry_version() on PostgreSQL is 0004's.

"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TABLE = "provider_exclusion"
BUMP = "UPDATE ledger_head SET registry_version = registry_version + 1 WHERE id = 1"
EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade():
    op.create_table(TABLE,
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('excluded_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('excluded_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], ),
    sa.ForeignKeyConstraint(['region'], ['region.code'], ),
    sa.PrimaryKeyConstraint('region', 'provider_id')
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index('ix_provider_exclusion_provider_id', ['provider_id'], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"CREATE TRIGGER {TABLE}_bumps_registry AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   f"ON {TABLE} FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_version()")
    else:
        for event in EVENTS:
            op.execute(f"CREATE TRIGGER {TABLE}_{event.lower()}_bumps_registry AFTER {event} ON {TABLE} "
                       f"BEGIN {BUMP}; END")


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TABLE}_bumps_registry ON {TABLE}")
    else:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER {TABLE}_{event.lower()}_bumps_registry")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index('ix_provider_exclusion_provider_id')
    op.drop_table(TABLE)
