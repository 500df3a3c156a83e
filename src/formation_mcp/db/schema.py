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
