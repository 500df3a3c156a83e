"""Instance, pack and operation events end to end: a real worker runs the instance, its node
reports through the broker, the API records them; on every database and broker."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import events_pb2, events_pb2_grpc
from google.protobuf import json_format
from tests.support.auth import Md
from tests.support.servers import StartApp
from tests.support.waiting import eventually, wait_until
from tests.support.workloads import build, ship, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.events.model import NewEvent, Severity
from formation_mcp.identity import Caller
from formation_mcp.permissions import USER

CRASHING = (
    'NAME crasher\nENTRYPOINT ["sh", "-c", '
    '"for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 3"]\n'
)


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for channel in opened:
        await channel.close()


async def signed_in(application: Application) -> tuple[grpc.aio.Channel, Md]:
    channel = grpc.aio.insecure_channel(application.grpc.address)
    session = await login(channel, Ed25519PrivateKey.generate())
    return channel, bearer(session.access_token)


async def gone(pid: int) -> None:
    async def dead() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await eventually(dead, deadline=20)


def as_json(event: events_pb2.Event) -> dict[str, Any]:
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


async def listed(channel: grpc.aio.Channel, md: Md, filter_text: str) -> list[dict[str, Any]]:
    response = await events_pb2_grpc.EventsServiceStub(channel).ListEvents(
        events_pb2.ListEventsRequest(filter=filter_text, page_size=100), metadata=md
    )
    return [as_json(event) for event in response.events]


async def watched(
    stream: AsyncIterable[events_pb2.Event], until: str, limit: int = 50
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for event in stream:
            got.append(as_json(event))
            if event.type == until or len(got) >= limit:
                return got
    return got


async def test_an_instance_that_exits_non_zero_is_created_running_then_failed_in_order(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    stub = events_pb2_grpc.EventsServiceStub(channel)
    build_id = await build(channel, as_account, formfile=CRASHING)
    mark = await listed(channel, as_account, "")
    stream = stub.WatchEvents(
        events_pb2.WatchEventsRequest(filter='type = "instance.*"', after=mark[0]["name"]),
        metadata=as_account,
    )
    instance = await succeed(
        channel, as_account, "pack.ship", build_id=build_id, instance_name="crasher"
    )
    got = await watched(stream, "instance.failed")
    stream.cancel()
    resource = f"instances/{instance['instance_id']}"
    assert [e["type"] for e in got] == ["instance.created", "instance.running", "instance.failed"]
    assert {e["resource"] for e in got} == {resource}
    failed = got[-1]
    assert failed["severity"] == "ERROR" and failed["data"]["exit_code"] == 3
    assert "exited with code 3" in failed["message"]
    assert failed["data"]["last_lines"][-4:] == ["line 1", "line 2", "line 3", "oops"]
    assert [e["name"] for e in got] == sorted(e["name"] for e in got)


async def test_a_build_and_its_operation_have_events(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account, formfile="NAME evented\nRUN echo built\n")

    async def recorded() -> bool:
        types = {e["type"] for e in await listed(channel, as_account, "")}
        return {"pack.built", "operation.succeeded"} <= types

    await eventually(recorded)
    built = await listed(channel, as_account, 'type = "pack.built"')
    assert built[0]["resource"] == f"packs/{build_id}" and built[0]["data"]["name"] == "evented"
    succeeded = await listed(channel, as_account, 'type = "operation.*"')
    assert succeeded[0]["data"] == {"tool": "pack.build", "state": "SUCCEEDED"}


async def test_a_stopped_restarted_and_deleted_instance_reports_each_change(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    formfile = 'NAME sleeper\nENTRYPOINT ["sh", "-c", "echo up; exec sleep 600"]\n'
    build_id = await build(channel, as_account, formfile=formfile)
    created = await succeed(
        channel, as_account, "pack.ship", build_id=build_id, instance_name="sleeper"
    )
    await succeed(channel, as_account, "vm.control", id="sleeper", operation="restart")
    await succeed(channel, as_account, "vm.delete", id="sleeper")
    resource = f"instances/{created['instance_id']}"

    async def all_there() -> bool:
        got = await listed(channel, as_account, f'resource = "{resource}"')
        return bool(got) and got[0]["type"] == "instance.deleted"

    await eventually(all_there)
    types = [
        e["type"] for e in reversed(await listed(channel, as_account, f'resource = "{resource}"'))
    ]
    assert types == [
        "instance.created",
        "instance.running",
        "instance.stopped",
        "instance.restarted",
        "instance.stopped",
        "instance.deleted",
    ]


async def resource_events(channel: grpc.aio.Channel, md: Md, resource: str) -> list[str]:
    return [e["type"] for e in reversed(await listed(channel, md, f'resource = "{resource}"'))]


async def test_a_worker_restart_reports_an_instance_that_kept_running_as_adopted(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = await start_app(node_id=node, stop_instances_on_exit=False)
    channel, md = await signed_in(first)
    channels.append(channel)
    instance = await ship(channel, md, "kept")
    await first.stop()
    second = await start_app(node_id=node)
    again = grpc.aio.insecure_channel(second.grpc.address)
    channels.append(again)
    resource = f"instances/{instance['instance_id']}"

    async def adopted() -> bool:
        return "instance.adopted" in await resource_events(again, md, resource)

    await eventually(adopted)
    assert await resource_events(again, md, resource) == [
        "instance.created",
        "instance.running",
        "instance.adopted",
    ]
    await succeed(again, md, "vm.delete", id="kept", force=True)


async def test_a_worker_restart_reports_an_instance_that_died_meanwhile_as_lost(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = await start_app(node_id=node, stop_instances_on_exit=False)
    channel, md = await signed_in(first)
    channels.append(channel)
    instance = await ship(channel, md, "dies")
    await first.stop()
    os.killpg(instance["pid"], signal.SIGKILL)
    await gone(instance["pid"])
    second = await start_app(node_id=node)
    again = grpc.aio.insecure_channel(second.grpc.address)
    channels.append(again)
    resource = f"instances/{instance['instance_id']}"

    async def lost() -> bool:
        return "instance.lost" in await resource_events(again, md, resource)

    await eventually(lost)
    event = (await listed(again, md, f'resource = "{resource}" AND type = "instance.lost"'))[0]
    assert event["severity"] == "WARNING" and event["data"]["signal"] == "SIGKILL"


async def test_a_watch_on_one_replica_sees_events_recorded_through_another(
    start_app: StartApp, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL (SQLite is one process)")
    replica_a = await start_app(run_worker=False)
    replica_b = await start_app(run_worker=False)
    caller = Caller(account=f"accounts/{uuid.uuid4().hex}", roles=frozenset({USER}))
    stream = replica_a.events.watch(caller, "", "")
    first = asyncio.ensure_future(anext(stream))
    await wait_until(lambda: replica_a.events.hub.watchers == 1)
    keys = [uuid.uuid4().hex for _ in range(3)]
    recorded = await replica_b.events.record(
        [
            NewEvent(key, "instance.running", "instances/r", caller.account, 1, Severity.INFO, "m")
            for key in keys
        ]
    )
    async with asyncio.timeout(10):
        got = [await first, await anext(stream), await anext(stream)]
    assert [r.id for r in got] == [r.id for r in recorded]
    await stream.aclose()


async def test_a_server_that_shuts_down_records_the_events_of_its_own_shutdown(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    """The embedded default (in-memory broker): the events of stopping the node's instances and
    of the node going offline are recorded before the server is gone."""
    node = f"node-{uuid.uuid4().hex[:8]}"
    application = await start_app(node_id=node)
    channel, md = await signed_in(application)
    channels.append(channel)
    instance = await ship(channel, md, "last-words")
    await application.stop()
    later = await start_app(run_worker=False)
    admin_view = Caller(account="accounts/admin", roles=frozenset({"admin"}))
    resource = f"instances/{instance['instance_id']}"
    found, _ = await later.events.list(
        admin_view, f'resource = "{resource}"', 0, "", all_users=True
    )
    assert found[0].type == "instance.stopped" and "shut down" in found[0].message
    nodes, _ = await later.events.list(
        admin_view, f'resource = "nodes/{node}"', 0, "", all_users=True
    )
    assert [event.type for event in nodes] == ["node.offline", "node.online"]
