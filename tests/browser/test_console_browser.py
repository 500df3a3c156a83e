"""The web console in headless chromium (Debian's `chromium`, driven by playwright-core from
tests/browser's node_modules: `make setup`) against a real server on PostgreSQL and RabbitMQ,
a separate worker (sampling every half second) and Envoy: the admin signs in through a
`fmcp console` link, watches a running call's progress bar and log lines, approves one call
another account's policy held back (which then runs) and denies another with a comment (which
the caller reads), sees an instance's charts, events and output, calls a tool from its form,
filters events; a forged request is refused; a phone-width screen does not scroll sideways;
the link works once. Screenshots of each page are written to this test's tmp_path (set
FMCP_CONSOLE_ARTIFACTS to keep them elsewhere)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    policies_pb2,
    policies_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import field_mask_pb2
from tests.support.operations import metadata_of, struct
from tests.support.servers import delete_broker_topology, free_port, make_settings
from tests.support.waiting import eventually
from tests.support.workloads import ship, succeed

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login
from formation_mcp.envoy import EnvoyProcess, write_config
from formation_mcp.worker_app import WorkerApplication

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE_SECONDS = 60


@pytest.fixture
async def served(
    tmp_path: Path, postgres_url: str, rabbitmq_url: str
) -> AsyncIterator[tuple[Application, str, Ed25519PrivateKey]]:
    """The API (no worker of its own) and a worker on PostgreSQL and RabbitMQ, behind Envoy;
    the admin's key."""
    admin_key = Ed25519PrivateKey.generate()
    shared = {
        "broker_url": rabbitmq_url,
        "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}",
        "metrics_interval_seconds": 0.5,
    }
    settings = make_settings(
        tmp_path / "data", postgres_url, admin_keys=(b64url(public_bytes(admin_key)),), **shared
    )
    app = Application(settings, run_worker=False)
    await app.start()
    worker = WorkerApplication(
        make_settings(
            tmp_path / "worker",
            postgres_url,
            node_id=f"node-{uuid.uuid4().hex[:8]}",
            worker_http_listen="127.0.0.1:0",
            **shared,
        )
    )
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path / "envoy",
        listen=listen,
        grpc_upstream=app.grpc.address,
        http_upstream=app.http.address,
        xds_dir=app.settings.xds_dir,
    )
    envoy = EnvoyProcess(config, listen, app.settings.proxy_secret)
    try:
        await worker.start()
        await asyncio.wait_for(app.broker_ready.wait(), 30)
        await envoy.start()
        yield app, f"http://{listen}", admin_key
    finally:
        await envoy.stop()
        await worker.stop()
        await app.stop()
        await delete_broker_topology(app)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the screenshots go: FMCP_CONSOLE_ARTIFACTS, else this test's tmp_path."""
    directory = Path(os.environ.get("FMCP_CONSOLE_ARTIFACTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def requirements() -> str:
    """node's path, once chromium and playwright-core are there (`make setup`)."""
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: make setup (apt-get install chromium)"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), "tests/browser: make setup"
    return node


def screenshots(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.png") if p.stat().st_size > 0)


async def call(channel: grpc.aio.Channel, md: Any, name: str, **arguments: Any) -> str:
    tools = tools_pb2_grpc.ToolsServiceStub(channel)
    operation = await tools.CallTool(
        tools_pb2.CallToolRequest(name=f"tools/{name}", arguments=struct(arguments)), metadata=md
    )
    return str(operation.name)


async def hold(channel: grpc.aio.Channel, admin: Any, account: str) -> None:
    """The account's calls of test.echo wait for an approver."""
    await policies_pb2_grpc.PoliciesServiceStub(channel).UpdatePolicy(
        policies_pb2.UpdatePolicyRequest(
            policy=policies_pb2.Policy(name=f"{account}/policy", require_approval=["test.echo"]),
            update_mask=field_mask_pb2.FieldMask(paths=["require_approval"]),
        ),
        metadata=admin,
    )


async def run_console(node: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "console.mjs"),
        env={**os.environ, "CHROMIUM": CHROMIUM, **env},
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), NODE_SECONDS)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(NODE_SECONDS + 120)
async def test_the_console_in_the_browser(
    served: tuple[Application, str, Ed25519PrivateKey], artifacts: Path
) -> None:
    node = requirements()
    app, base, admin_key = served
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        admin = bearer((await login(channel, admin_key)).access_token)
        user_session = await login(channel, Ed25519PrivateKey.generate())
        user = bearer(user_session.access_token)
        await hold(channel, admin, user_session.account.name)
        waiting = await call(channel, user, "test.echo", text="approve me")
        denied = await call(channel, user, "test.echo", text="deny me")
        shipped = await ship(channel, admin, "console-web")
        running = await call(channel, admin, "test.sleep", steps=100, delay_ms=200)
        link = await auth_pb2_grpc.AuthServiceStub(channel).CreateConsoleLink(
            auth_pb2.CreateConsoleLinkRequest(), metadata=admin
        )
        output = await run_console(
            node,
            {
                "FMCP_LINK": base + link.path,
                "FMCP_RUNNING": running.removeprefix("operations/"),
                "FMCP_WAITING": waiting.removeprefix("operations/"),
                "FMCP_DENIED": denied.removeprefix("operations/"),
                "FMCP_INSTANCE": shipped["instance_id"],
                "FMCP_ARTIFACTS": str(artifacts),
            },
        )
        assert "console: ok" in output
        ops = operations_pb2_grpc.OperationsServiceStub(channel)

        async def operation(name: str) -> lro_pb2.Operation:
            got: lro_pb2.Operation = await ops.GetOperation(
                operations_pb2.GetOperationRequest(name=name), metadata=user
            )
            return got

        async def approved_and_done() -> bool:
            found = await operation(waiting)
            meta = metadata_of(found)
            return meta.approval.state == operations_pb2.Approval.APPROVED and found.done

        await eventually(approved_and_done)
        refused = await operation(denied)
        await ops.CancelOperation(
            operations_pb2.CancelOperationRequest(name=running), metadata=admin
        )
        await succeed(channel, admin, "vm.delete", id=shipped["instance_id"], force=True)
    assert refused.done and "not today" in refused.error.message
    assert screenshots(artifacts) == sorted(
        f"{name}.png"
        for name in (
            "signin",
            "operations",
            "operation",
            "approvals",
            "instances",
            "instance",
            "tools",
            "tool",
            "events",
            "phone-instance",
        )
    )
