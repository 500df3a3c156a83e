"""Revoked access tokens, kept in memory on every replica so checking costs nothing per call.

Three kinds: one token (`jti`, denylisted until it expires), every token of a grant (`sid`: a
revoked session or MCP host, until its last access token has expired) and every token of an
account issued before a time (logout everywhere, disabled account, changed roles). Loaded from
the database at start, updated by change notices (topic `revocation`) from any replica, and
reloaded on resync.
"""

from __future__ import annotations

import asyncio
import logging

from formation_mcp.auth import grant_store, store
from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.settings import MAX_ACCESS_TOKEN_SECONDS

log = logging.getLogger(__name__)

TOPIC = "revocation"
GRANT_TOKENS_LIVE_US = int(MAX_ACCESS_TOKEN_SECONDS * 1_000_000)
"""After a grant is revoked, its access tokens may be presented this long."""


class Revocations:
    def __init__(self, database: Database, bus: ChangeBus) -> None:
        self._db = database
        self._tokens: dict[str, int] = {}  # jti -> expire time (µs)
        self._grants: dict[str, int] = {}  # grant id -> until (µs)
        self._valid_after: dict[str, int] = {}  # key id -> µs
        self._reload: asyncio.Task[None] | None = None
        bus.subscribe(TOPIC, self._on_notice, self._schedule_reload)

    async def load(self) -> None:
        async with self._db.read() as conn:
            now = now_us()
            tokens = await store.revoked_tokens(conn, now)
            valid_after = await store.tokens_valid_after(conn)
            grants = await grant_store.revoked_since(conn, now - GRANT_TOKENS_LIVE_US)
        self._tokens.update(tokens)
        for grant_id, moment in grants.items():
            self._grants[grant_id] = moment + GRANT_TOKENS_LIVE_US
        for kid, moment in valid_after.items():
            self._valid_after[kid] = max(moment, self._valid_after.get(kid, 0))

    def is_revoked(self, jti: str, kid: str, issued_at: int, grant_id: str = "") -> bool:
        """`issued_at` in µs (the token's exact issue time); `grant_id` its `sid`, if any."""
        if jti in self._tokens or (grant_id and grant_id in self._grants):
            return True
        return issued_at < self._valid_after.get(kid, 0)

    def token_revoked(self, jti: str, expire_time: int) -> str:
        """Record locally; returns the notice payload for other replicas."""
        self._tokens[jti] = expire_time
        return f"jti:{jti}:{expire_time}"

    def grant_revoked(self, grant_id: str, moment: int) -> str:
        """Every access token of the grant, revoked at `moment` (µs)."""
        self._grants[grant_id] = moment + GRANT_TOKENS_LIVE_US
        return f"grant:{grant_id}:{moment + GRANT_TOKENS_LIVE_US}"

    def account_revoked(self, kid: str, moment: int) -> str:
        self._valid_after[kid] = max(moment, self._valid_after.get(kid, 0))
        return f"account:{kid}:{moment}"

    def forget_expired(self) -> None:
        now = now_us()
        for jti in [j for j, expires in self._tokens.items() if expires < now]:
            del self._tokens[jti]
        for grant_id in [g for g, until in self._grants.items() if until < now]:
            del self._grants[grant_id]

    def _on_notice(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        subject, _, moment = rest.rpartition(":")
        if not moment.isdigit():
            return
        if kind == "jti":
            self._tokens[subject] = int(moment)
        elif kind == "grant":
            self._grants[subject] = int(moment)
        elif kind == "account":
            self._valid_after[subject] = max(int(moment), self._valid_after.get(subject, 0))

    def _schedule_reload(self) -> None:
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._safe_load())

    async def _safe_load(self) -> None:
        try:
            await self.load()
        except Exception:
            log.exception("could not reload revocations")
