"""OAuth clients: registered dynamically (RFC 7591, for hosts that still register), or named by
the URL of their Client ID Metadata Document (what the current MCP revision expects), which is
fetched on first use and kept in the database until its cache time runs out (any replica then
serves the client without fetching again).

Clients are public by default (PKCE protects the code, no secret); a client that registers
with `client_secret_post` or `client_secret_basic` gets a secret, stored hashed, and must
present it at the token and revocation endpoints.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from formation_mcp.auth import oauth_store
from formation_mcp.auth.client_metadata import (
    AUTH_NONE,
    SECRET_METHODS,
    ClientMetadataError,
    parse_client_metadata,
)
from formation_mcp.auth.metadata_fetch import (
    ClientMetadataFetcher,
    FetchError,
    is_document_client_id,
)
from formation_mcp.auth.oauth_errors import OAuthError, invalid_client
from formation_mcp.auth.oauth_rules import secret_hash
from formation_mcp.auth.oauth_store import ClientRecord
from formation_mcp.auth.ratelimit import RateLimiter
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import ResourceExhausted

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "fmcp-client-"


class ClientRegistry:
    def __init__(
        self, database: Database, fetcher: ClientMetadataFetcher, registrations_per_minute: int
    ) -> None:
        self._db = database
        self._fetcher = fetcher
        self._per_address = RateLimiter(registrations_per_minute)
        self._fetches = RateLimiter(registrations_per_minute)

    async def register(self, body: object, address: str) -> tuple[ClientRecord, str | None]:
        """RFC 7591: the new client and its secret (None for a public client)."""
        try:
            self._per_address.take(f"address:{address}", "client registration")
        except ResourceExhausted as exhausted:
            raise OAuthError("temporarily_unavailable", exhausted.message, 429) from None
        try:
            metadata = parse_client_metadata(body)
        except ClientMetadataError as error:
            raise OAuthError(error.code, error.description) from None
        secret = None
        if metadata.token_endpoint_auth_method in SECRET_METHODS:
            secret = secrets.token_urlsafe(32)
        now = now_us()
        record = ClientRecord(
            client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(16),
            kind=oauth_store.REGISTERED,
            metadata=metadata,
            secret_hash=secret_hash(secret) if secret else None,
            refresh_time=0,
        )
        async with self._db.write() as conn:
            await oauth_store.insert_client(conn, record, now)
        log.info(
            "oauth client registered",
            extra={"client": record.client_id, "clientName": metadata.client_name},
        )
        return record, secret

    async def resolve(self, client_id: str, address: str = "") -> ClientRecord:
        """The client a client_id names; OAuthError(invalid_client) when there is none. A
        metadata document not cached yet is fetched (at most so often per client `address`:
        nobody makes the server fetch URLs at will)."""
        if not client_id:
            raise invalid_client("client_id is required")
        async with self._db.read() as conn:
            record = await oauth_store.get_client(conn, client_id)
        if record is not None and (
            record.kind == oauth_store.REGISTERED or record.refresh_time > now_us()
        ):
            return record
        if not is_document_client_id(client_id):
            raise invalid_client("unknown client_id; register the client first")
        try:
            self._fetches.take(f"address:{address}", "client metadata fetch")
        except ResourceExhausted as exhausted:
            raise OAuthError("temporarily_unavailable", exhausted.message, 429) from None
        return await self._fetch_document(client_id)

    async def _fetch_document(self, url: str) -> ClientRecord:
        try:
            fetched = await self._fetcher.fetch(url)
            metadata = parse_client_metadata(fetched.body, document_url=url)
        except FetchError as error:
            raise invalid_client(
                f"the client metadata document could not be used: {error}"
            ) from None
        except ClientMetadataError as error:
            raise invalid_client(f"the client metadata document is not valid: {error}") from None
        now = now_us()
        record = ClientRecord(
            client_id=url,
            kind=oauth_store.DOCUMENT,
            metadata=metadata,
            secret_hash=None,
            refresh_time=now + int(fetched.max_age_seconds * 1_000_000),
        )
        async with self._db.write() as conn:
            await oauth_store.save_document_client(conn, record, now)
        return record

    @staticmethod
    def authenticate(client: ClientRecord, secret: str | None, method: str) -> None:
        """A token or revocation request's client authentication (RFC 6749 §2.3): public
        clients send none; a client with a secret sends it the way it registered."""
        expected = client.metadata.token_endpoint_auth_method
        if expected == AUTH_NONE:
            if secret:
                raise invalid_client("this client is public: it has no secret to send")
            return
        if method != expected or not secret or client.secret_hash is None:
            raise invalid_client(f"this client authenticates with {expected}")
        if not hmac.compare_digest(secret_hash(secret), client.secret_hash):
            raise invalid_client("the client secret is wrong")
