"""The blocking facade: the same calls from plain (non-async) code, run in a thread here
because the test's event loop serves the server."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from formation_mcp.app import Application
from formation_mcp.client import NotFound, Operation, SyncClient


def _script(target: str, key: Ed25519PrivateKey) -> tuple[dict[str, object], list[int], int]:
    progress: list[int] = []
    with SyncClient(target, key=key, deadline=20) as client:
        output = client.call_and_wait(
            "test.sleep",
            {"steps": 2, "delay_ms": 1},
            on_progress=lambda op: progress.append(op.metadata.progress_percent),
            timeout=20,
        )
        listed = list(client.operations.list('tool = "test.sleep"'))
    return output, progress, len(listed)


async def test_a_script_calls_and_waits_with_the_sync_client(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    output, progress, listed = await asyncio.to_thread(_script, tools_app.grpc.address, key)
    assert output == {"steps": 2}
    assert progress[-1] == 100 and listed == 1


def _watch(target: str, key: Ed25519PrivateKey) -> list[Operation]:
    with SyncClient(target, key=key, deadline=20) as client:
        started = client.tools.call("test.sleep", {"steps": 2, "delay_ms": 1})
        return list(client.operations.watch(started.name))


async def test_the_sync_watch_is_a_plain_iterator(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    snapshots = await asyncio.to_thread(_watch, tools_app.grpc.address, key)
    assert snapshots[-1].done and snapshots[-1].result == {"steps": 2}


def _missing(target: str, key: Ed25519PrivateKey) -> None:
    with SyncClient(target, key=key, deadline=20) as client:
        client.tools.get("no.such.tool")


async def test_sync_errors_are_the_same_classes(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(NotFound):
        await asyncio.to_thread(_missing, tools_app.grpc.address, key)
