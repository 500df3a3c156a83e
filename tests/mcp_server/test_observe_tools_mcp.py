"""vm.logs and vm.events through the MCP endpoint (through real Envoy): listed with their
schemas and read-only annotations, bounded answers as structured content, and `follow`
reported as progress (each new line is the progress message)."""

from __future__ import annotations

import anyio
import grpc
from tests.support.auth import Md
from tests.support.mcp import ProgressLog, http_client, text_of
from tests.support.waiting import eventually
from tests.support.workloads import build, succeed

from formation_mcp.app import Application

TICKING = (
    "NAME mcp-ticking\n"
    'ENTRYPOINT ["sh", "-c", "i=0; while [ $i -lt 30 ]; do echo tick-$i; i=$((i+1)); '
    'sleep 0.05; done"]\n'
)


async def ticking(channel: grpc.aio.Channel, md: Md, name: str) -> str:
    build_id = await build(channel, md, formfile=TICKING)
    instance = await succeed(channel, md, "pack.ship", build_id=build_id, instance_name=name)
    instance_id: str = instance["instance_id"]
    return instance_id


async def test_vm_logs_and_vm_events_are_listed_read_only_with_their_schemas(
    mcp_url: str, token: str, app: Application
) -> None:
    async with http_client(mcp_url, token) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, dotted in (("vm_logs", "vm.logs"), ("vm_events", "vm.events")):
        tool = listed[name]
        assert tool.input_schema == app.registry.resolve(dotted).spec.input_schema
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert {"tail", "since", "cursor", "max_bytes", "follow", "duration"} <= set(
        listed["vm_logs"].input_schema["properties"]
    )


async def test_vm_logs_answers_bounded_lines_and_vm_events_the_instances_events(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance_id = await ticking(channel, as_account, "mcp-logs")
    async with http_client(mcp_url, token) as client:

        async def all_printed() -> bool:
            result = await client.call_tool("vm_logs", {"id": "mcp-logs", "tail": 1})
            content = result.structured_content or {}
            return [line["text"] for line in content.get("lines", [])] == ["tick-29"]

        await eventually(all_printed, deadline=30)
        cut = await client.call_tool("vm_logs", {"id": "mcp-logs", "max_bytes": 256})
        events = await client.call_tool("vm_events", {"id": instance_id})
    assert cut.is_error is False, text_of(cut)
    content = cut.structured_content
    assert content is not None and content["truncated"] is True
    assert content["lines_left_out"] > 0 and "next_cursor" in content["hint"]
    assert events.structured_content is not None
    types = [event["type"] for event in events.structured_content["events"]]
    assert types[-2:] == ["instance.running", "instance.created"]


async def test_vm_logs_follow_reports_new_lines_as_progress(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account, formfile=TICKING.replace("30", "100"))
    await succeed(channel, as_account, "pack.ship", build_id=build_id, instance_name="mcp-follow")
    progress = ProgressLog()
    async with http_client(mcp_url, token) as client:
        with anyio.fail_after(60):
            result = await client.call_tool(
                "vm_logs",
                {"id": "mcp-follow", "follow": True, "duration": "30s", "tail": 1},
                progress_callback=progress,
            )
    assert result.is_error is False, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["ended"] in ("not_running", "duration")
    messages = [message or "" for _value, _total, message in progress.steps]
    assert any("tick-" in message for message in messages)
