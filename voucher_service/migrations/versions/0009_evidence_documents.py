"""evidence documents, and one live claim per provider invoice number

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00

DESIGN §9: documents (content-addressed, their bytes in chunks in the
database, so that every host reads the same), their links to redemptions, and
a partial unique index: (provider_id, invoice_no) is unique among live claims
(claimed, confirmed, redeemed, settled, recovered). SQLite and PostgreSQL both
take the WHERE of a partial index.

"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

LIVE_CLAIM = sa.text("status IN ('claimed', 'confirmed', 'redeemed', 'settled', 'recovered')")


def upgrade():
    op.create_table('document',
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('media_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint("media_type IN ('application/pdf', 'image/png', 'image/jpeg')", name='document_media_type'),
    sa.CheckConstraint('size_bytes > 0', name='document_size_positive'),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('document_chunk',
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idx', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', 'idx')
    )
    op.create_table('redemption_document',
    sa.Column('redemption_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('uploaded_at', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.CheckConstraint("kind IN ('contract', 'invoice', 'acceptance', 'payment_proof')",
                       name='redemption_document_kind'),
    sa.ForeignKeyConstraint(['redemption_id'], ['redemption.id'], ),
    sa.ForeignKeyConstraint(['sha256'], ['document.sha256'], ),
    sa.PrimaryKeyConstraint('redemption_id', 'sha256')
    )
    with op.batch_alter_table('redemption_document', schema=None) as batch_op:
        batch_op.create_index('ix_redemption_document_sha256', ['sha256'], unique=False)
    op.create_index('uq_redemption_live_invoice', 'redemption', ['provider_id', 'invoice_no'], unique=True,
                    sqlite_where=LIVE_CLAIM, postgresql_where=LIVE_CLAIM)


def downgrade():
    op.drop_index('uq_redemption_live_invoice', table_name='redemption',
                  sqlite_where=LIVE_CLAIM, postgresql_where=LIVE_CLAIM)
    with op.batch_alter_table('redemption_document', schema=None) as batch_op:
        batch_op.drop_index('ix_redemption_document_sha256')
    op.drop_table('redemption_document')
    op.drop_table('document_chunk')
    op.drop_table('document')
