"""registry version: a counter on the ledger head that the database moves on
every change to the reference data a write rule reads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:00:00

Triggers, not application code, move the version, so that no change to these
tables, by any code path, can leave a cached copy of them in use
(voucher_service/journal/reference_cache.py). The counter starts at a random value, so
that two databases (a rebuilt one, a test clone) are never at the same version
with different contents.
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Every table whose rows registry_cache may hold. Adding a table to the cache
# means adding it here, in a new migration (tests/unit/journal/test_reference_cache.py
# checks each one).
REGISTRY_TABLES = ("region", "policy", "catalog_category", "catalog_item", "provider", "provider_category",
                   "enterprise", "enterprise_related_provider", "signing_key")
BUMP = "UPDATE ledger_head SET registry_version = registry_version + 1 WHERE id = 1"


def upgrade():
    with op.batch_alter_table('ledger_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registry_version', sa.BigInteger(), nullable=False, server_default='0'))
    # Below 2^62, so that ~2^62 changes still fit a signed 64-bit integer.
    op.execute(f"UPDATE ledger_head SET registry_version = {secrets.randbelow(2 ** 62)}")
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION bump_registry_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {BUMP};
                RETURN NULL;
            END $$""")
        for table in REGISTRY_TABLES:
            op.execute(f"CREATE TRIGGER {table}_bumps_registry AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_version()")
    else:
        for table in REGISTRY_TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_{event.lower()}_bumps_registry AFTER {event} ON {table} "
                           f"BEGIN {BUMP}; END")


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        for table in REGISTRY_TABLES:
            op.execute(f"DROP TRIGGER {table}_bumps_registry ON {table}")
        op.execute("DROP FUNCTION bump_registry_version()")
    else:
        for table in REGISTRY_TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"DROP TRIGGER {table}_{event.lower()}_bumps_registry")
    with op.batch_alter_table('ledger_head', schema=None) as batch_op:
        batch_op.drop_column('registry_version')
