"""Outbox rows name the broker deployment they are for.

Revision ID: 0006_outbox_deployment
Revises: 0005_instances
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_deployment"
down_revision = "0005_instances"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("deployment", sa.String(255), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("outbox", "deployment")
