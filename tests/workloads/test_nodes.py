"""Instances across worker restarts and nodes: reconciliation, adoption, shutdown, placement
on the node that runs an instance, offline nodes. Each test starts its own servers."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.errors import error_info
from tests.support.operations import struct
from tests.support.servers import StartApp
from tests.support.waiting import eventually
from tests.support.workloads import build, call, fetch, ship, status, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.db.schema import nodes
from formation_mcp.workloads.instances import InstanceState, InstanceStore


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
    assert node in (refused.value.details() or "")


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


async def test_an_instance_sees_a_scrubbed_environment(
    start_app: StartApp, channels: list[grpc.aio.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMCP_TEST_SERVER_SECRET", "must-not-leak")
    application = await start_app()
    channel, md = await signed_in(application)
    channels.append(channel)
    formfile = 'NAME envdump\nENV GREETING=hi\nENTRYPOINT ["sh", "-c", "env | sort; exit 0"]\n'
    build_id = await build(channel, md, formfile=formfile)
    await succeed(channel, md, "pack.ship", build_id=build_id, instance_name="envdump")
    seen: list[dict[str, Any]] = []

    async def exited() -> bool:
        seen.append(await status(channel, md, "envdump"))
        return bool(seen[-1]["state"] == "stopped")

    await eventually(exited)
    names = {line.split("=", 1)[0] for line in seen[-1]["logs"]}
    assert "GREETING=hi" in seen[-1]["logs"]
    assert "FMCP_TEST_SERVER_SECRET" not in names
    assert names <= {
        "PATH",
        "HOME",
        "LANG",
        "TMPDIR",
        "GREETING",
        "FMCP_INSTANCE_ID",
        "FMCP_INSTANCE_NAME",
        "PWD",
        "SHLVL",
        "_",
    }


async def test_run_as_runs_instances_as_that_user(
    start_app: StartApp, channels: list[grpc.aio.Channel], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user named nobody")
    work_dir = Path(tempfile.mkdtemp(prefix="fmcp-run-as-", dir="/tmp"))
    os.chmod(work_dir, 0o755)
    try:
        application = await start_app(run_as="nobody", work_dir=work_dir)
        channel, md = await signed_in(application)
        channels.append(channel)
        instance = await ship(channel, md, "unprivileged")
        assert await fetch(instance["ports"]["8080"]) == "hello from unprivileged"  # it runs
        status_text = await asyncio.to_thread(Path(f"/proc/{instance['pid']}/status").read_text)
        uids = next(line for line in status_text.splitlines() if line.startswith("Uid:"))
        assert uids.split()[1:] == [str(nobody.pw_uid)] * 4
        await succeed(channel, md, "vm.delete", id="unprivileged", force=True)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


async def test_a_build_step_over_its_time_limit_fails_the_build(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    application = await start_app(build_step_timeout_seconds=0.5)
    channel, md = await signed_in(application)
    channels.append(channel)
    operation = await call(
        channel, md, "pack.build", formfile="NAME slow\nRUN echo started; sleep 30\n"
    )
    assert operation.error.code == code_pb2.FAILED_PRECONDITION
    assert "step 1/1 (RUN echo started; sleep 30) timed out after 0.5 seconds" in (
        operation.error.message
    )
    assert "started" in operation.error.message  # its last lines
