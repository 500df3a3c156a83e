"""The auth interceptor: every RPC but the public ones needs a valid bearer access token, and
the caller's roles must grant the permission the method declares (`permissions.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from formation_mcp.api.wrapping import (
    Context,
    StreamBehavior,
    UnaryBehavior,
    WrappingInterceptor,
    metadata_value,
    responses,
)
from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.errors import PermissionDenied, Unauthenticated
from formation_mcp.identity import Caller, reset_caller, set_caller
from formation_mcp.permissions import METHOD_PERMISSIONS, is_public

AUTHORIZATION = "authorization"


class AuthInterceptor(WrappingInterceptor):
    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self._verifier = verifier

    async def _authenticate(self, method: str, context: Context) -> Caller | None:
        if is_public(method):
            return None
        header = metadata_value(context, AUTHORIZATION)
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
        caller = await self._verifier.verify(token.strip())
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
