"""SQL for accounts, login challenges, refresh tokens, revocations and signing keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.db.schema import (
    accounts,
    login_challenges,
    refresh_tokens,
    revoked_access_tokens,
    signing_keys,
)


@dataclass(frozen=True, slots=True)
class AccountRecord:
    key_id: str
    public_key: bytes
    roles: tuple[str, ...]
    disabled: bool
    tokens_valid_after: int
    create_time: int
    update_time: int


def _account(row: sa.Row[Any]) -> AccountRecord:
    return AccountRecord(
        key_id=row.key_id,
        public_key=row.public_key,
        roles=tuple(r for r in row.roles.split(",") if r),
        disabled=row.disabled,
        tokens_valid_after=row.tokens_valid_after,
        create_time=row.create_time,
        update_time=row.update_time,
    )


async def get_account(conn: AsyncConnection, key_id: str) -> AccountRecord | None:
    row = (await conn.execute(sa.select(accounts).where(accounts.c.key_id == key_id))).first()
    return None if row is None else _account(row)


async def insert_account(
    conn: AsyncConnection, key_id: str, public_key: bytes, roles: tuple[str, ...], now: int
) -> bool:
    """False when the account exists already (another replica may have won the race)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                accounts.insert().values(
                    key_id=key_id,
                    public_key=public_key,
                    roles=",".join(roles),
                    disabled=False,
                    tokens_valid_after=0,
                    create_time=now,
                    update_time=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def update_account(conn: AsyncConnection, key_id: str, **values: Any) -> None:
    if "roles" in values:
        values["roles"] = ",".join(values["roles"])
    await conn.execute(accounts.update().where(accounts.c.key_id == key_id).values(**values))


async def list_accounts(
    conn: AsyncConnection, after: str | None, limit: int
) -> list[AccountRecord]:
    query = sa.select(accounts).order_by(accounts.c.key_id).limit(limit)
    if after is not None:
        query = query.where(accounts.c.key_id > after)
    return [_account(row) for row in await conn.execute(query)]


async def tokens_valid_after(conn: AsyncConnection) -> dict[str, int]:
    query = sa.select(accounts.c.key_id, accounts.c.tokens_valid_after).where(
        accounts.c.tokens_valid_after > 0
    )
    return {kid: moment for kid, moment in await conn.execute(query)}


async def insert_challenge(
    conn: AsyncConnection, challenge_id: str, key_id: str, message: bytes, expire_time: int
) -> None:
    await conn.execute(
        login_challenges.insert().values(
            id=challenge_id, key_id=key_id, message=message, expire_time=expire_time
        )
    )


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    key_id: str
    message: bytes
    expire_time: int


async def consume_challenge(conn: AsyncConnection, challenge_id: str) -> ChallengeRecord | None:
    """Delete and return the challenge: whoever deletes it first is the only one to get it,
    however many replicas race."""
    row = (
        await conn.execute(
            login_challenges.delete()
            .where(login_challenges.c.id == challenge_id)
            .returning(
                login_challenges.c.key_id,
                login_challenges.c.message,
                login_challenges.c.expire_time,
            )
        )
    ).first()
    return None if row is None else ChallengeRecord(row.key_id, row.message, row.expire_time)


async def delete_expired(conn: AsyncConnection, now: int, limit: int) -> int:
    """Expired challenges, refresh tokens and denylist entries; at most `limit` of each."""
    removed = 0
    for table, column, key in (
        (login_challenges, login_challenges.c.expire_time, login_challenges.c.id),
        (refresh_tokens, refresh_tokens.c.expire_time, refresh_tokens.c.token_hash),
        (revoked_access_tokens, revoked_access_tokens.c.expire_time, revoked_access_tokens.c.jti),
    ):
        expired = sa.select(key).where(column < now).limit(limit).scalar_subquery()
        result = await conn.execute(table.delete().where(key.in_(expired)))
        removed += result.rowcount or 0
    return removed


async def insert_refresh_token(
    conn: AsyncConnection,
    token_hash: str,
    family_id: str,
    key_id: str,
    expire_time: int,
    now: int,
) -> None:
    await conn.execute(
        refresh_tokens.insert().values(
            token_hash=token_hash,
            family_id=family_id,
            key_id=key_id,
            used=False,
            revoked=False,
            expire_time=expire_time,
            create_time=now,
        )
    )


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    family_id: str
    key_id: str
    used: bool
    revoked: bool
    expire_time: int


async def get_refresh_token(conn: AsyncConnection, token_hash: str) -> RefreshTokenRecord | None:
    row = (
        await conn.execute(
            sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        )
    ).first()
    if row is None:
        return None
    return RefreshTokenRecord(row.family_id, row.key_id, row.used, row.revoked, row.expire_time)


async def mark_refresh_token_used(conn: AsyncConnection, token_hash: str) -> bool:
    """True for exactly one caller, however many race to rotate the same token."""
    result = await conn.execute(
        refresh_tokens.update()
        .where(
            refresh_tokens.c.token_hash == token_hash,
            refresh_tokens.c.used.is_(False),
            refresh_tokens.c.revoked.is_(False),
        )
        .values(used=True)
    )
    return result.rowcount == 1


async def revoke_family(conn: AsyncConnection, family_id: str) -> None:
    await conn.execute(
        refresh_tokens.update().where(refresh_tokens.c.family_id == family_id).values(revoked=True)
    )


async def revoke_access_token(conn: AsyncConnection, jti: str, expire_time: int) -> None:
    exists = await conn.scalar(sa.select(sa.func.count()).where(revoked_access_tokens.c.jti == jti))
    if not exists:
        await conn.execute(revoked_access_tokens.insert().values(jti=jti, expire_time=expire_time))


async def revoked_tokens(conn: AsyncConnection, now: int) -> dict[str, int]:
    query = sa.select(revoked_access_tokens.c.jti, revoked_access_tokens.c.expire_time).where(
        revoked_access_tokens.c.expire_time >= now
    )
    return {jti: expire for jti, expire in await conn.execute(query)}


async def register_signing_key(
    conn: AsyncConnection, kid: str, public_key: bytes, now: int
) -> None:
    """Publish (or keep publishing) a key this server signs with."""
    result = await conn.execute(
        signing_keys.update().where(signing_keys.c.kid == kid).values(last_used_time=now)
    )
    if result.rowcount:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(
                signing_keys.insert().values(
                    kid=kid, public_key=public_key, create_time=now, last_used_time=now
                )
            )
    except IntegrityError:
        pass  # registered by another replica meanwhile


async def signing_public_keys(conn: AsyncConnection, used_since: int) -> dict[str, bytes]:
    """Keys some server signed with at or after `used_since`."""
    rows = await conn.execute(
        sa.select(signing_keys.c.kid, signing_keys.c.public_key).where(
            signing_keys.c.last_used_time >= used_since
        )
    )
    return {kid: public_key for kid, public_key in rows}
