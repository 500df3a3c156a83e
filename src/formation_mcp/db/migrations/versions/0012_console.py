"""Console sessions: the web console's one-time sign-in codes and the sessions they become.

Revision ID: 0012_console
Revises: 0011_events
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_console"
down_revision = "0011_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("session_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("csrf_hash", sa.String(64), nullable=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("revoke_time", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_console_sessions_expire_time", "console_sessions", ["expire_time"])


def downgrade() -> None:
    op.drop_table("console_sessions")
