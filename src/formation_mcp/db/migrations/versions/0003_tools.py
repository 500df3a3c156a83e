"""Tool calls: the audit log and the outbox of messages for the broker.

Revision ID: 0003_tools
Revises: 0002_auth
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_tools"
down_revision = "0002_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("arguments_sha256", sa.String(64), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_account_time", "audit_log", ["account", "time"])
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_outbox_claimed_until", "outbox", ["claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_outbox_claimed_until", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_audit_log_account_time", table_name="audit_log")
    op.drop_table("audit_log")
