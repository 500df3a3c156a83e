"""Two API replicas on one PostgreSQL database, each with its own Envoy: a route made through
one (the one without the instance's worker) is served by both front doors, and its removal
reaches both."""

from __future__ import annotations

import contextlib
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.network.conftest import start_front_door
from tests.support.network import answer, ship_echo
from tests.support.servers import StartApp, free_port
from tests.support.workloads import succeed

from formation_mcp.client.auth import bearer, login


async def test_every_replicas_envoy_serves_every_route(
    database_url: str, start_app: StartApp, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database (SQLite: one server per file)")
    with_worker = await start_app()
    without_worker = await start_app(run_worker=False)
    async with contextlib.AsyncExitStack() as stack:
        doors = []
        for index, replica in enumerate((with_worker, without_worker)):
            listen = f"127.0.0.1:{free_port()}"
            process = await start_front_door(replica, tmp_path / f"envoy{index}", listen)
            stack.push_async_callback(process.stop)
            doors.append(f"http://{listen}")
        # The in-memory broker: work goes to the worker of the replica that took the call.
        worker_channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(with_worker.grpc.address)
        )
        channel = await stack.enter_async_context(
            grpc.aio.insecure_channel(without_worker.grpc.address)
        )
        md = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
        await ship_echo(worker_channel, md, "everywhere")

        route = await succeed(channel, md, "network.expose", id="everywhere")

        for door in doors:
            assert (await answer(door + route["path"] + "hi")).text == "everywhere /hi"
        await succeed(channel, md, "network.unexpose", id="everywhere")
        for door in doors:
            await answer(door + route["path"], 404)
        await succeed(worker_channel, md, "vm.delete", id="everywhere", force=True)
