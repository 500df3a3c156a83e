"""Subscriptions to instance resources over Streamable HTTP through Envoy, both revisions: an
instance (named by its name) is updated when it changes (an event: it was stopped or
restarted), its logs when it wrote output, and another caller's instance is not found."""

from __future__ import annotations

from typing import Any

import anyio
import grpc
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.auth import Md
from tests.support.mcp import MODERN, http_client
from tests.support.waiting import DEADLINE, eventually
from tests.support.workloads import ship, succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import login

NOT_FOUND = -32002


class Notifications:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.seen.append(message)

    def updated(self, uri: str) -> bool:
        return any(
            isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri
            for message in self.seen
        )


async def _first_update(client: Any, uri: str, change: Any) -> tuple[list[str], Any]:
    """Listen to `uri`, make `change()` once acknowledged; the honored URIs and first event."""
    with anyio.fail_after(DEADLINE):
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await change()
            async for event in subscription:
                return list(subscription.honored.resource_subscriptions or []), event
    raise AssertionError(f"the stream of {uri} ended without an update")


async def test_2026_07_28_an_instance_named_by_name_is_updated_when_it_stops(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship(channel, as_account, "sub-stop")
    uri = "formation://instances/sub-stop"

    async def stop() -> None:
        await succeed(channel, as_account, "vm.control", id="sub-stop", operation="stop")

    async with http_client(mcp_url, token, mode=MODERN) as client:
        honored, event = await _first_update(client, uri, stop)
    assert honored == [uri]
    assert event == ResourceUpdated(uri=uri)


async def test_2026_07_28_an_instances_logs_are_updated_when_it_writes(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship(channel, as_account, "sub-logs")
    uri = "formation://instances/sub-logs/logs"

    async def restart() -> None:  # the app prints "listening on" as it starts again
        await succeed(channel, as_account, "vm.control", id="sub-logs", operation="restart")

    async with http_client(mcp_url, token, mode=MODERN) as client:
        honored, event = await _first_update(client, uri, restart)
    assert honored == [uri]
    assert event == ResourceUpdated(uri=uri)


async def test_2026_07_28_another_callers_instance_is_not_honored(
    app: Application, mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    created = await ship(channel, as_account, "sub-mine")
    other = mcp_token(
        app, (await login(channel, Ed25519PrivateKey.generate())).access_token, mcp_url
    )
    uri = f"formation://instances/{created['instance_id']}"
    async with http_client(mcp_url, other, mode=MODERN) as client:
        with anyio.fail_after(DEADLINE):
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                honored = list(subscription.honored.resource_subscriptions or [])
    assert uri not in honored


# The SDK's client warns that 2026-07-28 dropped resources/subscribe; 2025-11-25 has it.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_2025_11_25_a_subscribed_instance_is_updated_when_it_restarts(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    created = await ship(channel, as_account, "sub-legacy")
    uri = f"formation://instances/{created['instance_id']}"
    received = Notifications()
    async with http_client(mcp_url, token, message_handler=received) as client:
        await client.subscribe_resource(uri)
        await succeed(channel, as_account, "vm.control", id="sub-legacy", operation="restart")

        async def updated() -> bool:
            return received.updated(uri)

        await eventually(updated)
        await client.unsubscribe_resource(uri)


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_2025_11_25_another_callers_instance_cannot_be_subscribed(
    app: Application, mcp_url: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    created = await ship(channel, as_account, "sub-theirs")
    other = mcp_token(
        app, (await login(channel, Ed25519PrivateKey.generate())).access_token, mcp_url
    )
    async with http_client(mcp_url, other) as client:
        for suffix in ("", "/logs"):
            with pytest.raises(MCPError) as refused:
                await client.subscribe_resource(
                    f"formation://instances/{created['instance_id']}{suffix}"
                )
            assert refused.value.error.code == NOT_FOUND, suffix
