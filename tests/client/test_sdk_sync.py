"""The blocking facade: the same calls from plain (non-async) code, run in a thread here
because the test's event loop serves the server."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc

from formation_mcp.app import Application
from formation_mcp.auth.keys import write_private_key
from formation_mcp.client import Client, NotFound, Operation, SyncClient
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.session import SessionStore, session_key


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


def _unary(target: str, key: Ed25519PrivateKey) -> tools_pb2.Tool:
    with SyncClient(target, key=key, deadline=20) as client:
        stub = tools_pb2_grpc.ToolsServiceStub(client.channel)
        tool: tools_pb2.Tool = client.unary(
            stub.GetTool, tools_pb2.GetToolRequest(name="tools/test.echo"), idempotent=True
        )
        return tool


async def test_a_stub_on_the_sync_channel_is_called_through_unary(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    tool = await asyncio.to_thread(_unary, tools_app.grpc.address, key)
    assert tool.name == "tools/test.echo"


def _follow(target: str, key: Ed25519PrivateKey) -> tuple[Operation, list[int]]:
    progress: list[int] = []
    with SyncClient(target, key=key, deadline=20) as client:
        started = client.tools.call("test.sleep", {"steps": 2, "delay_ms": 1})
        final = client.follow(
            started,
            on_progress=lambda op: progress.append(op.metadata.progress_percent),
            timeout=20,
        )
    return final, progress


async def test_sync_follow_returns_the_done_operation_after_its_progress(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    final, progress = await asyncio.to_thread(_follow, tools_app.grpc.address, key)
    assert final.done and final.result == {"steps": 2}
    assert progress[-1] == 100


def _stream(target: str, key: Ed25519PrivateKey) -> list[bool]:
    with SyncClient(target, key=key, deadline=20) as client:
        started = client.tools.call("test.sleep", {"steps": 2, "delay_ms": 1})
        return [message.done for message in client.stream_operations(started.name)]


async def test_sync_stream_operations_is_a_plain_iterator_of_messages(
    tools_app: Application, key: Ed25519PrivateKey
) -> None:
    done = await asyncio.to_thread(_stream, tools_app.grpc.address, key)
    assert done[-1] is True and not any(done[:-1])


def _from_config(config: ClientConfig) -> str:
    with SyncClient.from_config(config, deadline=20) as client:
        return client.whoami().name


async def test_a_sync_client_from_the_cli_config_caches_its_session(
    tools_app: Application, key: Ed25519PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMCP_CONFIG_DIR", str(tmp_path / "config"))
    write_private_key(tmp_path / "key.pem", key)
    config = ClientConfig(tools_app.grpc.address, tmp_path / "key.pem")
    account = await asyncio.to_thread(_from_config, config)
    cached = SessionStore(config.session_file).load(session_key(config.target, key))
    assert cached is not None and cached.account.name == account


# --------------------------------------------------------------------------- the same API


def _public(owner: object) -> dict[str, object]:
    """Public members: the class's (methods, properties) and the instance's attributes."""
    names = {n for n in dir(type(owner)) if not n.startswith("_")}
    names |= {n for n in vars(owner) if not n.startswith("_")}
    return {name: inspect.getattr_static(owner, name) for name in names}


def _shape(member: object) -> object:
    """What a caller relies on: a method's parameters (names, kinds, defaults), or that it is
    an attribute (a property or a plain value)."""
    if isinstance(member, classmethod | staticmethod):
        return (type(member).__name__, _parameters(member.__func__))
    if inspect.isfunction(member):
        return ("method", _parameters(member))
    return "attribute"


def _parameters(function: Callable[..., object]) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _pairs() -> Iterator[tuple[str, object, object]]:
    asynchronous = Client("127.0.0.1:1", token="t")
    synchronous = SyncClient("127.0.0.1:1", token="t")
    try:
        yield "Client", asynchronous, synchronous
        yield "Client.tools", asynchronous.tools, synchronous.tools
        yield "Client.operations", asynchronous.operations, synchronous.operations
        yield "Client.policies", asynchronous.policies, synchronous.policies
        yield "Client.events", asynchronous.events, synchronous.events
    finally:
        synchronous.close()


@pytest.mark.parametrize(("where", "asynchronous", "synchronous"), list(_pairs()))
def test_the_sync_client_has_every_public_member_of_the_async_one(
    where: str, asynchronous: object, synchronous: object
) -> None:
    expected = {name: _shape(member) for name, member in _public(asynchronous).items()}
    actual = {name: _shape(member) for name, member in _public(synchronous).items()}
    missing = {name: shape for name, shape in expected.items() if actual.get(name) != shape}
    assert missing == {}, f"SyncClient lacks (or differs in) these members of {where}"
