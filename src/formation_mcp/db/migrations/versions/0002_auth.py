"""Accounts, login challenges, refresh tokens, revoked access tokens, signing keys.

Revision ID: 0002_auth
Revises: 0001_operations
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_auth"
down_revision = "0001_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("roles", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("tokens_valid_after", sa.BigInteger, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "login_challenges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_challenges_expire_time", "login_challenges", ["expire_time"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_expire_time", "refresh_tokens", ["expire_time"])
    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_revoked_access_tokens_expire_time", "revoked_access_tokens", ["expire_time"]
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("last_used_time", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_index("ix_revoked_access_tokens_expire_time", table_name="revoked_access_tokens")
    op.drop_table("revoked_access_tokens")
    op.drop_index("ix_refresh_tokens_expire_time", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_login_challenges_expire_time", table_name="login_challenges")
    op.drop_table("login_challenges")
    op.drop_table("accounts")
