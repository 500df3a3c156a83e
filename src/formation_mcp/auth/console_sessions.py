"""The web console's sessions: `fmcp console` asks for a one-time code (CreateConsoleLink),
the browser exchanges it once, within a minute, for a session secret (an httpOnly cookie) and
a CSRF token (sent back in a header on every call), and the console's calls are made as the
account that asked for the link, with its current roles, within the token's scope.

Stored in the database (hashes only), so any replica accepts a session another one created;
signing out revokes it there. A session also ends when its account is disabled or signs out
everywhere (tokens_valid_after)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.auth import store
from formation_mcp.auth.keys import account_name
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import console_sessions
from formation_mcp.errors import PermissionDenied, Unauthenticated
from formation_mcp.identity import Caller

LINK_SECONDS = 60
"""A sign-in link's code is refused this long after `fmcp console` asked for it."""
CONSOLE_PATH = "/console"
SIGN_IN_PATH = CONSOLE_PATH + "/signin"
API_PREFIX = CONSOLE_PATH + "/api"
"""The console calls the REST API here with its cookie (Envoy strips the prefix)."""
SESSION_COOKIE = "fmcp_console"
CSRF_COOKIE = "fmcp_csrf"
CSRF_HEADER = "x-fmcp-csrf"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleLink:
    code: str
    expire_time: int  # µs


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session: str  # the cookie's secret
    csrf: str  # the CSRF token
    expire_time: int  # µs


def _refused(message: str) -> Unauthenticated:
    return Unauthenticated(message, reason="CONSOLE_SESSION_INVALID")


class ConsoleSessions:
    def __init__(self, database: Database, session_seconds: float) -> None:
        self._db = database
        self._session_us = int(session_seconds * 1_000_000)

    async def create_link(self, caller: Caller) -> ConsoleLink:
        code = secrets.token_urlsafe(32)
        now = now_us()
        expire = now + LINK_SECONDS * 1_000_000
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(console_sessions).values(
                    id=secrets.token_hex(16),
                    code_hash=_hash(code),
                    account=caller.account,
                    scope=caller.scope,
                    create_time=now,
                    expire_time=expire,
                )
            )
        return ConsoleLink(code, expire)

    async def exchange(self, code: str) -> ConsoleSession:
        """The session for a sign-in link's code: once, before the code expires."""
        now = now_us()
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expire = now + self._session_us
        table = console_sessions
        async with self._db.write() as conn:
            # One UPDATE: of two concurrent exchanges of the same code, one wins.
            result = await conn.execute(
                sa.update(table)
                .where(
                    table.c.code_hash == _hash(code),
                    table.c.expire_time >= now,
                    table.c.revoke_time.is_(None),
                )
                .values(
                    code_hash=None,
                    session_hash=_hash(session),
                    csrf_hash=_hash(csrf),
                    expire_time=expire,
                )
            )
        if result.rowcount != 1:
            raise _refused(
                "this sign-in link is used, expired or unknown: run `fmcp console` for a new one"
            )
        return ConsoleSession(session, csrf, expire)

    async def authenticate(self, session: str, csrf: str) -> Caller:
        """The caller a session cookie stands for; the CSRF token must be the session's."""
        if not session:
            raise _refused("no console session: sign in with a link from `fmcp console`")
        now = now_us()
        table = console_sessions
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(table).where(table.c.session_hash == _hash(session)))
            ).first()
            if row is None or row.revoke_time is not None or row.expire_time < now:
                raise _refused(
                    "the console session is signed out or expired: run `fmcp console` to sign in"
                )
            if not csrf or not hmac.compare_digest(_hash(csrf), row.csrf_hash or ""):
                # Signed in, but this request did not come from the console's page.
                raise PermissionDenied(
                    "the request lacks the console's CSRF token (x-fmcp-csrf)",
                    reason="CONSOLE_CSRF_INVALID",
                )
            account = await store.get_account(conn, row.account.removeprefix("accounts/"))
        if account is None or account.disabled or row.create_time < account.tokens_valid_after:
            raise _refused("the account of this console session is disabled or signed out")
        return Caller(
            account=account_name(account.key_id),
            roles=frozenset(account.roles),
            token_id=row.id,
            token_issue_time=row.create_time,
            token_expire_time=row.expire_time,
            scope=row.scope,
        )

    async def revoke(self, session: str) -> bool:
        """Signs the session out; False when there was none to sign out."""
        now = now_us()
        table = console_sessions
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.update(table)
                .where(table.c.session_hash == _hash(session), table.c.revoke_time.is_(None))
                .values(revoke_time=now)
            )
        return bool(result.rowcount == 1)


async def delete_expired(conn: AsyncConnection, now: int, limit: int) -> int:
    """Drops up to `limit` codes and sessions that expired before `now` (µs); how many."""
    table = console_sessions
    ids = (
        (await conn.execute(sa.select(table.c.id).where(table.c.expire_time < now).limit(limit)))
        .scalars()
        .all()
    )
    if ids:
        await conn.execute(sa.delete(table).where(table.c.id.in_(ids)))
    return len(ids)
