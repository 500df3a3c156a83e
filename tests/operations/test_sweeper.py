"""Expiry: finished operations older than FMCP_OPERATION_TTL go, in bounded batches."""

from __future__ import annotations

from tests.support.operations import new_operation
from tests.support.servers import StartApp

from formation_mcp.identity import Caller


async def test_sweep_removes_expired_finished_operations_in_batches(
    start_app: StartApp, account: str
) -> None:
    app = await start_app(
        operation_ttl_seconds=0.0, sweep_batch_size=2, sweep_interval_seconds=3600.0
    )
    caller = Caller(account, frozenset({"user"}))
    finished = [await new_operation(app, account) for _ in range(5)]
    for name in finished:
        await app.operations.cancel(caller, name)
    running = await new_operation(app, account)
    removed = await app.sweeper.sweep_once()
    assert removed >= 5
    remaining = {op.name for op in (await app.operations.list(caller, "", 0, ""))[0]}
    assert remaining == {running}


async def test_sweep_keeps_finished_operations_younger_than_the_ttl(
    start_app: StartApp, account: str
) -> None:
    app = await start_app(operation_ttl_seconds=3600.0, sweep_interval_seconds=3600.0)
    caller = Caller(account, frozenset({"user"}))
    name = await new_operation(app, account)
    await app.operations.cancel(caller, name)
    await app.sweeper.sweep_once()
    assert (await app.operations.get(caller, name)).done
