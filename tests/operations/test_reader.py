"""The worker's operation reads: those asked for together are answered together, each with
its own operation (or None for one that does not exist)."""

from __future__ import annotations

import asyncio

from formation_mcp.app import Application
from formation_mcp.operations.ids import new_operation_id
from formation_mcp.operations.reader import OperationReader


async def test_reads_asked_for_together_each_get_their_own_operation(app: Application) -> None:
    created = [
        await app.operations.create("accounts/reader-test", f"test.tool{i}") for i in range(5)
    ]
    missing = new_operation_id()
    reader = OperationReader(app.database)

    records = await asyncio.gather(
        *(reader.record(record.id) for record in created),
        reader.record(missing),
        reader.record(created[0].id),
    )

    assert [r.tool if r else None for r in records] == [
        *(f"test.tool{i}" for i in range(5)),
        None,
        "test.tool0",
    ]
