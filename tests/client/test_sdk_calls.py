"""The async SDK against a real server: every method, results as plain values."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from formation_mcp.app import Application
from formation_mcp.auth.keys import key_id, public_bytes
from formation_mcp.client import (
    Cancelled,
    Client,
    FailedPrecondition,
    FormfileBuilder,
    NotFound,
    Operation,
    result_of,
)

DEADLINE = 20.0


async def test_the_first_call_logs_in_with_the_key(client: Client, key: Ed25519PrivateKey) -> None:
    account = await client.whoami()
    assert account.name == f"accounts/{key_id(public_bytes(key))}"
    assert account.roles == ["user"]


async def test_tools_list_returns_the_tools_matching_the_filter(client: Client) -> None:
    tools = await client.tools.list('category = "test"')
    names = {tool.name for tool in tools}
    assert {"test.echo", "test.sleep"} <= names
    assert all(tool.category == "test" for tool in tools)


async def test_tools_get_returns_the_schema_and_annotations(client: Client) -> None:
    tool = await client.tools.get("test.sleep")
    assert tool.resource_name == "tools/test.sleep"
    assert tool.input_schema["properties"]["steps"]["type"] == "integer"
    assert tool.annotations.long_running is True


async def test_a_quick_tool_call_returns_a_done_operation_with_its_output(
    client: Client,
) -> None:
    operation = await client.tools.call("test.echo", {"text": "hi", "count": 2})
    assert operation.done and operation.state == "SUCCEEDED"
    assert operation.result == {"echo": "hihi"}


async def test_validate_only_checks_without_running(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 1}, validate_only=True)
    assert operation.name == "" and operation.error is None  # nothing was started


async def test_call_and_wait_returns_the_output_and_reports_progress(client: Client) -> None:
    seen: list[Operation] = []
    output = await client.call_and_wait(
        "test.sleep", {"steps": 2, "delay_ms": 1}, on_progress=seen.append, timeout=DEADLINE
    )
    assert output == {"steps": 2}
    assert seen[-1].done and seen[-1].metadata.progress_percent == 100


async def test_call_and_wait_accepts_a_coroutine_callback(client: Client) -> None:
    percents: list[int] = []

    async def record(operation: Operation) -> None:
        percents.append(operation.metadata.progress_percent)

    await client.call_and_wait("test.sleep", {"steps": 1}, on_progress=record, timeout=DEADLINE)
    assert percents[-1] == 100


async def test_a_failed_operation_raises_its_error_class_with_reason(client: Client) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        await client.call_and_wait("test.fail", {}, timeout=DEADLINE)
    assert caught.value.reason == "TEST_FAILURE"
    assert caught.value.operation is not None
    assert caught.value.operation.startswith("operations/")


async def test_the_watch_sees_every_progress_step(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 5, "delay_ms": 5})
    snapshots = [s async for s in client.operations.watch(operation.name)]
    sequences = [s.metadata.sequence for s in snapshots]
    lines = [line.text for s in snapshots for line in s.metadata.logs]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert [f"step {k} of 5" for k in range(1, 6)] == [x for x in lines if x.startswith("step")]
    assert snapshots[-1].done and snapshots[-1].result == {"steps": 5}


async def test_the_watch_resumes_after_a_sequence(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 2, "delay_ms": 1})
    done = await client.operations.wait(operation.name, timeout=DEADLINE)
    replay = [s async for s in client.operations.watch(operation.name, after_sequence=1)]
    assert replay[0].metadata.sequence == 2
    assert replay[-1].metadata.sequence == done.metadata.sequence


async def test_wait_returns_the_done_operation(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 1, "delay_ms": 1})
    done = await client.operations.wait(operation.name, timeout=DEADLINE)
    assert done.done and done.result == {"steps": 1}


async def test_wait_with_a_short_timeout_returns_the_running_operation(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 1000, "delay_ms": 50})
    try:
        current = await client.operations.wait(operation.name, timeout=0.2)
        assert not current.done
    finally:
        await client.operations.cancel(operation.name)


async def test_get_returns_metadata_as_plain_values(client: Client) -> None:
    operation = await client.tools.call("test.echo", {"text": "x"})
    fetched = await client.operations.get(operation.name)
    assert fetched.metadata.tool == "test.echo"
    assert fetched.metadata.create_time is not None
    assert fetched.to_dict()["metadata"]["state"] == "SUCCEEDED"


async def test_list_iterates_every_page(client: Client) -> None:
    names = {(await client.tools.call("test.echo", {"text": str(i)})).name for i in range(3)}
    listed = [op.name async for op in client.operations.list('tool = "test.echo"', page_size=1)]
    assert set(listed) == names and len(listed) == 3


async def test_list_stops_at_the_limit(client: Client) -> None:
    for i in range(3):
        await client.tools.call("test.echo", {"text": str(i)})
    listed = [op async for op in client.operations.list(limit=2)]
    assert len(listed) == 2


async def test_cancel_ends_the_operation_cancelled(client: Client) -> None:
    operation = await client.tools.call("test.sleep", {"steps": 1000, "delay_ms": 20})
    await client.operations.cancel(operation.name)
    final = await client.operations.wait(operation.name, timeout=DEADLINE)
    assert final.state == "CANCELLED"
    with pytest.raises(Cancelled):
        result_of(final)


async def test_delete_forgets_the_operation(client: Client) -> None:
    operation = await client.tools.call("test.echo", {"text": "x"})
    await client.operations.delete(operation.name)
    with pytest.raises(NotFound):
        await client.operations.get(operation.name)


async def test_call_and_wait_times_out_with_deadline_exceeded(client: Client) -> None:
    from formation_mcp.client import DeadlineExceeded

    with pytest.raises(DeadlineExceeded) as caught:
        await client.call_and_wait("test.sleep", {"steps": 1000, "delay_ms": 50}, timeout=0.3)
    assert caught.value.operation is not None
    await client.operations.cancel(caught.value.operation)


async def test_build_workload_packs_the_directory_and_builds(
    client: Client, tmp_path: Path
) -> None:
    context = tmp_path / "site"
    context.mkdir()
    (context / "index.html").write_text("<h1>hi</h1>")
    formfile = FormfileBuilder("hello").run("cat index.html > copy.html").to_text()
    result = await client.build_workload(formfile, context, timeout=60)
    assert result["name"] == "hello" and result["build_id"]


async def test_deploy_workload_ships_a_build_as_a_running_instance(client: Client) -> None:
    formfile = FormfileBuilder("idle").entrypoint("sleep", "600").to_text()
    build = await client.build_workload(formfile, timeout=60)
    instance = await client.deploy_workload(
        build["build_id"], f"idle-{uuid.uuid4().hex[:8]}", {"vcpus": 1}, timeout=60
    )
    try:
        assert instance["state"] == "running"
        assert instance["build_id"] == build["build_id"]
    finally:
        await client.call_and_wait(
            "vm.delete", {"id": instance["instance_id"], "force": True}, timeout=60
        )


async def test_logout_revokes_and_the_next_call_logs_in_again(
    client: Client,
) -> None:
    await client.whoami()
    first = client.token_source.session
    await client.logout()
    assert client.token_source.session is None
    await client.whoami()
    second = client.token_source.session
    assert first is not None and second is not None
    assert first.refresh_token != second.refresh_token


async def test_sessions_are_shared_through_the_store(
    tools_app: Application, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    from formation_mcp.client.session import SessionStore

    store = SessionStore(tmp_path / "sessions.json")
    async with Client(tools_app.grpc.address, key=key, session_store=store) as first:
        token = await first.access_token()
    async with Client(tools_app.grpc.address, key=key, session_store=store) as second:
        assert await second.access_token() == token


async def test_calls_run_concurrently_on_one_client(client: Client) -> None:
    results = await asyncio.gather(
        *(client.tools.call("test.echo", {"text": str(i)}) for i in range(5))
    )
    assert [r.result for r in results] == [{"echo": str(i)} for i in range(5)]


def watch_calls(app: Application) -> float:
    method = "/formation.mcp.v1.OperationsService/WatchOperation"
    value = app.metrics.registry.get_sample_value(
        "fmcp_grpc_calls_total", {"method": method, "code": "OK"}
    )
    return value or 0.0


async def test_call_and_wait_takes_one_call_when_the_work_is_done_within_it(
    client: Client, tools_app: Application
) -> None:
    before = watch_calls(tools_app)
    output = await client.call_and_wait("test.sleep", {"steps": 2, "delay_ms": 1}, timeout=DEADLINE)
    assert output == {"steps": 2}
    assert watch_calls(tools_app) == before  # answered by CallTool's wait, nothing watched


async def test_call_and_wait_reports_progress_from_the_start_after_its_first_wait(
    client: Client,
) -> None:
    seen: list[Operation] = []
    await client.call_and_wait(
        "test.sleep", {"steps": 4, "delay_ms": 400}, on_progress=seen.append, timeout=DEADLINE
    )
    percents = [operation.metadata.progress_percent for operation in seen]
    assert percents[-1] == 100
    assert 25 in percents  # reached in the first wait, delivered all the same


async def test_call_and_wait_with_progress_follows_the_operation(
    client: Client, tools_app: Application
) -> None:
    before = watch_calls(tools_app)
    await client.call_and_wait(
        "test.sleep", {"steps": 2, "delay_ms": 1500}, on_progress=lambda _op: None, timeout=60
    )
    assert watch_calls(tools_app) > before  # the counter this file's one-call test reads
