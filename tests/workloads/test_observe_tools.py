"""vm.logs and vm.events end to end through the real worker, on every database and broker:
bounded answers that say what they left out, paging with a cursor, following, and another
caller's instance is NOT_FOUND."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, tools_pb2, tools_pb2_grpc
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.operations import struct
from tests.support.waiting import eventually
from tests.support.workloads import build, call, output_of, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login

CHATTY = (
    "NAME chatty\n"
    'ENTRYPOINT ["python3", "-c", "import sys, time\\n'
    "for i in range(100000): print('line-%d' % i)\\n"
    "sys.stdout.flush(); print('oops', file=sys.stderr, flush=True)\\n"
    'time.sleep(600)"]\n'
)
TICKING = (
    "NAME ticking\n"
    'ENTRYPOINT ["sh", "-c", "i=0; while [ $i -lt 40 ]; do echo tick-$i; i=$((i+1)); '
    'sleep 0.05; done"]\n'
)


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


async def shipped(channel: grpc.aio.Channel, md: Md, formfile: str, name: str) -> str:
    build_id = await build(channel, md, formfile=formfile)
    instance = await succeed(channel, md, "pack.ship", build_id=build_id, instance_name=name)
    instance_id: str = instance["instance_id"]
    return instance_id


async def chatty(channel: grpc.aio.Channel, md: Md, name: str) -> str:
    """An instance that printed 100,000 lines and an error line, and keeps running."""
    instance_id = await shipped(channel, md, CHATTY, name)

    async def printed() -> bool:
        answer = await succeed(channel, md, "vm.logs", id=name, tail=1, stream="stderr")
        return [line["text"] for line in answer["lines"]] == ["oops"]

    await eventually(printed, deadline=60)
    return instance_id


async def test_vm_logs_is_bounded_says_what_it_left_out_and_pages_through_every_line(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await chatty(channel, as_account, "chatty")
    default = await succeed(channel, as_account, "vm.logs", id="chatty")
    assert len(default["lines"]) == 200 and default["lines"][-1]["text"] == "oops"
    assert {"time", "stream", "text"} <= set(default["lines"][0])

    cut = await succeed(channel, as_account, "vm.logs", id="chatty", tail=5000, max_bytes=4096)
    assert cut["truncated"] and 0 < len(cut["lines"]) < 5000
    assert cut["lines_left_out"] == 5000 - len(cut["lines"]) and cut["bytes_left_out"] > 0
    assert "next_cursor" in cut["hint"]

    texts: list[str] = []
    answer: dict[str, Any] = {"next_cursor": cut["start_cursor"], "truncated": True}
    pages = 0
    while answer["truncated"] or pages == 0:
        answer = await succeed(
            channel,
            as_account,
            "vm.logs",
            id="chatty",
            cursor=answer["next_cursor"],
            tail=5000,
            max_bytes=262144,
        )
        if pages == 0:
            assert answer["dropped_bytes"] > 0  # 100,000 lines do not fit the default cap
        texts.extend(line["text"] for line in answer["lines"])
        pages += 1
    numbers = [int(text.removeprefix("line-")) for text in texts if text != "oops"]
    assert numbers == list(range(numbers[0], 100000)) and numbers[0] > 0
    assert texts[-1] == "oops" and pages > 1

    again = await succeed(channel, as_account, "vm.logs", id="chatty", cursor=answer["next_cursor"])
    assert again["lines"] == [] and not again["truncated"]  # nothing new since


async def test_vm_logs_filters_by_stream_and_since(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await chatty(channel, as_account, "filtered")
    errors = await succeed(channel, as_account, "vm.logs", id="filtered", stream="stderr")
    assert [(line["stream"], line["text"]) for line in errors["lines"]] == [("stderr", "oops")]
    future = await succeed(
        channel, as_account, "vm.logs", id="filtered", since="2999-01-01T00:00:00Z"
    )
    recent = await succeed(channel, as_account, "vm.logs", id="filtered", since="1h", tail=3)
    assert future["lines"] == [] and len(recent["lines"]) == 3


async def test_vm_logs_refuses_a_bad_since_and_a_cursor_of_another_instance(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    tools = tools_pb2_grpc.ToolsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await tools.CallTool(
            tools_pb2.CallToolRequest(
                name="tools/vm.logs", arguments=struct({"id": "x", "since": "yesterday"})
            ),
            metadata=as_account,
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "arguments.since" in (bad.value.details() or "")

    await shipped(channel, as_account, TICKING, "first")
    await shipped(channel, as_account, TICKING, "second")
    theirs = await succeed(channel, as_account, "vm.logs", id="first")
    operation = await call(
        channel, as_account, "vm.logs", id="second", cursor=theirs["next_cursor"]
    )
    assert operation.error.code == code_pb2.INVALID_ARGUMENT
    assert "arguments.cursor" in operation.error.message


async def test_another_user_gets_not_found_for_logs_and_events(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance_id = await shipped(channel, as_account, TICKING, "mine")
    other = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
    with pytest.raises(grpc.aio.AioRpcError) as logs:
        await call(channel, other, "vm.logs", id=instance_id)
    assert logs.value.code() is grpc.StatusCode.NOT_FOUND
    events = await call(channel, other, "vm.events", id=instance_id)
    assert events.error.code == code_pb2.NOT_FOUND


async def test_vm_events_pages_an_instances_events_newest_first(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await shipped(channel, as_account, TICKING, "paged")

    async def exited() -> bool:
        answer = await succeed(channel, as_account, "vm.events", id="paged")
        return bool(answer["events"]) and answer["events"][0]["type"] == "instance.exited"

    await eventually(exited, deadline=30)
    first = await succeed(channel, as_account, "vm.events", id="paged", page_size=2)
    rest = await succeed(
        channel, as_account, "vm.events", id="paged", page_size=2, cursor=first["next_cursor"]
    )
    types = [e["type"] for e in first["events"] + rest["events"]]
    assert types == ["instance.exited", "instance.running", "instance.created"]
    assert rest["next_cursor"] == ""
    failed_only = await succeed(
        channel, as_account, "vm.events", id="paged", filter="severity = ERROR"
    )
    assert failed_only["events"] == []


async def test_vm_logs_follow_streams_lines_into_the_operation_until_the_instance_ends(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await shipped(channel, as_account, TICKING, "followed")
    operation = await call(
        channel, as_account, "vm.logs", id="followed", follow=True, duration="60s", tail=1
    )
    assert not operation.HasField("error"), operation.error.message
    metadata = operations_pb2.OperationMetadata()
    operation.metadata.Unpack(metadata)
    texts = [line.text for line in metadata.logs if line.text.startswith("tick-")]
    assert texts and texts[-1] == "tick-39"
    numbers = [int(text.removeprefix("tick-")) for text in texts]
    assert numbers == list(range(numbers[0], 40))


async def test_vm_logs_follow_stops_at_its_duration(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await chatty(channel, as_account, "quiet")
    operation = await call(
        channel, as_account, "vm.logs", id="quiet", follow=True, duration="1s", tail=1
    )
    assert not operation.HasField("error"), operation.error.message
    assert output_of(operation)["ended"] == "duration"


async def test_logs_survive_a_restart_of_the_instance(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    formfile = 'NAME booting\nENTRYPOINT ["sh", "-c", "echo boot; exec sleep 600"]\n'
    await shipped(channel, as_account, formfile, "booting")

    async def boots(count: int) -> bool:
        answer = await succeed(channel, as_account, "vm.logs", id="booting")
        return [line["text"] for line in answer["lines"]] == ["boot"] * count

    await eventually(lambda: boots(1))
    await succeed(channel, as_account, "vm.control", id="booting", operation="restart")
    await eventually(lambda: boots(2))
    await succeed(channel, as_account, "vm.delete", id="booting", force=True)


async def test_a_follow_duration_out_of_range_is_invalid_argument_naming_it(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(
                name="tools/vm.logs",
                arguments=struct({"id": "x", "follow": True, "duration": "1h"}),
            ),
            metadata=as_account,
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "arguments.duration" in (bad.value.details() or "")
