"""The `fmcp` command: serve, db upgrade, settings errors (as subprocesses, like users run it)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.support.servers import free_port
from tests.support.waiting import eventually

from formation_mcp.db import migrate

FMCP = str(Path(sys.executable).parent / "fmcp")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env.update({"FMCP_DATA_DIR": str(tmp_path / "data"), "FMCP_LOG_FORMAT": "text"}, **extra)
    return env


async def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "db",
        "upgrade",
        env=env_for(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == f"database at revision {migrate.head_revision()}"
    assert (tmp_path / "data" / "fmcp.db").exists()


async def test_a_bad_setting_is_a_usage_error_naming_the_variable(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "serve",
        env=env_for(tmp_path, FMCP_OPERATION_TTL="a week"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "FMCP_OPERATION_TTL" in stderr.decode()


async def test_serve_answers_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "serve",
        env=env_for(
            tmp_path, FMCP_GRPC_LISTEN=address, FMCP_HTTP_LISTEN=f"127.0.0.1:{free_port()}"
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30
            )
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
        assert "stopped" in stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().partition("=")[::2] for e in entries if e)


def envoy_child_of(pid: int) -> int | None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = Path(stat.parent, "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and name == "envoy":
            return int(stat.parent.name)
    return None


async def test_serve_with_envoy_hands_a_proxy_secret_to_envoy_alone(tmp_path: Path) -> None:
    """`fmcp serve --envoy` makes up a secret for its Envoy: in Envoy's environment only, not in
    the server's own (which workloads could inherit), the rendered config or any log line."""
    envoy_address = f"127.0.0.1:{free_port()}"
    env = env_for(
        tmp_path,
        FMCP_GRPC_LISTEN=f"127.0.0.1:{free_port()}",
        FMCP_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        FMCP_ENVOY_LISTEN=envoy_address,
        FMCP_LOG_LEVEL="DEBUG",
    )
    env.pop("FMCP_PROXY_SECRET", None)
    # Into a file, not a pipe nobody reads meanwhile: DEBUG logs fill a pipe's 64 KiB within
    # seconds, and a server blocked on writing them never answers.
    output = tmp_path / "serve.log"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            FMCP, "serve", "--envoy", env=env, stdout=sink, stderr=sink
        )
    try:

        async def envoy_answers() -> bool:
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    return (await http.get(f"http://{envoy_address}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(envoy_answers, 60)
        envoy_pid = envoy_child_of(process.pid)
        assert envoy_pid is not None
        secret = environ_of(envoy_pid)["FMCP_PROXY_SECRET"]
        assert len(secret) >= 32
        assert "FMCP_PROXY_SECRET" not in environ_of(process.pid)
        assert secret not in (tmp_path / "data" / "envoy.yaml").read_text()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        logged = output.read_text(errors="replace")
        assert process.returncode == 0, logged[-4000:]
        assert secret not in logged
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize(
    ("setting", "args"),
    [
        ("FMCP_GRPC_LISTEN", ()),
        ("FMCP_HTTP_LISTEN", ()),
        ("FMCP_ENVOY_LISTEN", ("--envoy",)),
    ],
)
async def test_serve_on_a_taken_address_says_which_setting_in_one_line(
    tmp_path: Path, setting: str, args: tuple[str, ...]
) -> None:
    addresses = {
        name: f"127.0.0.1:{free_port()}"
        for name in ("FMCP_GRPC_LISTEN", "FMCP_HTTP_LISTEN", "FMCP_ENVOY_LISTEN")
    }
    host, port = addresses[setting].rsplit(":", 1)
    with socket.create_server((host, int(port)), reuse_port=True):  # as another Envoy would
        process = await asyncio.create_subprocess_exec(
            FMCP,
            "serve",
            *args,
            env=env_for(tmp_path, **addresses),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    said = stderr.decode().strip().splitlines()
    assert process.returncode == 1
    assert said == [
        f"fmcp: {setting}={addresses[setting]}: the address is in use (another fmcp serve, or "
        f"another program, listens there); set {setting} to a free host:port (port 0 picks one)"
    ]


async def test_a_worker_on_a_taken_metrics_address_says_which_setting_in_one_line(
    tmp_path: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    host, port = address.rsplit(":", 1)
    with socket.create_server((host, int(port))):
        process = await asyncio.create_subprocess_exec(
            FMCP,
            "worker",
            env=env_for(
                tmp_path,
                FMCP_BROKER_URL="amqp://guest:guest@127.0.0.1:1/",
                FMCP_WORKER_HTTP_LISTEN=address,
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines() == [
        f"fmcp: FMCP_WORKER_HTTP_LISTEN={address}: the address is in use (another fmcp serve, "
        "or another program, listens there); set FMCP_WORKER_HTTP_LISTEN to a free host:port "
        "(port 0 picks one)"
    ]
