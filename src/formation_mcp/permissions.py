"""Roles, permissions, and the permission each RPC needs: checked in one place (the auth
interceptor). Tools declare their own permission (`tools.<name>`), checked by the Tools service."""

from __future__ import annotations

from collections.abc import Iterable

ADMIN, USER, VIEWER = "admin", "user", "viewer"
ROLES = (ADMIN, USER, VIEWER)

OPERATIONS_READ = "operations.read"
OPERATIONS_WRITE = "operations.write"
TOOLS_READ = "tools.read"
TOOLS_CALL = "tools.call"
ACCOUNT_SELF = "account.self"
ACCOUNTS_ADMIN = "accounts.admin"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: frozenset({"*"}),
    USER: frozenset({OPERATIONS_READ, OPERATIONS_WRITE, TOOLS_READ, TOOLS_CALL, ACCOUNT_SELF}),
    VIEWER: frozenset({OPERATIONS_READ, TOOLS_READ, ACCOUNT_SELF}),
}

PUBLIC = None
"""Methods anyone may call without a token."""

_AUTH = "/formation.mcp.v1.AuthService/"
_OPS = "/formation.mcp.v1.OperationsService/"
_TOOLS = "/formation.mcp.v1.ToolsService/"
_ACCOUNTS = "/formation.mcp.v1.AccountsService/"

METHOD_PERMISSIONS: dict[str, str | None] = {
    _AUTH + "CreateChallenge": PUBLIC,
    _AUTH + "Login": PUBLIC,
    _AUTH + "RefreshToken": PUBLIC,
    _AUTH + "GetJwks": PUBLIC,
    _AUTH + "RevokeToken": ACCOUNT_SELF,
    _AUTH + "GetCurrentAccount": ACCOUNT_SELF,
    _OPS + "GetOperation": OPERATIONS_READ,
    _OPS + "ListOperations": OPERATIONS_READ,
    _OPS + "WaitOperation": OPERATIONS_READ,
    _OPS + "WatchOperation": OPERATIONS_READ,
    _OPS + "CancelOperation": OPERATIONS_WRITE,
    _OPS + "DeleteOperation": OPERATIONS_WRITE,
    _TOOLS + "ListTools": TOOLS_READ,
    _TOOLS + "GetTool": TOOLS_READ,
    # Which tools a caller may call depends on the tool: checked by `may_call_tool`.
    _TOOLS + "CallTool": TOOLS_READ,
    _ACCOUNTS + "ListAccounts": ACCOUNTS_ADMIN,
    _ACCOUNTS + "GetAccount": ACCOUNTS_ADMIN,
    _ACCOUNTS + "CreateAccount": ACCOUNTS_ADMIN,
    _ACCOUNTS + "UpdateAccount": ACCOUNTS_ADMIN,
}

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def is_public(method: str) -> bool:
    return method.startswith(PUBLIC_PREFIXES) or (
        method in METHOD_PERMISSIONS and METHOD_PERMISSIONS[method] is PUBLIC
    )


def permissions_of(roles: Iterable[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


def allows(permissions: frozenset[str], permission: str) -> bool:
    return "*" in permissions or permission in permissions


def may_call_tool(permissions: frozenset[str], *, read_only: bool, admin_only: bool) -> bool:
    """Admins call every tool; users every tool but admin-only ones; viewers read-only tools."""
    if "*" in permissions:
        return True
    if admin_only:
        return False
    return TOOLS_CALL in permissions or (read_only and TOOLS_READ in permissions)
