"""Instance, pack and operation events end to end: a real worker runs the instance, its node
reports through the broker, the API records them; on every database and broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

import grpc
import pytest
from formation.mcp.v1 import events_pb2, events_pb2_grpc
from google.protobuf import json_format
from tests.support.auth import Md
from tests.support.waiting import eventually
from tests.support.workloads import build, succeed

from formation_mcp.app import Application

CRASHING = (
    'NAME crasher\nENTRYPOINT ["sh", "-c", '
    '"for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 3"]\n'
)


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


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
