"""console sessions: the web console's signed-in browsers

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:30:00

DESIGN §11. One row per signed-in browser: the SHA-256 of the cookie's random
session id, the token it was opened with (sealed with a key derived from that
id, so the row alone gives no credential), the form token (CSRF) and when the
session ends. Sign-out deletes the row.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'console_session',
        sa.Column('id_digest', sa.String(length=64), primary_key=True),
        sa.Column('token_id', sa.String(length=40), sa.ForeignKey('api_token.id'), nullable=False),
        sa.Column('sealed_token', sa.LargeBinary(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.Column('expires_at', sa.String(length=40), nullable=False),
    )
    op.create_index('ix_console_session_token_id', 'console_session', ['token_id'])


def downgrade():
    op.drop_index('ix_console_session_token_id', table_name='console_session')
    op.drop_table('console_session')
