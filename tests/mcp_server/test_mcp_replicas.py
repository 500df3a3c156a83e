"""2026-07-28 is stateless: two API replicas over one PostgreSQL database serve alternate
requests of one MCP client (each request to the other replica, as a round-robin balancer
sends them), and a task created through one is read, and its result fetched, through the
other, also after the first one stopped."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx2 as httpx
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.mcp import MODERN
from tests.support.mcp_tasks import TaskHandle, TasksClient, get_task
from tests.support.servers import StartApp
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.client.auth import login


class RoundRobin(httpx.AsyncBaseTransport):
    """A load balancer in front of the replicas: each request goes to the next one. The Host
    header stays the public one (the tokens' audience)."""

    def __init__(self, ports: list[int]) -> None:
        self._next = itertools.cycle(ports)
        self._inner = httpx.AsyncHTTPTransport()
        self.served: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = next(self._next)
        self.served.append(port)
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)

    def only(self, port: int) -> None:
        """The balancer drops the other replicas (they stopped)."""
        self._next = itertools.cycle([port])

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
async def replicas(start_app: StartApp, database_url: str, tmp_path: Path) -> list[Application]:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL")
    first = await start_app(data_dir=tmp_path / "a")
    second = await start_app(
        data_dir=tmp_path / "b", signing_key_file=first.settings.effective_signing_key_file
    )
    return [first, second]


def port_of(application: Application) -> int:
    return int(application.http.address.rsplit(":", 1)[1])


@asynccontextmanager
async def balanced_client(
    replicas: list[Application], balancer: RoundRobin
) -> AsyncIterator[Client]:
    public = f"http://{replicas[0].http.address}/mcp"
    session = await login_to(replicas[0])
    token = mcp_token(replicas[0], session, public)
    async with (
        httpx.AsyncClient(
            transport=balancer, headers={"authorization": f"Bearer {token}"}, timeout=30
        ) as http,
        Client(
            streamable_http_client(public, http_client=http),
            mode=MODERN,
            extensions=[TasksClient()],
        ) as client,
    ):
        yield client


async def login_to(application: Application) -> str:
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
    return session.access_token


async def test_alternate_requests_go_to_alternate_replicas_and_work(
    replicas: list[Application],
) -> None:
    balancer = RoundRobin([port_of(replica) for replica in replicas])
    async with balanced_client(replicas, balancer) as client:
        for round_ in range(3):
            listed = await client.list_tools()
            echoed = await client.call_tool("test.echo", {"text": f"round {round_}"})
            assert "pack_build" in {tool.name for tool in listed.tools}
            assert echoed.structured_content == {"echo": f"round {round_}"}
    assert set(balancer.served) == {port_of(replica) for replica in replicas}
    assert all(a != b for a, b in itertools.pairwise(balancer.served))


async def test_a_task_created_on_one_replica_is_read_on_the_other_also_after_it_stopped(
    replicas: list[Application],
) -> None:
    balancer = RoundRobin([port_of(replica) for replica in replicas])
    async with balanced_client(replicas, balancer) as client:
        handle = await client.session.call_tool(
            "test.sleep", {"steps": 20, "delay_ms": 20}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        created_on = balancer.served[-1]
        working = await get_task(client, handle.task_id)
        read_on = balancer.served[-1]

        async def done() -> bool:  # polled through both replicas in turn
            return str((await get_task(client, handle.task_id))["status"]) != "working"

        await eventually(done)
        stopped = next(r for r in replicas if port_of(r) == created_on)
        survivor = next(r for r in replicas if r is not stopped)
        await stopped.stop()
        balancer.only(port_of(survivor))
        task = await get_task(client, handle.task_id)
    assert read_on != created_on and working["status"] in ("working", "completed")
    assert balancer.served[-1] == port_of(survivor)
    result = types.CallToolResult.model_validate(task["result"])
    assert task["status"] == "completed" and result.structured_content == {"steps": 20}
