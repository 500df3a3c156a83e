"""The server around the services: health, reflection (grpcurl), errors, metrics."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from formation.mcp.v1 import auth_pb2, operations_pb2, operations_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.support.errors import error_info
from tests.support.servers import StartApp

from formation_mcp.api.server import SERVICE_NAMES
from formation_mcp.app import Application

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [GRPCURL, *args], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("service", [*SERVICE_NAMES, ""])
async def test_health_reports_each_service_serving(channel: grpc.aio.Channel, service: str) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_shutdown_turns_health_not_serving_before_stopping(
    start_app: StartApp,
) -> None:
    app = await start_app(shutdown_grace_seconds=5.0)
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[2]))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(app.grpc.stop(5.0))
        async with asyncio.timeout(10):
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_grpcurl_lists_our_services_through_reflection(app: Application) -> None:
    result = await grpcurl("-plaintext", app.grpc.address, "list")
    assert result.returncode == 0, result.stderr
    assert set(SERVICE_NAMES) <= set(result.stdout.split())


async def test_grpcurl_describes_a_service_with_its_http_bindings(app: Application) -> None:
    result = await grpcurl(
        "-plaintext",
        app.grpc.address,
        "describe",
        "formation.mcp.v1.OperationsService",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "rpc WatchOperation ( .formation.mcp.v1.WatchOperationRequest ) "
        "returns ( stream .google.longrunning.Operation )"
    ) in result.stdout
    assert 'get:"/v1/{name=operations/*}:watch"' in result.stdout


async def test_grpcurl_call_without_a_token_is_unauthenticated(app: Application) -> None:
    result = await grpcurl(
        "-plaintext",
        "-d",
        '{"name": "operations/00000000000000000000000000000000"}',
        app.grpc.address,
        "formation.mcp.v1.OperationsService/GetOperation",
    )
    assert result.returncode == 64 + grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert "TOKEN_MISSING" in result.stderr + result.stdout


async def test_grpcurl_call_with_a_token_reports_the_error_code(
    app: Application, session: auth_pb2.Session
) -> None:
    result = await grpcurl(
        "-plaintext",
        "-H",
        f"authorization: Bearer {session.access_token}",
        "-d",
        '{"name": "operations/00000000000000000000000000000000"}',
        app.grpc.address,
        "formation.mcp.v1.OperationsService/GetOperation",
    )
    assert result.returncode == 64 + grpc.StatusCode.NOT_FOUND.value[0]
    assert "OPERATION_NOT_FOUND" in result.stderr + result.stdout


async def test_unexpected_errors_become_internal_with_the_request_id(
    app: Application,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    monkeypatch: pytest.MonkeyPatch,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.operations, "get", broken)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name="operations/" + "0" * 32),
            metadata=(*as_account, ("x-request-id", "req-123")),
        )
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "req-123" in (caught.value.details() or "")
    assert "boom" not in (caught.value.details() or "")
    assert error_info(caught.value).metadata["requestId"] == "req-123"


async def test_metrics_count_calls_by_method_and_code(
    app: Application,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name="bad"), metadata=as_account
        )
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"http://{app.http.address}/metrics")).text
    assert (
        'fmcp_grpc_calls_total{code="INVALID_ARGUMENT",'
        'method="/formation.mcp.v1.OperationsService/GetOperation"}'
    ) in body
    assert "fmcp_grpc_call_seconds_bucket" in body


async def test_healthz_answers_ok_when_the_database_is_reachable(app: Application) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{app.http.address}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
