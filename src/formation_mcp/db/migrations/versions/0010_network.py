"""Routes: instances exposed through the front door (network.expose); instances record their
Formfile's NETWORK settings.

Revision ID: 0010_network
Revises: 0009_metrics
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_network"
down_revision = "0009_metrics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("path", sa.String(255), primary_key=True),
        sa.Column("instance_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("auth", sa.String(16), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_routes_owner_path", "routes", ["owner", "path"])
    op.create_index("ix_routes_instance_id", "routes", ["instance_id"])
    op.add_column("instances", sa.Column("network", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("instances", "network")
    op.drop_index("ix_routes_instance_id", table_name="routes")
    op.drop_index("ix_routes_owner_path", table_name="routes")
    op.drop_table("routes")
