"""2026-07-28 `subscriptions/listen` over Streamable HTTP through Envoy: an operation's
resource updates, and (tasks extension) its task's status, on the listen stream."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from tests.support.mcp import MODERN, http_client
from tests.support.mcp_tasks import TaskHandle, TasksClient, call_as_task
from tests.support.waiting import DEADLINE, eventually

SLOW = {"steps": 5, "delay_ms": 30}


class ListenWithTasks(types.Request[types.SubscriptionsListenRequestParams, str]):
    method: str = "subscriptions/listen"


async def test_an_operation_resource_is_updated_until_it_is_done(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN, extensions=[TasksClient()]) as client:
        handle = await client.session.call_tool("test.sleep", SLOW, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        uri = f"formation://{handle.task_id}"
        events: list[Any] = []
        with anyio.fail_after(DEADLINE):
            async with client.listen(
                resource_subscriptions=[uri, "formation://instances/elsewhere"]
            ) as subscription:
                async for event in subscription:  # the stream ends when the operation is done
                    events.append(event)
                honored = subscription.honored
        read = await client.read_resource(uri)
    assert honored.resource_subscriptions == [uri]  # the caller has no instance "elsewhere"
    assert events and all(e == ResourceUpdated(uri=uri) for e in events)
    assert isinstance(read.contents[0], types.TextResourceContents)
    assert '"done": true' in read.contents[0].text


async def test_task_status_notifications_follow_the_task(mcp_url: str, token: str) -> None:
    tasks = TasksClient()
    async with http_client(mcp_url, token, mode=MODERN, extensions=[tasks]) as client:
        handle = await client.session.call_tool("test.sleep", SLOW, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        listen = ListenWithTasks(
            params=types.SubscriptionsListenRequestParams(
                notifications=types.SubscriptionFilter.model_validate({"taskIds": [handle.task_id]})
            )
        )
        with anyio.fail_after(DEADLINE):
            await client.session.send_request(listen, types.SubscriptionsListenResult)
            await tasks.terminal.wait()
    assert tasks.statuses[-1].status == "completed"
    assert tasks.statuses[-1].task_id == handle.task_id
    assert tasks.statuses[-1].model_extra is not None
    assert tasks.statuses[-1].model_extra["result"]["structuredContent"] == {"steps": 5}


async def test_task_ids_need_the_tasks_extension(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN) as client:
        listen = ListenWithTasks(
            params=types.SubscriptionsListenRequestParams(
                notifications=types.SubscriptionFilter.model_validate({"taskIds": ["operations/x"]})
            )
        )
        with pytest.raises(MCPError) as refused:
            await client.session.send_request(listen, types.SubscriptionsListenResult)
    assert refused.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY


class Notifications:
    """Every notification the client receives, and a flag once one of `method` arrives."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.seen.append(message)

    def of(self, kind: type[Any]) -> list[Any]:
        return [message for message in self.seen if isinstance(message, kind)]


# The SDK's client warns that 2026-07-28 dropped resources/subscribe; 2025-11-25 has it.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_2025_11_25_a_subscribed_operation_sends_updates_until_it_is_done(
    mcp_url: str, token: str
) -> None:
    received = Notifications()
    async with http_client(mcp_url, token, message_handler=received) as client:
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe is True
        created = await call_as_task(client, "test.sleep", SLOW)
        uri = f"formation://{created['task']['taskId']}"
        await client.subscribe_resource(uri)

        async def done() -> bool:
            return '"done": true' in str((await client.read_resource(uri)).contents[0])

        await eventually(done)

        async def updated() -> bool:
            return any(n.params.uri == uri for n in received.of(types.ResourceUpdatedNotification))

        await eventually(updated)
        with pytest.raises(MCPError) as refused:
            await client.subscribe_resource("formation://packs/0/formfile")
        await client.unsubscribe_resource(uri)
    assert refused.value.error.code == types.INVALID_PARAMS


async def test_2025_11_25_a_tasks_status_changes_are_notified(mcp_url: str, token: str) -> None:
    tasks = TasksClient()
    async with http_client(mcp_url, token, extensions=[tasks]) as client:
        created = await call_as_task(client, "test.sleep", SLOW)
        with anyio.fail_after(DEADLINE):
            await tasks.terminal.wait()
    task_id = created["task"]["taskId"]
    assert {status.task_id for status in tasks.statuses} == {task_id}
    assert tasks.statuses[-1].status == "completed"
    assert (
        tasks.statuses[-1].model_extra is not None
        and "pollInterval" in tasks.statuses[-1].model_extra
    )
