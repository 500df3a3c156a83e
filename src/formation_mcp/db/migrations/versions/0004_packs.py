"""Packs: built workload artifacts.

Revision ID: 0004_packs
Revises: 0003_tools
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_packs"
down_revision = "0003_tools"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packs",
        sa.Column("build_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("formfile", sa.Text, nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_packs_owner_create_time", "packs", ["owner", "create_time"])


def downgrade() -> None:
    op.drop_index("ix_packs_owner_create_time", table_name="packs")
    op.drop_table("packs")
