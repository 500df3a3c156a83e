"""The web console in headless chromium (Debian's `chromium`, driven by playwright-core from
tests/browser's node_modules: `make setup`) against a real server, its worker and Envoy: the
admin signs in through a `fmcp console` link, watches a running call's progress bar move and
approves a call another account's policy held back, which then runs; the link works once.
Screenshots of each page are written to this test's tmp_path (tests/browser/console.mjs)."""

from __future__ import annotations

import asyncio
import os
import shutil
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
from google.protobuf import field_mask_pb2
from tests.support.operations import metadata_of, struct
from tests.support.servers import free_port, make_settings
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login
from formation_mcp.envoy import EnvoyProcess, write_config

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE_SECONDS = 60
State = operations_pb2.OperationMetadata


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Application, str, Ed25519PrivateKey]]:
    """A server with an embedded worker (SQLite, in-memory broker) behind Envoy; the admin."""
    admin_key = Ed25519PrivateKey.generate()
    settings = make_settings(
        tmp_path / "data",
        f"sqlite+aiosqlite:///{tmp_path / 'fmcp.db'}",
        admin_keys=(b64url(public_bytes(admin_key)),),
        broker_url="memory://",
    )
    app = Application(settings)
    await app.start()
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
        await asyncio.wait_for(app.broker_ready.wait(), 30)
        await envoy.start()
        yield app, f"http://{listen}", admin_key
    finally:
        await envoy.stop()
        await app.stop()


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


@pytest.mark.timeout(NODE_SECONDS + 60)
async def test_sign_in_watch_progress_and_approve_in_the_browser(
    served: tuple[Application, str, Ed25519PrivateKey], tmp_path: Path
) -> None:
    node = requirements()
    app, base, admin_key = served
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        admin = bearer((await login(channel, admin_key)).access_token)
        user_session = await login(channel, Ed25519PrivateKey.generate())
        user = bearer(user_session.access_token)
        await policies_pb2_grpc.PoliciesServiceStub(channel).UpdatePolicy(
            policies_pb2.UpdatePolicyRequest(
                policy=policies_pb2.Policy(
                    name=f"{user_session.account.name}/policy", require_approval=["test.echo"]
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["require_approval"]),
            ),
            metadata=admin,
        )
        waiting = await call(channel, user, "test.echo", text="approve me")
        running = await call(channel, admin, "test.sleep", steps=100, delay_ms=200)
        link = await auth_pb2_grpc.AuthServiceStub(channel).CreateConsoleLink(
            auth_pb2.CreateConsoleLinkRequest(), metadata=admin
        )
        process = await asyncio.create_subprocess_exec(
            node,
            str(HERE / "console.mjs"),
            env={
                **os.environ,
                "CHROMIUM": CHROMIUM,
                "FMCP_LINK": base + link.path,
                "FMCP_RUNNING": running.removeprefix("operations/"),
                "FMCP_WAITING": waiting.removeprefix("operations/"),
                "FMCP_ARTIFACTS": str(tmp_path),
            },
            cwd=HERE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), NODE_SECONDS)
        assert process.returncode == 0, output.decode()
        assert "console: ok" in output.decode()
        ops = operations_pb2_grpc.OperationsServiceStub(channel)

        async def approved_and_done() -> bool:
            operation = await ops.GetOperation(
                operations_pb2.GetOperationRequest(name=waiting), metadata=user
            )
            meta = metadata_of(operation)
            return meta.approval.state == operations_pb2.Approval.APPROVED and operation.done

        await eventually(approved_and_done)
        await ops.CancelOperation(
            operations_pb2.CancelOperationRequest(name=running), metadata=admin
        )
    assert screenshots(tmp_path) == ["approvals.png", "events.png", "operations.png", "tools.png"]
