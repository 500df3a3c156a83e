"""Instances (workloads run by the local driver) and the nodes that run them.

Revision ID: 0005_instances
Revises: 0004_packs
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_instances"
down_revision = "0004_packs"
branch_labels = None
depends_on = None

LIVE = sa.text("state != 'deleted'")


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("build_id", sa.String(64), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("supervisor_pid", sa.Integer, nullable=True),
        sa.Column("supervisor_start", sa.BigInteger, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("ports", sa.Text, nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=True),
        sa.Column("end_time", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_instances_owner_create_time", "instances", ["owner", "create_time"])
    op.create_index("ix_instances_node", "instances", ["node"])
    op.create_index(
        "uq_instances_owner_live_name",
        "instances",
        ["owner", "name"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(128), primary_key=True),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_index("uq_instances_owner_live_name", table_name="instances")
    op.drop_index("ix_instances_node", table_name="instances")
    op.drop_index("ix_instances_owner_create_time", table_name="instances")
    op.drop_table("instances")
