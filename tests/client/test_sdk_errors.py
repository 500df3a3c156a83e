"""Errors as the SDK raises them: one class per gRPC code, with the server's details, and the
retries and renewals the client does before giving up."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from tests.support.servers import StartApp, free_port

from formation_mcp import errors
from formation_mcp.app import Application
from formation_mcp.client import (
    Client,
    FmcpClientError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from formation_mcp.client.errors import ERROR_CLASSES, error_from_status


def _any(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@pytest.mark.parametrize("code", list(ERROR_CLASSES))
def test_every_grpc_code_maps_to_its_class(code: grpc.StatusCode) -> None:
    error = error_from_status(status_pb2.Status(code=code.value[0], message="m"))
    assert type(error) is ERROR_CLASSES[code]
    assert error.code is code and error.message == "m"


def test_status_details_are_read_into_the_exception() -> None:
    status = status_pb2.Status(
        code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        message="slow down",
        details=[
            _any(
                error_details_pb2.ErrorInfo(
                    reason="RATE_LIMITED", domain="formation.mcp", metadata={"limit": "30"}
                )
            ),
            _any(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2))),
        ],
    )
    error = error_from_status(status)
    assert (error.reason, error.domain, error.metadata) == (
        "RATE_LIMITED",
        "formation.mcp",
        {"limit": "30"},
    )
    assert error.retry_delay_seconds == 2.0


@pytest.mark.parametrize("code", list(ERROR_CLASSES))
def test_the_sdk_classes_are_the_servers(code: grpc.StatusCode) -> None:
    sdk_class = ERROR_CLASSES[code]
    assert getattr(errors, sdk_class.__name__) is sdk_class is errors.ERROR_CLASSES[code]
    assert issubclass(sdk_class, FmcpClientError) and FmcpClientError is errors.FmcpError


async def test_an_unknown_tool_is_not_found_with_its_reason(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        await client.tools.get("no.such.tool")
    assert caught.value.reason == "TOOL_NOT_FOUND"


async def test_bad_arguments_are_invalid_argument_with_field_violations(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.tools.call("test.echo", {"text": "x", "count": 99})
    fields = {v.field for v in caught.value.field_violations}
    assert "arguments.count" in fields


async def test_an_admin_tool_is_permission_denied_for_a_user(client: Client) -> None:
    with pytest.raises(PermissionDenied) as caught:
        await client.tools.call("test.admin", {})
    assert caught.value.reason == "MISSING_PERMISSION"


async def test_a_bad_token_is_unauthenticated(tools_app: Application) -> None:
    async with Client(tools_app.grpc.address, token="not-a-token") as client:
        with pytest.raises(Unauthenticated) as caught:
            await client.whoami()
    assert caught.value.reason == "TOKEN_INVALID"


async def test_no_server_is_unavailable_after_the_retries() -> None:
    policy = RetryPolicy(max_attempts=2, initial_seconds=0.01, max_seconds=0.02)
    key = Ed25519PrivateKey.generate()
    async with Client(f"127.0.0.1:{free_port()}", key=key, retry=policy, deadline=5) as client:
        with pytest.raises(Unavailable):
            await client.tools.list()


class _SignallingPolicy(RetryPolicy):
    """Retries quickly and tells the test that a retry is pending."""

    signal: asyncio.Event | None = None

    def delay(self, attempt: int, server_hint: float | None = None) -> float:
        assert self.signal is not None
        self.signal.set()
        return 0.05


async def test_unavailable_is_retried_until_the_server_is_up(
    start_app: StartApp,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    _SignallingPolicy.signal = asyncio.Event()
    policy = _SignallingPolicy(max_attempts=400)
    key = Ed25519PrivateKey.generate()
    async with Client(address, key=key, retry=policy, deadline=10) as client:
        listing = asyncio.ensure_future(client.tools.list())
        await asyncio.wait_for(_SignallingPolicy.signal.wait(), 10)
        await start_app(grpc_listen=address)
        tools = await asyncio.wait_for(listing, 30)
    assert "test.echo" in {t.name for t in tools}


async def test_the_token_is_refreshed_before_it_expires(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    now = [0.0]
    async with Client(tools_app.grpc.address, key=key, clock=lambda: now[0]) as client:
        await client.whoami()
        first = client.token_source.session
        assert first is not None
        now[0] = float(first.expire_time.seconds)  # the client's clock says: expired
        await client.whoami()
        second = client.token_source.session
    assert second is not None
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated: it was a refresh


async def test_a_refused_token_is_renewed_once_and_the_call_repeated(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    async with Client(tools_app.grpc.address, key=key) as client:
        await client.whoami()
        session = client.token_source.session
        assert session is not None
        # Revoked behind the client's back: the access token and the refresh family stop working.
        await auth_pb2_grpc.AuthServiceStub(client.channel).RevokeToken(
            auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token),
            metadata=(("authorization", f"Bearer {session.access_token}"),),
        )
        account = await client.whoami()
        renewed = client.token_source.session
    assert account.name == session.account.name
    assert renewed is not None and renewed.access_token != session.access_token


async def test_too_many_logins_are_resource_exhausted_with_a_retry_delay(
    start_app: StartApp, key: Ed25519PrivateKey
) -> None:
    server = await start_app(login_rate_per_minute=2)  # a login is a challenge + a login
    async with Client(server.grpc.address, key=key) as client:
        await client.login()
        with pytest.raises(ResourceExhausted) as caught:
            await client.login()
    assert caught.value.retry_delay_seconds is not None
    assert caught.value.retry_delay_seconds > 0


async def test_a_watch_resumes_after_the_server_comes_back(
    start_app: StartApp, key: Ed25519PrivateKey
) -> None:
    address = f"127.0.0.1:{free_port()}"
    first = await start_app(grpc_listen=address)
    policy = RetryPolicy(max_attempts=400, initial_seconds=0.05, max_seconds=0.1)
    async with Client(address, key=key, retry=policy) as client:
        operation = await client.tools.call("test.sleep", {"steps": 1000, "delay_ms": 50})
        watch = client.operations.watch(operation.name)
        seen = [await anext(watch)]
        await first.stop()  # the stream breaks; the work stops with its worker
        await start_app(grpc_listen=address)  # the same database
        await client.operations.cancel(operation.name)
        async for snapshot in watch:
            seen.append(snapshot)
            if snapshot.metadata.cancel_requested or snapshot.done:
                break
        await watch.aclose()
    sequences = [s.metadata.sequence for s in seen]
    assert sequences == sorted(set(sequences))  # resumed: nothing twice, nothing out of order
    assert seen[-1].metadata.cancel_requested or seen[-1].done
