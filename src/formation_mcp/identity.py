"""Who is calling: set once per RPC by the identity interceptor, read by services."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from formation_mcp.errors import Unauthenticated

ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    account: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def can_see(self, owner: str) -> bool:
        """Admins see every owner's resources; everyone else only their own."""
        return self.is_admin or owner == self.account


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller:
    caller = _current.get()
    if caller is None:
        raise Unauthenticated("this call needs an identity", reason="TOKEN_MISSING")
    return caller


def set_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _current.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _current.reset(token)
