"""Hooks that run last in a write transaction, before it commits (`Database.write` runs them).

Code that adds to a transaction without owning it registers a hook once per key and keeps its
state in the hook (the PostgreSQL change bus gathers a transaction's notices and sends them in
one statement). The registry is kept by connection object here, not in the connection's `info`:
that belongs to the DBAPI connection, outlives the transaction, and reading it after the
connection was lost reconnects synchronously.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

Hook = TypeVar("Hook", bound=Callable[[Any], Awaitable[None]])

_open: dict[int, dict[str, Any]] = {}
"""The hooks of each open write transaction, by its connection's id."""


def begin(conn: object) -> dict[str, Callable[[Any], Awaitable[None]]]:
    """A transaction on `conn` starts: its hooks, in registration order, to run before commit."""
    hooks: dict[str, Callable[[Any], Awaitable[None]]] = {}
    _open[id(conn)] = hooks
    return hooks


def end(conn: object) -> None:
    """The transaction on `conn` ended (committed or not): its hooks are gone."""
    del _open[id(conn)]


def before_commit(conn: object, key: str, hook: Hook) -> Hook:
    """Run `hook` last in the transaction of `conn` (a `Database.write`), before it commits;
    once per `key`: returns the hook registered first with that key in this transaction (state
    kept in it is gone with the transaction, committed or not). Raises KeyError on any other
    connection (a hook that would never run)."""
    hooks: dict[str, Hook] = _open[id(conn)]
    return hooks.setdefault(key, hook)
