"""`fmcp ops list | get | wait | watch | cancel | delete`."""

from __future__ import annotations

import json

from tests.support.cli import Fmcp


async def _start(fmcp: Fmcp, *args: str) -> str:
    """Start a test tool without waiting; its operation's name."""
    result = await fmcp("call", *args, "--no-wait", "-o", "json")
    assert result.exit_code == 0, result.output
    name: str = json.loads(result.stdout)["name"]
    return name


async def _long(fmcp: Fmcp) -> str:
    return await _start(fmcp, "test.sleep", "--arg", "steps=1000", "--arg", "delay_ms=50")


async def test_ops_list_json_lists_your_operations(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.echo", "--arg", "text=x")
    result = await fmcp("ops", "list", "-o", "json")
    assert [op["name"] for op in json.loads(result.stdout)] == [name]


async def test_ops_list_table_shows_tool_and_state(fmcp: Fmcp) -> None:
    await _start(fmcp, "test.echo", "--arg", "text=x")
    header, row = (await fmcp("ops", "list")).stdout.splitlines()
    assert header.split() == ["NAME", "TOOL", "STATE", "PROGRESS", "CREATE_TIME"]
    assert row.split()[1:4] == ["test.echo", "SUCCEEDED", "100%"]


async def test_ops_get_json_is_the_operation(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.echo", "--arg", "text=x")
    operation = json.loads((await fmcp("ops", "get", name, "-o", "json")).stdout)
    assert operation["result"] == {"echo": "x"}
    assert operation["metadata"]["tool"] == "test.echo"


async def test_ops_get_of_an_unknown_operation_exits_6(fmcp: Fmcp) -> None:
    result = await fmcp("ops", "get", "operations/0123456789abcdef0123456789abcdef")
    assert result.exit_code == 6


async def test_ops_wait_follows_to_the_end(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.sleep", "--arg", "steps=2", "--arg", "delay_ms=1")
    result = await fmcp("ops", "wait", name, "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"] == {"steps": 2}


async def test_ops_wait_on_a_failed_operation_exits_with_its_class(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.fail")
    result = await fmcp("ops", "wait", name, "-o", "json")
    assert result.exit_code == 8
    assert json.loads(result.stdout)["error"]["reason"] == "TEST_FAILURE"


async def test_ops_watch_json_prints_one_object_per_change(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.sleep", "--arg", "steps=3", "--arg", "delay_ms=1")
    result = await fmcp("ops", "watch", name, "-o", "json")
    snapshots = [json.loads(line) for line in result.stdout.splitlines()]
    sequences = [s["metadata"]["sequence"] for s in snapshots]
    assert sequences == sorted(sequences) and snapshots[-1]["done"] is True
    assert snapshots[-1]["result"] == {"steps": 3}


async def test_ops_watch_table_prints_changes_and_the_result(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.sleep", "--arg", "steps=1", "--arg", "delay_ms=1")
    result = await fmcp("ops", "watch", name)
    assert "SUCCEEDED 100%" in result.stdout
    assert '"steps": 1' in result.stdout


async def test_ops_cancel_then_wait_exits_12(fmcp: Fmcp) -> None:
    name = await _long(fmcp)
    cancelled = await fmcp("ops", "cancel", name, "-o", "json")
    meta = json.loads(cancelled.stdout)["metadata"]
    assert meta["cancel_requested"] or meta["state"] == "CANCELLED"
    result = await fmcp("ops", "wait", name)
    assert result.exit_code == 12


async def test_ops_delete_forgets_the_operation(fmcp: Fmcp) -> None:
    name = await _start(fmcp, "test.echo", "--arg", "text=x")
    deleted = await fmcp("ops", "delete", name, "-o", "json")
    assert json.loads(deleted.stdout) == {"deleted": True, "name": name}
    assert (await fmcp("ops", "get", name)).exit_code == 6


async def test_ops_wait_with_a_timeout_exits_11(fmcp: Fmcp) -> None:
    name = await _long(fmcp)
    result = await fmcp("ops", "wait", name, "--timeout", "0.2")
    assert result.exit_code == 11
    await fmcp("ops", "cancel", name)
