"""Table definitions (SQLAlchemy Core). Migrations in `migrations/` create them.

Times are integer microseconds since the Unix epoch (UTC): exact, portable between SQLite
and PostgreSQL, and cheap to compare. Operation ids are time-ordered (see `operations.ids`),
so `ORDER BY id DESC` is newest first and serves keyset paging.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

operations = sa.Table(
    "operations",
    metadata,
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
    # formation.mcp.v1.Approval, serialized: the call needed a human approval.
    sa.Column("approval", sa.LargeBinary, nullable=True),
    sa.Index("ix_operations_owner_id", "owner", "id"),
    sa.Index("ix_operations_owner_request_id", "owner", "request_id", unique=True),
    sa.Index("ix_operations_done_end_time", "done", "end_time"),
)

operation_events = sa.Table(
    "operation_events",
    metadata,
    sa.Column("operation_id", sa.String(32), primary_key=True),
    sa.Column("sequence", sa.BigInteger, primary_key=True),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("roles", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    # Tokens issued before this time (microseconds) are no longer accepted.
    sa.Column("tokens_valid_after", sa.BigInteger, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Column("update_time", sa.BigInteger, nullable=False),
)

login_challenges = sa.Table(
    "login_challenges",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("message", sa.LargeBinary, nullable=False),
    sa.Column("expire_time", sa.BigInteger, nullable=False),
    sa.Index("ix_login_challenges_expire_time", "expire_time"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("used", sa.Boolean, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("expire_time", sa.BigInteger, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Index("ix_refresh_tokens_family_id", "family_id"),
    sa.Index("ix_refresh_tokens_expire_time", "expire_time"),
)

revoked_access_tokens = sa.Table(
    "revoked_access_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expire_time", sa.BigInteger, nullable=False),
    sa.Index("ix_revoked_access_tokens_expire_time", "expire_time"),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    # Refreshed by every server that signs with the key; tokens of a key no server has used for
    # longer than the access-token lifetime are no longer accepted.
    sa.Column("last_used_time", sa.BigInteger, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("arguments_sha256", sa.String(64), nullable=False),
    sa.Column("operation_id", sa.String(32), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_log_account_time", "account", "time"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("kind", sa.String(16), nullable=False),  # work | cancel
    sa.Column("routing_key", sa.String(255), nullable=False),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    # A relay claims rows while it publishes them; a crashed relay's claim simply runs out.
    sa.Column("claimed_until", sa.BigInteger, nullable=False),
    # The broker deployment the row is for: a relay publishes only its own deployment's rows
    # (several deployments may share a database; "" = written before this column existed).
    sa.Column("deployment", sa.String(255), nullable=False, server_default=""),
    sa.Index("ix_outbox_claimed_until", "claimed_until"),
)

packs = sa.Table(
    "packs",
    metadata,
    sa.Column("build_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("formfile", sa.Text, nullable=False),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Index("ix_packs_owner_create_time", "owner", "create_time"),
)

instances = sa.Table(
    "instances",
    metadata,
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
    # The pack's Formfile NETWORK settings (JSON; {} for the defaults), recorded, not applied
    # by the local driver.
    sa.Column("network", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_instances_owner_create_time", "owner", "create_time"),
    sa.Index("ix_instances_node", "node"),
    sa.Index(
        "uq_instances_owner_live_name",
        "owner",
        "name",
        unique=True,
        sqlite_where=sa.text("state != 'deleted'"),
        postgresql_where=sa.text("state != 'deleted'"),
    ),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("node_id", sa.String(128), primary_key=True),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("last_seen", sa.BigInteger, nullable=False),
)

# -- workload metrics (the sampler of each node) ----------------------------------------------

instance_samples = sa.Table(
    "instance_samples",
    metadata,
    sa.Column("instance_id", sa.String(40), primary_key=True),
    # 0: one raw sample; 60: a 1-minute point folded from raw samples older than an hour.
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
    sa.Index("ix_instance_samples_node_time", "node", "resolution", "time_us"),
)

# -- the OAuth authorization server (MCP hosts) ---------------------------------------------------

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    # A dynamically registered client's id (random), or a Client ID Metadata Document's URL.
    sa.Column("client_id", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # registered | document
    # The validated client metadata (JSON): client_name, redirect_uris, grant_types, ...
    sa.Column("metadata", sa.Text, nullable=False),
    # SHA-256 of the client secret, for clients registered with a secret-based auth method.
    sa.Column("secret_hash", sa.String(64), nullable=True),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Column("update_time", sa.BigInteger, nullable=False),
    # A metadata document is fetched again after this time; 0 for registered clients.
    sa.Column("refresh_time", sa.BigInteger, nullable=False),
)

authorization_requests = sa.Table(
    "authorization_requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The short code the user approves with (`fmcp authorize CODE`).
    sa.Column("user_code", sa.String(16), nullable=False),
    sa.Column("client_id", sa.String(512), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),  # asked for: full | read-only
    sa.Column("login_hint", sa.String(64), nullable=False),  # a key id, or ""
    # pending -> approved | denied; approved -> issued (code sent) -> exchanged
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=True),  # who approved or denied
    sa.Column("granted_scope", sa.String(32), nullable=True),
    sa.Column("code_hash", sa.String(64), nullable=True),
    sa.Column("code_expire_time", sa.BigInteger, nullable=True),
    sa.Column("grant_id", sa.String(64), nullable=True),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Column("expire_time", sa.BigInteger, nullable=False),  # to approve or deny by
    sa.Column("decide_time", sa.BigInteger, nullable=True),
    sa.Index("uq_authorization_requests_user_code", "user_code", unique=True),
    sa.Index("uq_authorization_requests_code_hash", "code_hash", unique=True),
    sa.Index("ix_authorization_requests_expire_time", "expire_time"),
)

grants = sa.Table(
    "grants",
    metadata,
    # The refresh-token family id: every refresh token of the grant carries it.
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # login | oauth
    sa.Column("client_id", sa.String(512), nullable=False),  # "" for logins
    sa.Column("client_name", sa.String(255), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),  # the tokens' audience; "" = the API
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Column("last_use_time", sa.BigInteger, nullable=False),
    sa.Column("expire_time", sa.BigInteger, nullable=False),  # of its newest refresh token
    sa.Column("revoke_time", sa.BigInteger, nullable=True),
    sa.Column("revoke_reason", sa.String(32), nullable=False),
    sa.Index("ix_grants_key_id_create_time", "key_id", "create_time"),
    sa.Index("ix_grants_revoke_time", "revoke_time"),
    sa.Index("ix_grants_expire_time", "expire_time"),
)

grant_audit = sa.Table(
    "grant_audit",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("account", sa.String(255), nullable=False),  # "" before anyone approved
    sa.Column("grant_id", sa.String(64), nullable=False),
    sa.Column("client_id", sa.String(512), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_grant_audit_account_time", "account", "time"),
    sa.Index("ix_grant_audit_grant_id", "grant_id"),
)

# -- policies (guardrails on tool calls) ---------------------------------------------------------

policies = sa.Table(
    "policies",
    metadata,
    # `accounts/{key_id}` or `roles/{role}`: whose policy it is.
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("policy", sa.LargeBinary, nullable=False),  # formation.mcp.v1.Policy, serialized
    sa.Column("update_time", sa.BigInteger, nullable=False),
    sa.Column("update_account", sa.String(255), nullable=False),
)

quota_locks = sa.Table(
    "quota_locks",
    metadata,
    # One row per account: admissions that count its usage against a quota update it first, so
    # they take turns (a row lock on PostgreSQL, the write lock on SQLite).
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

quota_claims = sa.Table(
    "quota_claims",
    metadata,
    # What an admitted call will use once its operation has run: counted while the operation
    # is not done (instances not created yet), and for an hour (builds).
    sa.Column("operation_id", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("instance_name", sa.String(255), nullable=True),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.BigInteger, nullable=False),
    sa.Column("disk_gb", sa.BigInteger, nullable=False),
    sa.Column("build", sa.Boolean, nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Index("ix_quota_claims_account_create_time", "account", "create_time"),
)

rate_windows = sa.Table(
    "rate_windows",
    metadata,
    # Calls of one tool by one account in one fixed minute (its start, µs).
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("tool", sa.String(128), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True),
    sa.Column("calls", sa.Integer, nullable=False),
)

approval_work = sa.Table(
    "approval_work",
    metadata,
    # The work of a call that waits for an approval: queued (outbox) when it is approved,
    # dropped when it is denied, expires or is cancelled.
    sa.Column("operation_id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("work", sa.LargeBinary, nullable=False),  # formation.mcp.internal.v1.WorkItem
    sa.Column("expire_time", sa.BigInteger, nullable=False),
    sa.Index("ix_approval_work_expire_time", "expire_time"),
)


# -- network: instances exposed through the front door ----------------------------------------

routes = sa.Table(
    "routes",
    metadata,
    # The path prefix on the front door (`/apps/web/`): unique, stripped before the instance.
    sa.Column("path", sa.String(255), primary_key=True),
    sa.Column("instance_id", sa.String(40), nullable=False),
    # The instance's owner: whose bearer token opens a route with auth `token`.
    sa.Column("owner", sa.String(255), nullable=False),
    # One of the instance's EXPOSE ports (the loopback port it maps to may change on restart).
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("auth", sa.String(16), nullable=False),  # public | token
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.Index("ix_routes_owner_path", "owner", "path"),
    sa.Index("ix_routes_instance_id", "instance_id"),
)


# -- events: what happened to resources ---------------------------------------------------------

events = sa.Table(
    "events",
    metadata,
    # Time-ordered ids assigned in commit order (see events.model): ORDER BY id is the order
    # events were recorded in, and retention deletes by id.
    sa.Column("id", sa.String(16), primary_key=True),
    # Chosen by whoever reports the event: recording the same key twice records it once.
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("resource", sa.String(255), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("node", sa.String(128), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("uq_events_key", "key", unique=True),
    sa.Index("ix_events_owner_id", "owner", "id"),
    sa.Index("ix_events_resource_id", "resource", "id"),
)

# -- console: the web console's sign-in links and sessions --------------------------------------

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # SHA-256 (hex) of the one-time code in the sign-in link; NULL once exchanged.
    sa.Column("code_hash", sa.String(64), nullable=True, unique=True),
    # SHA-256 (hex) of the session cookie's secret; NULL until the code is exchanged.
    sa.Column("session_hash", sa.String(64), nullable=True, unique=True),
    # SHA-256 (hex) of the CSRF token the console sends back in a header on every call.
    sa.Column("csrf_hash", sa.String(64), nullable=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    # The code is refused after this; once exchanged, the session is refused after it.
    sa.Column("expire_time", sa.BigInteger, nullable=False),
    sa.Column("revoke_time", sa.BigInteger, nullable=True),
    sa.Index("ix_console_sessions_expire_time", "expire_time"),
)
