"""Policies: per-account and per-role rules on tool calls, the quota lock row of each account,
the quota claims of admitted calls, the per-tool rate windows, and human approvals (an
operation's approval, the work of calls waiting for one).

Revision ID: 0008_policies
Revises: 0007_oauth
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_policies"
down_revision = "0007_oauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("policy", sa.LargeBinary, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("update_account", sa.String(255), nullable=False),
    )
    op.create_table(
        "quota_locks",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "quota_claims",
        sa.Column("operation_id", sa.String(32), primary_key=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("instance_name", sa.String(255), nullable=True),
        sa.Column("vcpus", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.BigInteger, nullable=False),
        sa.Column("disk_gb", sa.BigInteger, nullable=False),
        sa.Column("build", sa.Boolean, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_quota_claims_account_create_time", "quota_claims", ["account", "create_time"]
    )
    op.create_table(
        "rate_windows",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("tool", sa.String(128), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("calls", sa.Integer, nullable=False),
    )

    op.add_column("operations", sa.Column("approval", sa.LargeBinary, nullable=True))
    op.create_table(
        "approval_work",
        sa.Column("operation_id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("work", sa.LargeBinary, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_approval_work_expire_time", "approval_work", ["expire_time"])


def downgrade() -> None:
    op.drop_index("ix_approval_work_expire_time", table_name="approval_work")
    op.drop_table("approval_work")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("approval")
    op.drop_table("rate_windows")
    op.drop_index("ix_quota_claims_account_create_time", table_name="quota_claims")
    op.drop_table("quota_claims")
    op.drop_table("quota_locks")
    op.drop_table("policies")
