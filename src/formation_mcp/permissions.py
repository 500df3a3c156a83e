"""Roles, permissions, and the permission each RPC needs: checked in one place (the auth
interceptor). Tools declare their own permission (`tools.<name>`), checked by the Tools service.

A token also carries the scope of the grant it came from (`full`, or `read-only` for an MCP
host the user allowed only to read): the scope is a ceiling on what the roles grant, applied
where a caller's permissions are computed (`permissions_of`), so every check below (the
interceptor's per-RPC permission, `may_call_tool`) sees the narrowed set. A policy framework
can take the ceiling over by changing `SCOPE_CEILINGS` or `permissions_of` alone.
"""

from __future__ import annotations

from collections.abc import Iterable

ADMIN, USER, VIEWER, APPROVER = "admin", "user", "viewer", "approver"
ROLES = (ADMIN, USER, VIEWER, APPROVER)

OPERATIONS_READ = "operations.read"
OPERATIONS_WRITE = "operations.write"
OPERATIONS_APPROVE = "operations.approve"
TOOLS_READ = "tools.read"
TOOLS_CALL = "tools.call"
ACCOUNT_SELF = "account.self"
GRANTS_REVOKE = "grants.revoke"
ACCOUNTS_ADMIN = "accounts.admin"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: frozenset({"*"}),
    USER: frozenset(
        {OPERATIONS_READ, OPERATIONS_WRITE, TOOLS_READ, TOOLS_CALL, ACCOUNT_SELF, GRANTS_REVOKE}
    ),
    VIEWER: frozenset({OPERATIONS_READ, TOOLS_READ, ACCOUNT_SELF, GRANTS_REVOKE}),
    # Decides on other accounts' calls that wait for an approval (usually with `user`).
    APPROVER: frozenset(
        {OPERATIONS_READ, OPERATIONS_APPROVE, TOOLS_READ, ACCOUNT_SELF, GRANTS_REVOKE}
    ),
}

FULL_SCOPE, READ_ONLY_SCOPE = "full", "read-only"
SCOPES = (FULL_SCOPE, READ_ONLY_SCOPE)
"""Grant scopes, broadest first: `full` is everything the account's roles allow; `read-only`
is reading (tools that declare themselves read-only, operations, the account) and nothing
that changes state."""
SCOPE_CEILINGS: dict[str, frozenset[str] | None] = {
    FULL_SCOPE: None,  # no ceiling
    READ_ONLY_SCOPE: frozenset({OPERATIONS_READ, TOOLS_READ, ACCOUNT_SELF}),
}

PUBLIC = None
"""Methods anyone may call without a token."""

_AUTH = "/formation.mcp.v1.AuthService/"
_OPS = "/formation.mcp.v1.OperationsService/"
_TOOLS = "/formation.mcp.v1.ToolsService/"
_ACCOUNTS = "/formation.mcp.v1.AccountsService/"
_POLICIES = "/formation.mcp.v1.PoliciesService/"
_EVENTS = "/formation.mcp.v1.EventsService/"

METHOD_PERMISSIONS: dict[str, str | None] = {
    _AUTH + "CreateChallenge": PUBLIC,
    _AUTH + "Login": PUBLIC,
    _AUTH + "RefreshToken": PUBLIC,
    _AUTH + "GetJwks": PUBLIC,
    _AUTH + "RevokeToken": ACCOUNT_SELF,
    _AUTH + "GetCurrentAccount": ACCOUNT_SELF,
    # Approving or denying is proven by the key's signature, not by a token.
    _AUTH + "GetAuthorizationRequest": PUBLIC,
    _AUTH + "ApproveAuthorizationRequest": PUBLIC,
    _AUTH + "DenyAuthorizationRequest": PUBLIC,
    _AUTH + "ListGrants": ACCOUNT_SELF,
    _AUTH + "RevokeGrant": GRANTS_REVOKE,
    _AUTH + "CreateConsoleLink": ACCOUNT_SELF,
    _OPS + "GetOperation": OPERATIONS_READ,
    _OPS + "ListOperations": OPERATIONS_READ,
    _OPS + "WaitOperation": OPERATIONS_READ,
    _OPS + "WatchOperation": OPERATIONS_READ,
    _OPS + "CancelOperation": OPERATIONS_WRITE,
    _OPS + "DeleteOperation": OPERATIONS_WRITE,
    _OPS + "ApproveOperation": OPERATIONS_APPROVE,
    _OPS + "DenyOperation": OPERATIONS_APPROVE,
    _EVENTS + "ListEvents": OPERATIONS_READ,
    _EVENTS + "WatchEvents": OPERATIONS_READ,
    _TOOLS + "ListTools": TOOLS_READ,
    _TOOLS + "GetTool": TOOLS_READ,
    # Which tools a caller may call depends on the tool: checked by `may_call_tool`.
    _TOOLS + "CallTool": TOOLS_READ,
    _ACCOUNTS + "ListAccounts": ACCOUNTS_ADMIN,
    _ACCOUNTS + "GetAccount": ACCOUNTS_ADMIN,
    _ACCOUNTS + "CreateAccount": ACCOUNTS_ADMIN,
    _ACCOUNTS + "UpdateAccount": ACCOUNTS_ADMIN,
    _POLICIES + "GetPolicy": ACCOUNTS_ADMIN,
    _POLICIES + "UpdatePolicy": ACCOUNTS_ADMIN,
    # Any caller, about itself (what applies to it and its usage).
    _POLICIES + "GetEffectivePolicy": ACCOUNT_SELF,
}

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def is_public(method: str) -> bool:
    return method.startswith(PUBLIC_PREFIXES) or (
        method in METHOD_PERMISSIONS and METHOD_PERMISSIONS[method] is PUBLIC
    )


def permissions_of(roles: Iterable[str], scope: str = FULL_SCOPE) -> frozenset[str]:
    """What the roles grant, narrowed to the scope's ceiling (an unknown scope grants
    nothing). An admin's `*` under a ceiling becomes the ceiling itself."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    if scope not in SCOPE_CEILINGS:
        return frozenset()
    ceiling = SCOPE_CEILINGS[scope]
    if ceiling is None:
        return frozenset(granted)
    if "*" in granted:
        return ceiling
    return frozenset(granted) & ceiling


def allows(permissions: frozenset[str], permission: str) -> bool:
    return "*" in permissions or permission in permissions


def may_call_tool(permissions: frozenset[str], *, read_only: bool, admin_only: bool) -> bool:
    """Admins call every tool; users every tool but admin-only ones; viewers read-only tools."""
    if "*" in permissions:
        return True
    if admin_only:
        return False
    return TOOLS_CALL in permissions or (read_only and TOOLS_READ in permissions)
