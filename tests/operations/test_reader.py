"""The worker's operation reads: those asked for together are answered together, each with
its own operation's state (or None for one that does not exist)."""

from __future__ import annotations

import asyncio

from formation_mcp.app import Application
from formation_mcp.operations.ids import new_operation_id
from formation_mcp.operations.lifecycle import State
from formation_mcp.operations.reader import OperationReader


async def test_reads_asked_for_together_each_get_their_own_operation(app: Application) -> None:
    created = [
        await app.operations.create("accounts/reader-test", f"test.tool{i}") for i in range(5)
    ]
    await app.operations.finish(created[1].id)
    missing = new_operation_id()
    reader = OperationReader(app.database)

    states = await asyncio.gather(
        *(reader.work_state(record.id) for record in created),
        reader.work_state(missing),
        reader.work_state(created[1].id),
    )

    assert [state.state if state else None for state in states] == [
        State.PENDING,
        State.SUCCEEDED,
        State.PENDING,
        State.PENDING,
        State.PENDING,
        None,
        State.SUCCEEDED,
    ]
