"""SQL for the authorization server: OAuth clients and authorization requests (with their
codes). Every step is a row any replica can read, and every state change is one conditional
UPDATE, so replicas racing on the same request or code never both win."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.auth.client_metadata import ClientMetadata
from formation_mcp.db.schema import authorization_requests, oauth_clients

REGISTERED, DOCUMENT = "registered", "document"
PENDING, APPROVED, DENIED, ISSUED, EXCHANGED = (
    "pending",
    "approved",
    "denied",
    "issued",
    "exchanged",
)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    kind: str
    metadata: ClientMetadata
    secret_hash: str | None
    refresh_time: int


def _client(row: sa.Row[Any]) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        kind=row.kind,
        metadata=ClientMetadata.from_json(row.metadata),
        secret_hash=row.secret_hash,
        refresh_time=row.refresh_time,
    )


async def get_client(conn: AsyncConnection, client_id: str) -> ClientRecord | None:
    query = sa.select(oauth_clients).where(oauth_clients.c.client_id == client_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _client(row)


async def insert_client(conn: AsyncConnection, record: ClientRecord, now: int) -> None:
    await conn.execute(
        oauth_clients.insert().values(
            client_id=record.client_id,
            kind=record.kind,
            metadata=record.metadata.to_json(),
            secret_hash=record.secret_hash,
            create_time=now,
            update_time=now,
            refresh_time=record.refresh_time,
        )
    )


async def save_document_client(conn: AsyncConnection, record: ClientRecord, now: int) -> None:
    """Insert or refresh the cached copy of a metadata document (replicas may race)."""
    values = {"metadata": record.metadata.to_json(), "update_time": now}
    result = await conn.execute(
        oauth_clients.update()
        .where(oauth_clients.c.client_id == record.client_id)
        .values(**values, refresh_time=record.refresh_time)
    )
    if result.rowcount:
        return
    try:
        async with conn.begin_nested():
            await insert_client(conn, record, now)
    except IntegrityError:
        pass  # cached by another replica meanwhile


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: str
    user_code: str
    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    resource: str
    scope: str
    login_hint: str
    status: str
    key_id: str | None
    granted_scope: str | None
    code_expire_time: int | None
    grant_id: str | None
    create_time: int
    expire_time: int


def _request(row: sa.Row[Any]) -> RequestRecord:
    return RequestRecord(
        id=row.id,
        user_code=row.user_code,
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        state=row.state,
        code_challenge=row.code_challenge,
        resource=row.resource,
        scope=row.scope,
        login_hint=row.login_hint,
        status=row.status,
        key_id=row.key_id,
        granted_scope=row.granted_scope,
        code_expire_time=row.code_expire_time,
        grant_id=row.grant_id,
        create_time=row.create_time,
        expire_time=row.expire_time,
    )


async def insert_request(conn: AsyncConnection, record: RequestRecord) -> bool:
    """False when the user code is taken already (the caller picks another)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                authorization_requests.insert().values(
                    id=record.id,
                    user_code=record.user_code,
                    client_id=record.client_id,
                    redirect_uri=record.redirect_uri,
                    state=record.state,
                    code_challenge=record.code_challenge,
                    resource=record.resource,
                    scope=record.scope,
                    login_hint=record.login_hint,
                    status=PENDING,
                    create_time=record.create_time,
                    expire_time=record.expire_time,
                )
            )
    except IntegrityError:
        return False
    return True


async def get_request(conn: AsyncConnection, request_id: str) -> RequestRecord | None:
    query = sa.select(authorization_requests).where(authorization_requests.c.id == request_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _request(row)


async def get_request_by_user_code(conn: AsyncConnection, user_code: str) -> RequestRecord | None:
    query = sa.select(authorization_requests).where(authorization_requests.c.user_code == user_code)
    row = (await conn.execute(query)).first()
    return None if row is None else _request(row)


async def get_request_by_code(conn: AsyncConnection, code_hash: str) -> RequestRecord | None:
    query = sa.select(authorization_requests).where(authorization_requests.c.code_hash == code_hash)
    row = (await conn.execute(query)).first()
    return None if row is None else _request(row)


async def decide(
    conn: AsyncConnection,
    request_id: str,
    *,
    status: str,
    key_id: str,
    granted_scope: str | None,
    now: int,
) -> bool:
    """Approve or deny a pending, unexpired request; False when it is not (any more)."""
    result = await conn.execute(
        authorization_requests.update()
        .where(
            authorization_requests.c.id == request_id,
            authorization_requests.c.status == PENDING,
            authorization_requests.c.expire_time >= now,
        )
        .values(status=status, key_id=key_id, granted_scope=granted_scope, decide_time=now)
    )
    return result.rowcount == 1


async def issue_code(
    conn: AsyncConnection, request_id: str, code_hash: str, code_expire_time: int
) -> bool:
    """The approved request's one code; False when a code was issued already."""
    result = await conn.execute(
        authorization_requests.update()
        .where(
            authorization_requests.c.id == request_id,
            authorization_requests.c.status == APPROVED,
        )
        .values(status=ISSUED, code_hash=code_hash, code_expire_time=code_expire_time)
    )
    return result.rowcount == 1


async def exchange_code(conn: AsyncConnection, request_id: str, grant_id: str) -> bool:
    """Spend the request's code for the grant; True for exactly one caller."""
    result = await conn.execute(
        authorization_requests.update()
        .where(
            authorization_requests.c.id == request_id,
            authorization_requests.c.status == ISSUED,
        )
        .values(status=EXCHANGED, grant_id=grant_id)
    )
    return result.rowcount == 1


async def delete_expired_requests(conn: AsyncConnection, before: int, limit: int) -> int:
    """Requests (and codes) whose time ran out before `before`; at most `limit`."""
    table = authorization_requests
    expired = sa.select(table.c.id).where(table.c.expire_time < before).limit(limit)
    result = await conn.execute(table.delete().where(table.c.id.in_(expired.scalar_subquery())))
    return result.rowcount or 0
