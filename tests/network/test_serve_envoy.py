"""`fmcp serve --envoy` as users run it: its Envoy carries the routes its server renders (the
files in FMCP_DATA_DIR/envoy-xds), and the route's URL starts with FMCP_PUBLIC_URL."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.network import answer, ship_echo
from tests.support.servers import free_port
from tests.support.workloads import succeed
from tests.typescript.processes import FmcpProcess, fmcp_env

from formation_mcp.client.auth import bearer, login


async def test_fmcp_serve_envoy_serves_an_exposed_instance(tmp_path: Path) -> None:
    envoy = f"127.0.0.1:{free_port()}"
    env = fmcp_env(
        FMCP_DATA_DIR=str(tmp_path / "data"),
        FMCP_GRPC_LISTEN="127.0.0.1:0",
        FMCP_HTTP_LISTEN="127.0.0.1:0",
        FMCP_ENVOY_LISTEN=envoy,
        FMCP_PUBLIC_URL=f"http://localhost:{envoy.rpartition(':')[2]}",
    )
    server = FmcpProcess(["serve", "--envoy"], env, tmp_path / "serve.log")
    try:
        await server.start(r"fmcp: Envoy \(REST and gRPC\) on")
        grpc_address = re.search(r"gRPC on (\S+),", server.log.read_text())
        assert grpc_address is not None
        async with grpc.aio.insecure_channel(grpc_address.group(1)) as channel:
            md = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
            await ship_echo(channel, md, "served")

            route = await succeed(channel, md, "network.expose", id="served")

            assert route["url"] == f"http://localhost:{envoy.rpartition(':')[2]}/apps/served/"
            assert (await answer(f"http://{envoy}/apps/served/x")).text == "served /x"
            await succeed(channel, md, "vm.delete", id="served", force=True)
    finally:
        await server.stop()
