"""Every CallTool is recorded: who, which tool, a digest of the arguments (not the arguments:
they may hold secrets), the operation, the outcome and when."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import audit_log

ACCEPTED = "ACCEPTED"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
DENIED = "DENIED"
INVALID = "INVALID"
REJECTED = "REJECTED"
"""The call named something the caller cannot act on (not found, its node offline)."""
VALIDATED = "VALIDATED"
DUPLICATE = "DUPLICATE"
AWAITING_APPROVAL = "AWAITING_APPROVAL"
"""Admitted, waiting for a human approval (decisions: APPROVED, DENIED, EXPIRED)."""


def arguments_digest(arguments: dict[str, Any]) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_INSERT = audit_log.insert()


def entry(
    *,
    account: str,
    tool: str,
    arguments_sha256: str,
    outcome: str,
    operation_id: str | None = None,
    request_id: str | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """One audit row; `arguments_sha256` is `arguments_digest` of the call's arguments."""
    return {
        "time": now_us(),
        "account": account,
        "tool": tool,
        "arguments_sha256": arguments_sha256,
        "operation_id": operation_id,
        "request_id": request_id or None,
        "outcome": outcome,
        "detail": detail[:1000],
    }


class AuditLog:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def write(self, row: dict[str, Any]) -> None:
        """One row made by `entry`, in a transaction of its own."""
        async with self._db.write() as conn:
            await self.insert_many(conn, [row])

    @staticmethod
    async def insert_many(conn: AsyncConnection, entries: Sequence[dict[str, Any]]) -> None:
        """Rows made by `entry`, in the transaction `conn` belongs to."""
        await conn.execute(_INSERT, list(entries))
