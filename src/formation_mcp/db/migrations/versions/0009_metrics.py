"""Workload metrics: the samples each node's sampler takes of its instances.

Revision ID: 0009_metrics
Revises: 0008_policies
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_metrics"
down_revision = "0008_policies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_samples",
        sa.Column("instance_id", sa.String(40), primary_key=True),
        sa.Column("resolution", sa.SmallInteger, primary_key=True),
        sa.Column("time_us", sa.BigInteger, primary_key=True),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_start", sa.BigInteger, nullable=True),
        sa.Column("cpu_seconds", sa.Float, nullable=False),
        sa.Column("cpu_percent", sa.Float, nullable=True),
        sa.Column("rss_bytes", sa.BigInteger, nullable=False),
        sa.Column("disk_bytes", sa.BigInteger, nullable=True),
        sa.Column("processes", sa.Integer, nullable=False),
        sa.Column("threads", sa.Integer, nullable=False),
        sa.Column("open_fds", sa.Integer, nullable=True),
        sa.Column("ports", sa.Text, nullable=False),
        sa.Column("restarts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_instance_samples_node_time", "instance_samples", ["node", "resolution", "time_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_instance_samples_node_time", table_name="instance_samples")
    op.drop_table("instance_samples")
