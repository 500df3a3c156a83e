"""The auth interceptor: every RPC but the public ones needs a valid bearer access token, and
the caller's roles must grant the permission the method declares (`permissions.py`).

Tokens are for the API's audience. The one exception is this process's own MCP endpoint,
which calls with the token an MCP host presented (audience: the MCP endpoint's URL, which it
has verified): it proves it is that endpoint with the process's bridge secret and names the
audience (`formation_mcp.proxies.BRIDGE_*`), and the token is verified for that audience."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator
from http.cookies import CookieError, SimpleCookie
from typing import Any

from formation_mcp.api.wrapping import (
    Context,
    StreamBehavior,
    UnaryBehavior,
    WrappingInterceptor,
    metadata_value,
    responses,
)
from formation_mcp.auth.console_sessions import (
    CSRF_HEADER,
    SESSION_COOKIE,
    ConsoleSessions,
)
from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.errors import PermissionDenied, Unauthenticated
from formation_mcp.identity import Caller, reset_caller, set_caller
from formation_mcp.permissions import METHOD_PERMISSIONS, is_public
from formation_mcp.proxies import BRIDGE_AUDIENCE_HEADER, BRIDGE_SECRET_HEADER

AUTHORIZATION = "authorization"


def _console_session(context: Context) -> str:
    """The web console's session cookie, when the call came from the console (through
    Envoy's /console/api/ prefix, which passes the browser's cookie header on)."""
    header = metadata_value(context, "cookie")
    if not header:
        return ""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:
        return ""
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else ""


def _permitted(method: str, caller: Caller) -> Caller:
    permission = METHOD_PERMISSIONS.get(method)
    if permission is None or not caller.can(permission):
        needed = permission or "a permission this method does not declare"
        raise PermissionDenied(
            f"the caller's roles ({', '.join(sorted(caller.roles)) or 'none'}) do not grant "
            f"{needed}",
            reason="MISSING_PERMISSION",
            metadata={"permission": permission or "", "method": method},
        )
    return caller


class AuthInterceptor(WrappingInterceptor):
    def __init__(
        self,
        verifier: TokenVerifier,
        bridge_secret: str = "",
        console: ConsoleSessions | None = None,
    ) -> None:
        super().__init__()
        self._verifier = verifier
        self._console = console
        self._bridge_secret = bridge_secret.encode()

    def _audience(self, context: Context) -> str | None:
        """The MCP endpoint's audience when the call comes from our own MCP endpoint (it sent
        the bridge secret, exactly once); None (the API's) otherwise."""
        if not self._bridge_secret:
            return None
        sent = [
            value if isinstance(value, str) else value.decode()
            for key, value in context.invocation_metadata() or ()
            if key == BRIDGE_SECRET_HEADER
        ]
        if len(sent) != 1 or not hmac.compare_digest(sent[0].encode(), self._bridge_secret):
            return None
        return metadata_value(context, BRIDGE_AUDIENCE_HEADER) or None

    async def _authenticate(self, method: str, context: Context) -> Caller | None:
        if is_public(method):
            return None
        header = metadata_value(context, AUTHORIZATION)
        session = _console_session(context) if self._console is not None else ""
        if not header and session and self._console is not None:
            caller = await self._console.authenticate(
                session, metadata_value(context, CSRF_HEADER) or ""
            )
            return _permitted(method, caller)
        if not header:
            raise Unauthenticated(
                "missing `authorization: Bearer <access token>`; log in with "
                "AuthService.CreateChallenge and Login",
                reason="TOKEN_MISSING",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "the authorization header must be `Bearer <access token>`", reason="TOKEN_INVALID"
            )
        caller = await self._verifier.verify(token.strip(), self._audience(context))
        return _permitted(method, caller)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def wrapped(request: Any, context: Context) -> Any:
            token = set_caller(await self._authenticate(method, context))
            try:
                return await behavior(request, context)
            finally:
                reset_caller(token)

        return wrapped

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            token = set_caller(await self._authenticate(method, context))
            try:
                async for response in responses(behavior(request, context)):
                    yield response
            finally:
                with contextlib.suppress(ValueError):  # closed from another context
                    reset_caller(token)

        return wrapped
