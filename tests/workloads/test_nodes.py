"""Instances across worker restarts and nodes: reconciliation, adoption, shutdown, placement
on the node that runs an instance, offline nodes. Each test starts its own servers."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from tests.helpers import error_info, eventually, struct
from tests.workloads.vm_helpers import Md, build, ship, status, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.db.schema import nodes
from formation_mcp.workloads.instances import InstanceState, InstanceStore

StartApp = Callable[..., Awaitable[Application]]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int) -> None:
    async def dead() -> bool:
        return not pid_alive(pid)

    await eventually(dead, deadline=20)


async def signed_in(application: Application) -> tuple[grpc.aio.Channel, Md]:
    channel = grpc.aio.insecure_channel(application.grpc.address)
    session = await login(channel, Ed25519PrivateKey.generate())
    return channel, bearer(session.access_token)


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for channel in opened:
        await channel.close()


async def test_a_stuck_instance_is_killed_after_the_grace_period(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    application = await start_app(instance_stop_grace_seconds=0.3)
    channel, md = await signed_in(application)
    channels.append(channel)
    formfile = (
        'NAME stubborn\nENTRYPOINT ["sh", "-c", "trap \\"echo ignoring\\" TERM; '
        'echo ready; while true; do sleep 0.05; done"]\n'
    )
    build_id = await build(channel, md, formfile=formfile)
    await succeed(channel, md, "pack.ship", build_id=build_id, instance_name="stubborn")

    async def ready() -> bool:
        return "ready" in (await status(channel, md, "stubborn"))["logs"]

    await eventually(ready)
    stopped = await succeed(channel, md, "vm.control", id="stubborn", operation="stop")
    assert stopped["exit_code"] == -signal.SIGKILL
    assert "ignoring" in (await status(channel, md, "stubborn"))["logs"]


async def test_a_worker_restart_adopts_an_instance_that_kept_running(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = await start_app(node_id=node, stop_instances_on_exit=False)
    channel, md = await signed_in(first)
    channels.append(channel)
    instance = await ship(channel, md, "survivor")
    await first.stop()
    assert pid_alive(instance["pid"])

    second = await start_app(node_id=node)
    again = grpc.aio.insecure_channel(second.grpc.address)
    channels.append(again)
    adopted = await status(again, md, "survivor")
    assert adopted["state"] == "running" and adopted["pid"] == instance["pid"]
    stopped = await succeed(again, md, "vm.control", id="survivor", operation="stop")
    assert stopped["state"] == "stopped" and stopped["exit_code"] == -signal.SIGTERM
    assert not pid_alive(instance["pid"])


async def test_a_worker_restart_marks_an_instance_that_died_meanwhile_failed(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    first = await start_app(node_id=node, stop_instances_on_exit=False)
    channel, md = await signed_in(first)
    channels.append(channel)
    instance = await ship(channel, md, "casualty")
    await first.stop()
    os.killpg(instance["pid"], signal.SIGKILL)
    await gone(instance["pid"])

    second = await start_app(node_id=node)
    again = grpc.aio.insecure_channel(second.grpc.address)
    channels.append(again)
    found = await status(again, md, "casualty")
    assert found["state"] == "failed" and found["exit_code"] == -signal.SIGKILL
    assert "killed by SIGKILL" in found["status_message"]


async def test_a_worker_that_shuts_down_stops_its_instances(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    application = await start_app()
    channel, md = await signed_in(application)
    channels.append(channel)
    instance = await ship(channel, md, "short-lived")
    await application.stop()
    assert not pid_alive(instance["pid"])
    async with _Reopened(application) as store:
        record = await store.get(instance["instance_id"])
    assert record is not None and record.state is InstanceState.STOPPED
    assert "shut down" in record.status_message


class _Reopened:
    """The stopped server's database, opened again (its own engine is closed)."""

    def __init__(self, application: Application) -> None:
        from formation_mcp.db.database import Database

        self._database = Database(application.settings.effective_database_url)

    async def __aenter__(self) -> InstanceStore:
        return InstanceStore(self._database)

    async def __aexit__(self, *_exc: object) -> None:
        await self._database.close()


async def test_a_call_for_an_instance_on_an_offline_node_fails_at_once(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    worker = await start_app(node_id=node)
    channel, md = await signed_in(worker)
    channels.append(channel)
    await ship(channel, md, "stranded")
    await worker.stop()
    api = await start_app(run_worker=False)
    async with api.database.write() as conn:
        await conn.execute(nodes.update().where(nodes.c.node_id == node).values(last_seen=0))
    again = grpc.aio.insecure_channel(api.grpc.address)
    channels.append(again)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tools_pb2_grpc.ToolsServiceStub(again).CallTool(
            tools_pb2.CallToolRequest(name="tools/vm.status", arguments=struct({"id": "stranded"})),
            metadata=md,
        )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).reason == "NODE_OFFLINE"
    assert node in refused.value.details()


@pytest.mark.rabbitmq
async def test_calls_through_any_server_reach_the_node_that_runs_the_instance(
    start_app: StartApp,
    channels: list[grpc.aio.Channel],
    database_url: str,
    rabbitmq_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("two servers on one database need PostgreSQL (SQLite is one process)")
    prefix = f"fmcp-test-{uuid.uuid4().hex[:8]}"
    shared: dict[str, Any] = {"broker_url": rabbitmq_url, "broker_prefix": prefix}
    servers = {
        "node-a-" + prefix[-8:]: await start_app(node_id="node-a-" + prefix[-8:], **shared),
        "node-b-" + prefix[-8:]: await start_app(node_id="node-b-" + prefix[-8:], **shared),
    }
    for server in servers.values():
        await asyncio.wait_for(server.broker_ready.wait(), 30)
    (node_a, server_a), (node_b, server_b) = servers.items()
    channel_a, md = await signed_in(server_a)
    channel_b = grpc.aio.insecure_channel(server_b.grpc.address)
    channels.extend([channel_a, channel_b])
    by_node = {node_a: channel_a, node_b: channel_b}

    instance = await ship(channel_a, md, "placed")
    holder = instance["node"]
    assert holder in servers
    elsewhere = by_node[node_b if holder == node_a else node_a]  # the other server's API

    seen = await status(elsewhere, md, "placed")
    assert seen["node"] == holder and seen["pid"] == instance["pid"]
    stopped = await succeed(elsewhere, md, "vm.control", id="placed", operation="stop")
    assert stopped["state"] == "stopped"
    assert not pid_alive(instance["pid"])
    started = await succeed(elsewhere, md, "vm.control", id="placed", operation="start")
    assert started["node"] == holder and pid_alive(started["pid"])
    await succeed(elsewhere, md, "vm.delete", id="placed", force=True)
