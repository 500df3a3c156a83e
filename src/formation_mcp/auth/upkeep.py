"""What the Auth side of a server keeps doing while it runs: publish the key it signs with
(every replica's keys are in the database, so any replica verifies any token), know the keys
that may have signed a live token, and drop expired challenges, refresh tokens, revocations,
authorization requests, grants and console sessions."""

from __future__ import annotations

import asyncio
import logging

from formation_mcp.auth import console_sessions, grant_store, oauth_store, store
from formation_mcp.auth.keys import SigningKey
from formation_mcp.auth.revocations import GRANT_TOKENS_LIVE_US, Revocations
from formation_mcp.auth.tokens import KeyRing
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database

log = logging.getLogger(__name__)

UPKEEP_SECONDS = 60.0
KEY_USE_GRACE_SECONDS = 300.0
"""A signing key stays valid this long past its access-token lifetime after its last use."""
REQUEST_RETENTION_US = 3600 * 1_000_000
"""Authorization requests are kept this long after they expired: a code presented again in
that time is still recognised as reused (and the grant it made revoked)."""


class AuthUpkeep:
    """`keys` is the ring tokens are verified with; `start()` once, then `run()` for as long
    as the server runs."""

    def __init__(
        self,
        database: Database,
        signing_key: SigningKey,
        revocations: Revocations,
        *,
        access_token_ttl_seconds: float,
        batch_size: int,
    ) -> None:
        self._db = database
        self._signing_key = signing_key
        self._revocations = revocations
        self._key_window_us = int((access_token_ttl_seconds + KEY_USE_GRACE_SECONDS) * 1e6)
        self._batch_size = batch_size
        self.keys = KeyRing(self._valid_public_keys)

    async def start(self) -> None:
        await self._publish()
        await self.keys.refresh()
        await self._revocations.load()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(UPKEEP_SECONDS)
            try:
                await self._publish()
                await self.keys.refresh()
                now = now_us()
                async with self._db.write() as conn:
                    await store.delete_expired(conn, now, self._batch_size)
                    await oauth_store.delete_expired_requests(
                        conn, now - REQUEST_RETENTION_US, self._batch_size
                    )
                    await grant_store.delete_expired_grants(
                        conn, now - GRANT_TOKENS_LIVE_US, self._batch_size
                    )
                    await console_sessions.delete_expired(conn, now, self._batch_size)
                self._revocations.forget_expired()
            except Exception:
                log.exception("auth upkeep failed")

    async def _publish(self) -> None:
        async with self._db.write() as conn:
            await store.register_signing_key(
                conn, self._signing_key.kid, self._signing_key.public_key, now_us()
            )

    async def _valid_public_keys(self) -> dict[str, bytes]:
        async with self._db.read() as conn:
            return await store.signing_public_keys(conn, now_us() - self._key_window_us)
