"""Who is calling: set once per RPC by the auth interceptor, read by services."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from formation_mcp.errors import Unauthenticated
from formation_mcp.permissions import ADMIN, FULL_SCOPE, allows, permissions_of


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated account. `account` is its resource name, `accounts/{key_id}`.
    `scope` is the token's grant scope (`permissions.SCOPES`): `permissions` are what the
    roles allow within it. `grant_id` names the grant (refresh-token family) the token came
    from, when it has one."""

    account: str
    roles: frozenset[str]
    token_id: str = ""
    token_issue_time: int = 0
    token_expire_time: int = 0
    scope: str = FULL_SCOPE
    grant_id: str = ""
    permissions: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", permissions_of(self.roles, self.scope))

    @property
    def key_id(self) -> str:
        return self.account.removeprefix("accounts/")

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def can(self, permission: str) -> bool:
        return allows(self.permissions, permission)

    def can_see(self, owner: str) -> bool:
        """Admins see every owner's resources; everyone else only their own."""
        return self.is_admin or owner == self.account


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller:
    caller = _current.get()
    if caller is None:
        raise Unauthenticated(
            "this call needs `authorization: Bearer <access token>`; log in first",
            reason="TOKEN_MISSING",
        )
    return caller


def set_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _current.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _current.reset(token)
