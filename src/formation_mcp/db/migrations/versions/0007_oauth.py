"""The OAuth authorization server: registered clients, authorization requests (and their
codes), grants (one per refresh-token family, logins included) and the grants' audit trail.

Existing login sessions become grants of kind `login` (one per refresh-token family).

Revision ID: 0007_oauth
Revises: 0006_outbox_deployment
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_oauth"
down_revision = "0006_outbox_deployment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.BigInteger, nullable=False),
        sa.Column("refresh_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "authorization_requests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_code", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("login_hint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("granted_scope", sa.String(32), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expire_time", sa.BigInteger, nullable=True),
        sa.Column("grant_id", sa.String(64), nullable=True),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("decide_time", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "uq_authorization_requests_user_code", "authorization_requests", ["user_code"], unique=True
    )
    op.create_index(
        "uq_authorization_requests_code_hash", "authorization_requests", ["code_hash"], unique=True
    )
    op.create_index(
        "ix_authorization_requests_expire_time", "authorization_requests", ["expire_time"]
    )
    grants = op.create_table(
        "grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("client_name", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("last_use_time", sa.BigInteger, nullable=False),
        sa.Column("expire_time", sa.BigInteger, nullable=False),
        sa.Column("revoke_time", sa.BigInteger, nullable=True),
        sa.Column("revoke_reason", sa.String(32), nullable=False),
    )
    op.create_index("ix_grants_key_id_create_time", "grants", ["key_id", "create_time"])
    op.create_index("ix_grants_revoke_time", "grants", ["revoke_time"])
    op.create_index("ix_grants_expire_time", "grants", ["expire_time"])
    op.create_table(
        "grant_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_grant_audit_account_time", "grant_audit", ["account", "time"])
    op.create_index("ix_grant_audit_grant_id", "grant_audit", ["grant_id"])
    # Login sessions so far: one grant per refresh-token family.
    refresh = sa.table(
        "refresh_tokens",
        sa.column("family_id", sa.String),
        sa.column("key_id", sa.String),
        sa.column("revoked", sa.Boolean),
        sa.column("create_time", sa.BigInteger),
        sa.column("expire_time", sa.BigInteger),
    )
    families = sa.select(
        refresh.c.family_id,
        sa.func.min(refresh.c.key_id),
        sa.literal("login"),
        sa.literal(""),
        sa.literal("fmcp login"),
        sa.literal("full"),
        sa.literal(""),
        sa.func.min(refresh.c.create_time),
        sa.func.max(refresh.c.create_time),
        sa.func.max(refresh.c.expire_time),
        sa.case(
            (
                sa.func.max(sa.case((refresh.c.revoked, 1), else_=0)) == 1,
                sa.func.max(refresh.c.create_time),
            ),
            else_=sa.null(),
        ),
        sa.case(
            (sa.func.max(sa.case((refresh.c.revoked, 1), else_=0)) == 1, sa.literal("logout")),
            else_=sa.literal(""),
        ),
    ).group_by(refresh.c.family_id)
    op.execute(
        grants.insert().from_select(
            [
                "id",
                "key_id",
                "kind",
                "client_id",
                "client_name",
                "scope",
                "resource",
                "create_time",
                "last_use_time",
                "expire_time",
                "revoke_time",
                "revoke_reason",
            ],
            families,
        )
    )


def downgrade() -> None:
    op.drop_index("ix_grant_audit_grant_id", table_name="grant_audit")
    op.drop_index("ix_grant_audit_account_time", table_name="grant_audit")
    op.drop_table("grant_audit")
    op.drop_index("ix_grants_expire_time", table_name="grants")
    op.drop_index("ix_grants_revoke_time", table_name="grants")
    op.drop_index("ix_grants_key_id_create_time", table_name="grants")
    op.drop_table("grants")
    op.drop_index("ix_authorization_requests_expire_time", table_name="authorization_requests")
    op.drop_index("uq_authorization_requests_code_hash", table_name="authorization_requests")
    op.drop_index("uq_authorization_requests_user_code", table_name="authorization_requests")
    op.drop_table("authorization_requests")
    op.drop_table("oauth_clients")
