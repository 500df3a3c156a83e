"""WatchOperation over REST through Envoy: newline-delimited JSON, one line per change."""

from __future__ import annotations

import httpx
import pytest
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import END, sequence, state, watch
from tests.support.operations import Worker, new_operation

from formation_mcp.app import Application

QUIET_SECONDS = 2.0


async def test_watch_streams_every_change_as_its_own_json_line_in_order(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    """Each event is driven only after the previous line arrived: lines are written as the
    changes happen, not buffered until the end."""
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    async with watch(client, name, session.access_token) as lines:
        snapshot = await lines.next()
        assert (snapshot["name"], snapshot["done"], state(snapshot)) == (name, False, "PENDING")
        await worker.start()
        started = await lines.next()
        assert (state(started), sequence(started)) == ("RUNNING", sequence(snapshot) + 1)
        previous = started
        for percent in (20, 50, 80):
            await worker.progress(percent, "sleeping", f"at {percent}%")
            change = await lines.next()
            assert sequence(change) == sequence(previous) + 1
            assert (change["metadata"]["progress_percent"], change["done"]) == (percent, False)
            assert change["metadata"]["status_message"] == f"at {percent}%"
            previous = change
        await worker.succeed({"steps": 3})
        last = await lines.next()
        assert (last["done"], state(last), sequence(last)) == (
            True,
            "SUCCEEDED",
            sequence(previous) + 1,
        )
        assert last["response"]["output"] == {"steps": 3}
        assert await lines.next() is END


async def test_watch_after_sequence_replays_only_later_changes(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    await worker.start()
    await worker.progress(40)
    await worker.progress(70)
    await worker.succeed({"steps": 2})
    async with watch(client, name, session.access_token) as lines:
        current = await lines.next()
        assert current["done"] is True
        assert await lines.next() is END
    after = str(sequence(current) - 2)
    async with watch(client, name, session.access_token, {"after_sequence": after}) as lines:
        replayed = [await lines.next(), await lines.next()]
        assert await lines.next() is END
    assert [op["metadata"]["progress_percent"] for op in replayed] == [70, 100]
    assert [op["done"] for op in replayed] == [False, True]


async def test_quiet_watch_is_not_cut_by_envoy(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    """The one deliberate wait of these tests: nothing happens to the operation for
    QUIET_SECONDS, and that wait is itself the check (a bounded wait for a next line that must
    not come: no line, no end of stream, no error). Envoy's stream idle timeout and route
    timeout are off for watches; a timeout configured back on would cut the stream here."""
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    async with watch(client, name, session.access_token) as lines:
        assert not (await lines.next())["done"]
        with pytest.raises(TimeoutError):
            await lines.next(timeout=QUIET_SECONDS)
        await worker.start()
        await worker.succeed({"steps": 1})
        assert state(await lines.next()) == "RUNNING"
        last = await lines.next()
        assert (last["done"], last["response"]["output"]) == (True, {"steps": 1})
        assert await lines.next() is END
