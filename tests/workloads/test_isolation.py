"""Workloads cannot reach the server that runs them: a build step and an instance probe for
the server's processes, environment and files and find nothing.

The server here runs with an in-process worker (the embedded default, `make run`), so the
workload descends from the very process that holds the signing key. To show that the sandbox,
not file permissions, keeps them out, the server's files are made world-readable first; and
the same probe without isolation (FMCP_UNSAFE_WORKLOADS=true) does read them, so the probe
itself works.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from tests.support.auth import Md
from tests.support.servers import StartApp
from tests.support.waiting import eventually
from tests.support.workloads import call, status, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login

CANARY_VARIABLE = "FMCP_ISOLATION_CANARY"

PROBE = """\
import json, os, sys
targets = json.loads(sys.argv[1])
def readable(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False
seen = []
for pid in (name for name in os.listdir("/proc") if name.isdigit()):
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            seen.append(handle.read())
    except OSError:
        pass
print(json.dumps({
    "pids": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
    "canary_seen": any(targets["canary"].encode() in environ for environ in seen),
    "server_visible": os.path.exists(f"/proc/{targets['server_pid']}"),
    "readable": {name: readable(path) for name, path in targets["files"].items()},
    "data_dir_listed": os.path.isdir(targets["data_dir"]),
    "uid": os.getuid(),
}), flush=True)
"""


def world_readable(directory: Path) -> None:
    """Every directory searchable and every file readable by anyone: from here on only the
    sandbox keeps a workload out."""
    for base, _dirs, files in os.walk(directory):
        os.chmod(base, 0o755)
        for name in files:
            os.chmod(os.path.join(base, name), 0o644)


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the server's own environment (the server runs in this process)."""
    value = secrets.token_hex(16)
    monkeypatch.setenv(CANARY_VARIABLE, value)
    return value


class Server:
    def __init__(self, application: Application, channel: grpc.aio.Channel, md: Md) -> None:
        self.application = application
        self.channel = channel
        self.md = md

    def targets(self, canary: str) -> str:
        settings = self.application.settings
        world_readable(settings.data_dir)
        files = {
            "signing_key": settings.effective_signing_key_file,
            "database": settings.data_dir / "fmcp.db",
            "server_environ": Path(f"/proc/{os.getpid()}/environ"),
        }
        return json.dumps(
            {
                "canary": canary,
                "server_pid": os.getpid(),
                "data_dir": str(settings.data_dir),
                "files": {name: str(path) for name, path in files.items()},
            }
        )


@pytest.fixture
async def serve(
    start_app: StartApp, shared_dir: Path
) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    channels: list[grpc.aio.Channel] = []

    async def start(**overrides: Any) -> Server:
        data_dir = shared_dir / f"data{len(channels)}"
        application = await start_app(data_dir=data_dir, **overrides)
        channel = grpc.aio.insecure_channel(application.grpc.address)
        channels.append(channel)
        session = await login(channel, Ed25519PrivateKey.generate())
        return Server(application, channel, bearer(session.access_token))

    yield start
    for channel in channels:
        await channel.close()


def probe_formfile(targets: str, *, entrypoint: bool = False) -> str:
    argument = json.dumps(targets)
    if entrypoint:
        return f'NAME probe\nENTRYPOINT ["python3", "probe.py", {argument}]\n'
    return f"NAME probe\nRUN python3 probe.py '{targets}'\n"


def report(lines: list[str]) -> dict[str, Any]:
    found = [json.loads(line) for line in lines if line.startswith('{"pids"')]
    assert found, f"the probe printed no report: {lines}"
    result: dict[str, Any] = found[-1]
    return result


async def probe_in_build(server: Server, canary: str) -> dict[str, Any]:
    operation = await call(
        server.channel,
        server.md,
        "pack.build",
        formfile=probe_formfile(server.targets(canary)),
        context_files={"probe.py": PROBE},
    )
    assert not operation.HasField("error"), operation.error.message
    lines = await server_logs(server, operation.name)
    return report(lines)


async def server_logs(server: Server, name: str) -> list[str]:
    watch = operations_pb2_grpc.OperationsServiceStub(server.channel).WatchOperation(
        operations_pb2.WatchOperationRequest(name=name), metadata=server.md
    )
    lines: list[str] = []
    async for message in watch:
        metadata = operations_pb2.OperationMetadata()
        message.metadata.Unpack(metadata)
        lines.extend(line.text for line in metadata.logs)
    return lines


async def test_a_build_step_sees_none_of_the_server(
    serve: Callable[..., Awaitable[Server]], canary: str
) -> None:
    server = await serve()
    found = await probe_in_build(server, canary)

    assert found["canary_seen"] is False
    assert found["server_visible"] is False
    assert found["readable"] == {"signing_key": False, "database": False, "server_environ": False}
    assert found["data_dir_listed"] is False
    assert max(found["pids"]) < 10  # its own few processes, numbered in its own namespace


async def test_without_isolation_the_same_probe_reads_the_server(
    serve: Callable[..., Awaitable[Server]], canary: str
) -> None:
    server = await serve(unsafe_workloads=True)
    found = await probe_in_build(server, canary)

    assert found["server_visible"] is True
    assert found["readable"]["signing_key"] is True
    assert found["data_dir_listed"] is True


async def test_an_instance_sees_none_of_the_server(
    serve: Callable[..., Awaitable[Server]], canary: str
) -> None:
    server = await serve()
    formfile = probe_formfile(server.targets(canary), entrypoint=True)
    built = await succeed(
        server.channel,
        server.md,
        "pack.build",
        formfile=formfile,
        context_files={"probe.py": PROBE},
    )
    await succeed(
        server.channel, server.md, "pack.ship", build_id=built["build_id"], instance_name="probe"
    )
    lines: list[str] = []

    async def reported() -> bool:
        lines[:] = (await status(server.channel, server.md, "probe"))["logs"]
        return any(line.startswith('{"pids"') for line in lines)

    await eventually(reported, deadline=20)
    found = report(lines)

    assert found["canary_seen"] is False
    assert found["server_visible"] is False
    assert found["readable"] == {"signing_key": False, "database": False, "server_environ": False}
    assert found["data_dir_listed"] is False


async def test_workloads_of_a_root_worker_run_as_nobody(
    serve: Callable[..., Awaitable[Server]], canary: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the worker runs as root only when the tests do")
    server = await serve()
    found = await probe_in_build(server, canary)
    assert found["uid"] == 65534
