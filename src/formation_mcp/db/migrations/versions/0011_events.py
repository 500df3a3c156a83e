"""Events: one row per state change of a workload resource (instances, packs, nodes,
operations), for EventsService and the vm.events tool.

Revision ID: 0011_events
Revises: 0010_network
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_events"
down_revision = "0010_network"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("uq_events_key", "events", ["key"], unique=True)
    op.create_index("ix_events_owner_id", "events", ["owner", "id"])
    op.create_index("ix_events_resource_id", "events", ["resource", "id"])


def downgrade() -> None:
    op.drop_table("events")
