"""The SDK's events and instance logs against a real server and worker: client.events.list
and .watch (resumed from the last event), client.instance_logs and .instance_events, and the
same through SyncClient."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.client import Client, Event, SyncClient

CRASHING = 'NAME sdk-crash\nENTRYPOINT ["sh", "-c", "echo one; echo two >&2; exit 4"]\n'


async def shipped(client: Client, name: str) -> dict[str, object]:
    built = await client.build_workload(CRASHING)
    return await client.deploy_workload(built["build_id"], name)


async def first_events(client: Client, after: str, count: int) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(30):
        async for event in client.events.watch('type = "instance.*"', after=after):
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_events_watch_then_list_and_resume_from_the_last_event(client: Client) -> None:
    await client.whoami()
    existing = [event async for event in client.events.list(limit=1)]
    after = existing[0].name if existing else ""
    watching = asyncio.ensure_future(first_events(client, after, 3))
    instance = await shipped(client, "sdk-crash")
    got = await watching
    assert [e.type for e in got] == ["instance.created", "instance.running", "instance.failed"]
    assert got[-1].severity == "ERROR" and got[-1].data["exit_code"] == 4
    assert got[-1].resource == f"instances/{instance['instance_id']}"
    resumed = await first_events(client, got[0].name, 2)
    assert [e.name for e in resumed] == [e.name for e in got[1:]]
    listed = [e async for e in client.events.list(f'resource = "{got[0].resource}"')]
    assert [e.name for e in listed] == [e.name for e in reversed(got)]


async def test_instance_logs_and_instance_events(client: Client) -> None:
    await shipped(client, "sdk-logs")

    async def ended() -> bool:
        page = await client.instance_events("sdk-logs")
        return bool(page["events"]) and page["events"][0]["type"] == "instance.failed"

    await eventually(ended, deadline=30)
    logs = await client.instance_logs("sdk-logs", stream="stderr")
    assert [(line["stream"], line["text"]) for line in logs["lines"]] == [("stderr", "two")]
    page = await client.instance_events("sdk-logs", page_size=1)
    assert len(page["events"]) == 1 and page["next_cursor"]


def _sync_logs(target: str, key: Ed25519PrivateKey) -> tuple[list[Event], dict[str, object]]:
    with SyncClient(target, key=key, deadline=20) as client:
        return list(client.events.list(limit=5)), client.instance_logs("sdk-logs", tail=1)


async def test_the_sync_client_lists_events_and_reads_logs_too(
    client: Client, tools_app: Application, key: Ed25519PrivateKey
) -> None:
    await shipped(client, "sdk-logs")
    events, logs = await asyncio.to_thread(_sync_logs, tools_app.grpc.address, key)
    assert events and all(event.name.startswith("events/") for event in events)
    assert logs["instance_id"] and isinstance(logs["lines"], list)
