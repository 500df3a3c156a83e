"""The instance tools end to end through the real worker: build a tiny HTTP app, ship it,
fetch from its port, control it, delete it; on every database and broker (`tools_app`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.errors import error_info
from tests.support.operations import struct
from tests.support.waiting import eventually
from tests.support.workloads import build, call, fetch, output_of, ship, status, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


async def test_a_shipped_pack_serves_http_and_is_controlled_to_its_end(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance = await ship(channel, as_account, "web-1")
    assert instance["state"] == "running" and instance["name"] == "web-1"
    port = instance["ports"]["8080"]
    assert await fetch(port) == "hello from web-1"

    running = await status(channel, as_account, "web-1")
    assert running["state"] == "running" and running["pid"] == instance["pid"]
    assert running["uptime_seconds"] >= 0 and f"listening on {port}" in running["logs"]

    stopped = await succeed(channel, as_account, "vm.control", id="web-1", operation="stop")
    assert stopped["state"] == "stopped" and stopped["exit_code"] == -signal.SIGTERM
    assert "pid" not in stopped
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/", timeout=2)

    started = await succeed(channel, as_account, "vm.control", id="web-1", operation="start")
    assert started["state"] == "running"
    assert await fetch(started["ports"]["8080"]) == "hello from web-1"

    restarted = await succeed(channel, as_account, "vm.control", id="web-1", operation="restart")
    assert restarted["state"] == "running" and restarted["pid"] != started["pid"]

    deleted = await succeed(channel, as_account, "vm.delete", id=instance["instance_id"])
    assert deleted["state"] == "deleted"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await status(channel, as_account, "web-1")
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND


async def test_the_seed_name_form_pack_ship_works(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    operation = await call(
        channel, as_account, "form_pack_ship", build_id=build_id, instance_name="seed"
    )
    assert output_of(operation)["state"] == "running"
    await succeed(channel, as_account, "vm.delete", id="seed", force=True)


async def test_vm_create_takes_its_resources_from_the_arguments(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    created = await succeed(
        channel,
        as_account,
        "vm.create",
        name="sized",
        image=build_id,
        vcpus=1,
        memory_mb=768,
        disk_gb=2,
        metadata={"team": "a"},
    )
    assert created["resources"] == {"vcpus": 1, "memory_mb": 768, "disk_gb": 2}
    assert created["metadata"] == {"team": "a"}
    assert await fetch(created["ports"]["8080"]) == "hello from sized"  # it runs, limits set
    limits = await asyncio.to_thread(Path(f"/proc/{created['pid']}/limits").read_text)
    assert str(768 * 1024 * 1024) in limits  # address space from memory_mb
    await succeed(channel, as_account, "vm.delete", id="sized", force=True)


async def test_an_instance_that_crashes_becomes_failed_with_its_exit_code(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    formfile = 'NAME crash\nENTRYPOINT ["sh", "-c", "echo going down; exit 7"]\n'
    build_id = await build(channel, as_account, formfile=formfile)
    await succeed(channel, as_account, "pack.ship", build_id=build_id, instance_name="crash")
    seen: list[dict[str, Any]] = []

    async def failed() -> bool:
        seen.append(await status(channel, as_account, "crash"))
        return bool(seen[-1]["state"] == "failed")

    await eventually(failed, deadline=20)
    assert seen[-1]["exit_code"] == 7 and "going down" in seen[-1]["logs"]
    await succeed(channel, as_account, "vm.delete", id="crash")


async def test_a_pack_without_entrypoint_fails_to_ship_and_says_why(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account, formfile="NAME idle\nRUN true\n")
    operation = await call(channel, as_account, "pack.ship", build_id=build_id, instance_name="x")
    assert operation.error.code == code_pb2.FAILED_PRECONDITION
    assert "ENTRYPOINT" in operation.error.message


async def test_a_duplicate_instance_name_is_refused(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship(channel, as_account, "twin")
    build_id = await build(channel, as_account)
    operation = await call(
        channel, as_account, "pack.ship", build_id=build_id, instance_name="twin"
    )
    assert operation.error.code == code_pb2.ALREADY_EXISTS
    await succeed(channel, as_account, "vm.delete", id="twin", force=True)


async def test_vm_list_shows_the_callers_instances_only(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    mine = await ship(channel, as_account, "listed")
    other = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
    assert (await succeed(channel, other, "vm.list"))["count"] == 0
    listed = await succeed(channel, as_account, "vm.list")
    assert [i["instance_id"] for i in listed["instances"]] == [mine["instance_id"]]
    await succeed(channel, as_account, "vm.delete", id="listed", force=True)


async def test_all_users_is_for_admins(channel: grpc.aio.Channel, as_account: Md) -> None:
    operation = await call(channel, as_account, "vm.list", all_users=True)
    assert operation.error.code == code_pb2.PERMISSION_DENIED


async def test_another_user_can_neither_see_nor_control_nor_ship_yours(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance = await ship(channel, as_account, "private")
    other = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
    tools = tools_pb2_grpc.ToolsServiceStub(channel)
    attempts = [
        ("vm.status", {"id": instance["instance_id"]}),
        ("vm.control", {"id": instance["instance_id"], "operation": "stop"}),
        ("vm.delete", {"id": "private"}),
        ("pack.ship", {"build_id": instance["build_id"], "instance_name": "stolen"}),
    ]
    for tool, arguments in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tools.CallTool(
                tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)),
                metadata=other,
            )
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND, tool
        assert error_info(refused.value).reason in {"INSTANCE_NOT_FOUND", "PACK_NOT_FOUND"}
    assert (await status(channel, as_account, "private"))["state"] == "running"
    await succeed(channel, as_account, "vm.delete", id="private", force=True)


async def test_instance_arguments_are_checked_against_the_schema(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(
                name="tools/vm.control",
                arguments=struct({"id": "x", "operation": "explode"}),
            ),
            metadata=as_account,
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "operation" in (refused.value.details() or "")
