"""SQL for grants and their audit trail.

A grant is one refresh-token family: a login of the CLI or SDK (kind `login`), or an MCP host
the user approved (kind `oauth`). Its id is the family id, and access tokens name it (`sid`),
so revoking a grant ends its refresh tokens and its access tokens at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.db.schema import grant_audit, grants

LOGIN, OAUTH = "login", "oauth"
KINDS = (LOGIN, OAUTH)
ACTIVE, REVOKED, EXPIRED = "ACTIVE", "REVOKED", "EXPIRED"
STATES = (ACTIVE, REVOKED, EXPIRED)


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: str
    key_id: str
    kind: str
    client_id: str
    client_name: str
    scope: str
    resource: str
    create_time: int
    last_use_time: int
    expire_time: int
    revoke_time: int | None = None
    revoke_reason: str = ""

    def state(self, now: int) -> str:
        if self.revoke_time is not None:
            return REVOKED
        return ACTIVE if self.expire_time >= now else EXPIRED


def _grant(row: sa.Row[Any]) -> GrantRecord:
    return GrantRecord(
        id=row.id,
        key_id=row.key_id,
        kind=row.kind,
        client_id=row.client_id,
        client_name=row.client_name,
        scope=row.scope,
        resource=row.resource,
        create_time=row.create_time,
        last_use_time=row.last_use_time,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
        revoke_reason=row.revoke_reason,
    )


_INSERT_GRANT = grants.insert()
_INSERT_AUDIT = grant_audit.insert()


async def insert_grant(conn: AsyncConnection, record: GrantRecord) -> None:
    """One statement compiled once (parameters bound per call): logins make one each."""
    await conn.execute(_INSERT_GRANT, asdict(record))


async def get_grant(conn: AsyncConnection, grant_id: str) -> GrantRecord | None:
    row = (await conn.execute(sa.select(grants).where(grants.c.id == grant_id))).first()
    return None if row is None else _grant(row)


async def touch_grant(conn: AsyncConnection, grant_id: str, now: int, expire_time: int) -> None:
    """A refresh: the grant was used now and lives as long as its newest refresh token."""
    await conn.execute(
        grants.update()
        .where(grants.c.id == grant_id)
        .values(last_use_time=now, expire_time=expire_time)
    )


async def revoke_grant(conn: AsyncConnection, grant_id: str, now: int, reason: str) -> bool:
    """Mark the grant revoked; False when it was already (or does not exist)."""
    result = await conn.execute(
        grants.update()
        .where(grants.c.id == grant_id, grants.c.revoke_time.is_(None))
        .values(revoke_time=now, revoke_reason=reason)
    )
    return result.rowcount == 1


async def revoked_since(conn: AsyncConnection, since: int) -> dict[str, int]:
    """Grant id -> revoke time, for grants revoked at or after `since`."""
    query = sa.select(grants.c.id, grants.c.revoke_time).where(grants.c.revoke_time >= since)
    return {grant_id: moment for grant_id, moment in await conn.execute(query)}


async def list_grants(
    conn: AsyncConnection,
    key_id: str | None,
    *,
    kind: str | None,
    state: str | None,
    now: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[GrantRecord]:
    """Newest first (create time, then id); `key_id` None means every account's."""
    query = sa.select(grants).order_by(grants.c.create_time.desc(), grants.c.id.desc())
    if key_id is not None:
        query = query.where(grants.c.key_id == key_id)
    if kind is not None:
        query = query.where(grants.c.kind == kind)
    if state == REVOKED:
        query = query.where(grants.c.revoke_time.is_not(None))
    elif state == ACTIVE:
        query = query.where(grants.c.revoke_time.is_(None), grants.c.expire_time >= now)
    elif state == EXPIRED:
        query = query.where(grants.c.revoke_time.is_(None), grants.c.expire_time < now)
    if after is not None:
        moment, grant_id = after
        query = query.where(
            sa.or_(
                grants.c.create_time < moment,
                sa.and_(grants.c.create_time == moment, grants.c.id < grant_id),
            )
        )
    return [_grant(row) for row in await conn.execute(query.limit(limit))]


async def delete_expired_grants(conn: AsyncConnection, before: int, limit: int) -> int:
    """Grants whose last refresh token expired before `before` (their access tokens are long
    gone too), at most `limit`."""
    expired = sa.select(grants.c.id).where(grants.c.expire_time < before).limit(limit)
    result = await conn.execute(grants.delete().where(grants.c.id.in_(expired.scalar_subquery())))
    return result.rowcount or 0


# -- the audit trail ---------------------------------------------------------------------------

APPROVED = "APPROVED"
DENIED = "DENIED"
GRANTED = "GRANTED"
"""A code was exchanged: the grant exists, its first tokens were issued."""
REFUSED = "REFUSED"
"""A token request was refused (wrong verifier, redirect URI, resource, expired code, ...)."""
LOGGED_IN = "LOGGED_IN"
REVOKED_EVENT = "REVOKED"
CODE_REUSED = "CODE_REUSED"


def audit_row(
    event: str,
    *,
    now: int,
    account: str = "",
    grant_id: str = "",
    client_id: str = "",
    scope: str = "",
    address: str = "",
    detail: str = "",
) -> dict[str, Any]:
    return {
        "time": now,
        "event": event,
        "account": account,
        "grant_id": grant_id,
        "client_id": client_id[:512],
        "scope": scope,
        "address": address[:64],
        "detail": detail[:1000],
    }


async def audit(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(_INSERT_AUDIT, rows[0] if len(rows) == 1 else list(rows))


async def audit_trail(conn: AsyncConnection, grant_id: str) -> list[dict[str, Any]]:
    """Every audit row of one grant, oldest first."""
    query = (
        sa.select(grant_audit).where(grant_audit.c.grant_id == grant_id).order_by(grant_audit.c.id)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]
