"""Operations and their events.

Revision ID: 0001_operations
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_operations"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("progress_percent", sa.SmallInteger, nullable=False),
        sa.Column("stage", sa.String(128), nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("event_attempt", sa.Integer, nullable=False),
        sa.Column("event_sequence", sa.BigInteger, nullable=False),
        sa.Column("recent_logs", sa.LargeBinary, nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("error", sa.LargeBinary, nullable=True),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_operations_owner_id", "operations", ["owner", "id"])
    op.create_index(
        "ix_operations_owner_request_id", "operations", ["owner", "request_id"], unique=True
    )
    op.create_index("ix_operations_done_end_time", "operations", ["done", "end_time"])
    op.create_table(
        "operation_events",
        sa.Column("operation_id", sa.String(32), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("snapshot", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("operation_events")
    op.drop_index("ix_operations_done_end_time", table_name="operations")
    op.drop_index("ix_operations_owner_request_id", table_name="operations")
    op.drop_index("ix_operations_owner_id", table_name="operations")
    op.drop_table("operations")
