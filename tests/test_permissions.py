"""Roles grant permissions; a grant's scope is a ceiling on them."""

from __future__ import annotations

from formation_mcp.identity import Caller
from formation_mcp.permissions import (
    ACCOUNT_SELF,
    OPERATIONS_READ,
    TOOLS_READ,
    may_call_tool,
    permissions_of,
)

READING = frozenset({OPERATIONS_READ, TOOLS_READ, ACCOUNT_SELF})


def test_full_scope_is_what_the_roles_grant() -> None:
    assert permissions_of(["user"]) == permissions_of(["user"], "full")
    assert permissions_of(["admin"], "full") == frozenset({"*"})


def test_read_only_scope_keeps_only_reading_even_for_admins() -> None:
    assert permissions_of(["user"], "read-only") == READING
    assert permissions_of(["admin"], "read-only") == READING
    assert permissions_of(["viewer"], "read-only") == READING


def test_an_unknown_scope_grants_nothing() -> None:
    assert permissions_of(["admin"], "everything") == frozenset()


def test_a_read_only_caller_calls_read_only_tools_only() -> None:
    caller = Caller("accounts/a", frozenset({"admin"}), scope="read-only")
    assert may_call_tool(caller.permissions, read_only=True, admin_only=False)
    assert not may_call_tool(caller.permissions, read_only=False, admin_only=False)
    assert not may_call_tool(caller.permissions, read_only=True, admin_only=True)
    assert caller.is_admin  # still sees every owner's resources when reading
