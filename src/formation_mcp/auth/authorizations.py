"""Authorization requests: an MCP host asks to act as an account, and the account's key says
yes or no.

The host sends the person's browser to the authorize endpoint; a request is stored with a short
code, which the sign-in page shows. The person runs `fmcp authorize CODE`: the CLI reads the
request (`get`), shows the client, where the code will go, the resource and the scope, and
signs the decision with the key (`approve`, `deny`). The page, which reloads itself, then sends
the browser back to the host: with a single-use code (issued once, on the first reload after
approval, stored hashed), or with `access_denied`. Nobody deciding within
FMCP_OAUTH_REQUEST_TTL (5 min) is a denial too.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from formation.mcp.v1 import auth_pb2

from formation_mcp.auth import grant_store, oauth_store
from formation_mcp.auth.challenges import authorization_message
from formation_mcp.auth.keys import account_name, b64url, key_id
from formation_mcp.auth.manager import (
    SIGNATURE_BYTES,
    AuthManager,
    check_public_key,
    verify_signature,
)
from formation_mcp.auth.oauth_rules import (
    RuleError,
    display_user_code,
    narrower_scope,
    new_user_code,
    normalize_user_code,
    secret_hash,
)
from formation_mcp.auth.oauth_store import ClientRecord, RequestRecord
from formation_mcp.auth.ratelimit import RateLimiter
from formation_mcp.clock import now_us, to_timestamp
from formation_mcp.db.database import Database
from formation_mcp.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from formation_mcp.settings import Settings

log = logging.getLogger(__name__)

NAME_PREFIX = "authorizationRequests/"
REQUEST_ID_BYTES = 32
CODE_BYTES = 32
USER_CODE_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A checked authorization request (the HTTP layer checked the parameters)."""

    client: ClientRecord
    redirect_uri: str
    state: str
    code_challenge: str
    resource: str
    scope: str
    login_hint: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """The page keeps waiting (and reloading)."""

    request: RequestRecord
    client_name: str


@dataclass(frozen=True, slots=True)
class SendBack:
    """Send the browser to the client: `url` is its redirect URI with the code or the error."""

    url: str


@dataclass(frozen=True, slots=True)
class Finished:
    """Nothing more to do on this page: `message` says why."""

    message: str
    status: int = 200


PageOutcome = Waiting | SendBack | Finished


def request_nonce(request_id: str) -> str:
    """A value unique to the request for the signed decision, that does not reveal its id
    (the id is the sign-in page's address)."""
    return b64url(hashlib.sha256(request_id.encode()).digest())[:22]


def redirect_with(uri: str, **params: str) -> str:
    """The redirect URI with our parameters added to its query (RFC 6749 §4.1.2)."""
    query = urlencode({key: value for key, value in params.items() if value})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


class AuthorizationManager:
    def __init__(self, database: Database, settings: Settings, auth: AuthManager) -> None:
        self._db = database
        self._settings = settings
        self._auth = auth
        self._request_ttl_us = int(settings.oauth_request_ttl_seconds * 1_000_000)
        self._code_ttl_us = int(settings.oauth_code_ttl_seconds * 1_000_000)
        self._per_address = RateLimiter(settings.login_rate_per_minute * 4)

    @property
    def request_ttl_seconds(self) -> float:
        return self._settings.oauth_request_ttl_seconds

    async def start(self, new: NewRequest, address: str) -> RequestRecord:
        """Store the request under a fresh short code; the sign-in page shows it."""
        self._per_address.take(f"address:{address}", "authorization request")
        now = now_us()
        for _ in range(USER_CODE_ATTEMPTS):
            record = RequestRecord(
                id=secrets.token_urlsafe(REQUEST_ID_BYTES),
                user_code=new_user_code(),
                client_id=new.client.client_id,
                redirect_uri=new.redirect_uri,
                state=new.state,
                code_challenge=new.code_challenge,
                resource=new.resource,
                scope=new.scope,
                login_hint=new.login_hint,
                status=oauth_store.PENDING,
                key_id=None,
                granted_scope=None,
                code_expire_time=None,
                grant_id=None,
                create_time=now,
                expire_time=now + self._request_ttl_us,
            )
            async with self._db.write() as conn:
                if await oauth_store.insert_request(conn, record):
                    return record
        raise ResourceExhausted("no free sign-in code; try again", reason="USER_CODES_EXHAUSTED")

    async def page(self, request_id: str) -> PageOutcome:
        """What the sign-in page shows now, or where it sends the browser."""
        now = now_us()
        async with self._db.read() as conn:
            request = await oauth_store.get_request(conn, request_id)
            client = (
                None if request is None else await oauth_store.get_client(conn, request.client_id)
            )
        if request is None or client is None:
            return Finished("This sign-in request does not exist (any more).", status=404)
        back = request.redirect_uri
        if request.status == oauth_store.DENIED:
            return SendBack(
                redirect_with(
                    back,
                    error="access_denied",
                    error_description="the account's owner denied the request",
                    state=request.state,
                )
            )
        if request.status in (oauth_store.ISSUED, oauth_store.EXCHANGED):
            return Finished("This sign-in is complete: you can close this page.")
        if request.expire_time < now:
            return SendBack(
                redirect_with(
                    back,
                    error="access_denied",
                    error_description="the sign-in request expired before it was approved",
                    state=request.state,
                )
            )
        if request.status == oauth_store.APPROVED:
            code = secrets.token_urlsafe(CODE_BYTES)
            async with self._db.write() as conn:
                issued = await oauth_store.issue_code(
                    conn, request.id, secret_hash(code), now + self._code_ttl_us
                )
            if not issued:
                return Finished("This sign-in is complete: you can close this page.")
            return SendBack(redirect_with(back, code=code, state=request.state))
        return Waiting(request, client.metadata.client_name)

    async def get(self, name: str, address: str) -> auth_pb2.AuthorizationRequest:
        """GetAuthorizationRequest: by the code the page shows."""
        self._per_address.take(f"lookup:{address}", "sign-in code lookup")
        request, client = await self._find(name)
        return self._message(request, client)

    async def approve(
        self, name: str, public_key: bytes, signature: bytes, scope: str, address: str
    ) -> auth_pb2.AuthorizationRequest:
        request, _ = await self._find(name)
        try:
            granted = narrower_scope(request.scope, scope or request.scope)
        except RuleError as error:
            raise InvalidArgument.for_field("scope", str(error)) from None
        return await self._decide(
            request, public_key, signature, oauth_store.APPROVED, granted, address
        )

    async def deny(
        self, name: str, public_key: bytes, signature: bytes, address: str
    ) -> auth_pb2.AuthorizationRequest:
        request, _ = await self._find(name)
        return await self._decide(request, public_key, signature, oauth_store.DENIED, None, address)

    async def _find(self, name: str) -> tuple[RequestRecord, ClientRecord]:
        code = name.removeprefix(NAME_PREFIX)
        if code == name:
            raise InvalidArgument.for_field(
                "name", f"{name[:40]!r} is not authorizationRequests/{{code}}"
            )
        try:
            code = normalize_user_code(code)
        except RuleError as error:
            raise InvalidArgument.for_field("name", str(error)) from None
        async with self._db.read() as conn:
            request = await oauth_store.get_request_by_user_code(conn, code)
            client = (
                None if request is None else await oauth_store.get_client(conn, request.client_id)
            )
        if request is None or client is None:
            raise NotFound(
                f"no sign-in request has the code {display_user_code(code)}",
                reason="AUTHORIZATION_REQUEST_NOT_FOUND",
                metadata={"name": NAME_PREFIX + code},
            )
        return request, client

    def decision_message(self, request: RequestRecord, kid: str, decision: str) -> bytes:
        return authorization_message(
            domain=self._settings.auth_domain,
            kid=kid,
            request=NAME_PREFIX + request.user_code,
            nonce=request_nonce(request.id),
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            resource=request.resource,
            decision=decision,
            expire_at=request.expire_time,
        )

    async def _decide(
        self,
        request: RequestRecord,
        public_key: bytes,
        signature: bytes,
        status: str,
        granted: str | None,
        address: str,
    ) -> auth_pb2.AuthorizationRequest:
        check_public_key(public_key)
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidArgument.for_field(
                "signature", f"must be the {SIGNATURE_BYTES}-byte Ed25519 signature of the decision"
            )
        kid = key_id(public_key)
        self._auth.limit(kid, address, "authorization decision")
        decision = f"approve {granted}" if status == oauth_store.APPROVED else "deny"
        verify_signature(
            public_key,
            self.decision_message(request, kid, decision),
            signature,
            "the signature does not verify: sign the decision text exactly (see "
            "ApproveAuthorizationRequestRequest), with this key",
        )
        if request.login_hint and request.login_hint != kid:
            raise PermissionDenied(
                f"this sign-in request is for {account_name(request.login_hint)}",
                reason="AUTHORIZATION_FOR_ANOTHER_ACCOUNT",
                metadata={"account": account_name(request.login_hint)},
            )
        now = now_us()
        async with self._db.write() as conn:
            account = await self._auth.account_of_key(conn, public_key, now)
            decided = await oauth_store.decide(
                conn, request.id, status=status, key_id=kid, granted_scope=granted, now=now
            )
            if decided:
                event = grant_store.APPROVED if granted else grant_store.DENIED
                await grant_store.audit(
                    conn,
                    [
                        grant_store.audit_row(
                            event,
                            now=now,
                            account=account_name(account.key_id),
                            client_id=request.client_id,
                            scope=granted or request.scope,
                            address=address,
                            detail=f"redirect {request.redirect_uri[:200]}",
                        )
                    ],
                )
            current = await oauth_store.get_request(conn, request.id)
            client = await oauth_store.get_client(conn, request.client_id)
        assert current is not None and client is not None
        if not decided and not (
            current.key_id == kid and current.status == status and current.granted_scope == granted
        ):
            if current.status == oauth_store.PENDING:
                raise FailedPrecondition(
                    "the sign-in request expired; start the sign-in again from the application",
                    reason="AUTHORIZATION_REQUEST_EXPIRED",
                )
            raise FailedPrecondition(
                "the sign-in request was already decided",
                reason="AUTHORIZATION_REQUEST_DECIDED",
            )
        log.info(
            "authorization %s",
            "approved" if granted else "denied",
            extra={"client": request.client_id, "account": account_name(kid), "scope": granted},
        )
        return self._message(current, client)

    def _message(
        self, request: RequestRecord, client: ClientRecord
    ) -> auth_pb2.AuthorizationRequest:
        now = now_us()
        state = {
            oauth_store.PENDING: auth_pb2.AuthorizationRequest.PENDING,
            oauth_store.APPROVED: auth_pb2.AuthorizationRequest.APPROVED,
            oauth_store.DENIED: auth_pb2.AuthorizationRequest.DENIED,
            oauth_store.ISSUED: auth_pb2.AuthorizationRequest.COMPLETED,
            oauth_store.EXCHANGED: auth_pb2.AuthorizationRequest.COMPLETED,
        }[request.status]
        if (
            request.status in (oauth_store.PENDING, oauth_store.APPROVED)
            and request.expire_time < now
        ):
            state = auth_pb2.AuthorizationRequest.EXPIRED
        return auth_pb2.AuthorizationRequest(
            name=NAME_PREFIX + request.user_code,
            user_code=display_user_code(request.user_code),
            client_id=request.client_id,
            client_name=client.metadata.client_name,
            redirect_uri=request.redirect_uri,
            resource=request.resource,
            scope=request.scope,
            state=state,
            account=account_name(request.key_id) if request.key_id else "",
            granted_scope=request.granted_scope or "",
            requested_account=account_name(request.login_hint) if request.login_hint else "",
            create_time=to_timestamp(request.create_time),
            expire_time=to_timestamp(request.expire_time),
            nonce=request_nonce(request.id),
            domain=self._settings.auth_domain,
        )
