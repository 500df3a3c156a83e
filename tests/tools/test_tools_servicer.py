"""ListTools, GetTool and CallTool over real gRPC (every database, every broker)."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import TypeAlias

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    auth_pb2,
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import code_pb2
from tests.support.auth import Md, server_token
from tests.support.errors import error_info, field_violations
from tests.support.latency import LOOP_STALL_LIMIT, cheap_calls_during
from tests.support.operations import metadata_of, output_of, struct
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.db.schema import audit_log
from formation_mcp.structs import struct_to_dict

Tools: TypeAlias = "tools_pb2_grpc.ToolsServiceAsyncStub"
Operations: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"
State = operations_pb2.OperationMetadata


async def call(stub: Tools, md: Md, tool: str, **arguments: object) -> lro_pb2.Operation:
    return await stub.CallTool(
        tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)), metadata=md
    )


async def test_list_tools_is_sorted_by_name(tools_stub: Tools, as_account: Md) -> None:
    response = await tools_stub.ListTools(tools_pb2.ListToolsRequest(), metadata=as_account)
    names = [tool.name for tool in response.tools]
    assert names == sorted(names)
    assert "tools/test.echo" in names


async def test_list_tools_filters_by_category_and_pages(tools_stub: Tools, as_account: Md) -> None:
    first = await tools_stub.ListTools(
        tools_pb2.ListToolsRequest(filter='category = "test"', page_size=2), metadata=as_account
    )
    rest = await tools_stub.ListTools(
        tools_pb2.ListToolsRequest(filter='category = "test"', page_token=first.next_page_token),
        metadata=as_account,
    )
    tools = [*first.tools, *rest.tools]
    assert len(first.tools) == 2 and rest.next_page_token == ""
    assert {tool.category for tool in tools} == {"test"}
    assert "tools/test.read" not in {tool.name for tool in tools}


async def test_a_bad_tools_filter_is_invalid(tools_stub: Tools, as_account: Md) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_stub.ListTools(
            tools_pb2.ListToolsRequest(filter="owner = x"), metadata=as_account
        )
    assert field_violations(caught.value) == ["filter"]


async def test_get_tool_describes_schemas_annotations_and_permission(
    tools_stub: Tools, as_account: Md
) -> None:
    tool = await tools_stub.GetTool(
        tools_pb2.GetToolRequest(name="tools/test.sleep"), metadata=as_account
    )
    assert tool.annotations.long_running and not tool.annotations.read_only
    assert tool.permission == "tools.test.sleep"
    assert struct_to_dict(tool.input_schema)["properties"]["steps"]["type"] == "integer"


async def test_get_tool_resolves_an_alias(tools_stub: Tools, as_account: Md) -> None:
    tool = await tools_stub.GetTool(
        tools_pb2.GetToolRequest(name="tools/test_echo"), metadata=as_account
    )
    assert tool.name == "tools/test.echo" and list(tool.aliases) == ["test_echo"]


async def test_an_unknown_tool_is_not_found(tools_stub: Tools, as_account: Md) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_stub.GetTool(tools_pb2.GetToolRequest(name="tools/nope"), metadata=as_account)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "TOOL_NOT_FOUND"


async def test_a_quick_tool_returns_a_done_operation_with_its_output(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    operation = await call(tools_stub, as_account, "test.echo", text="ab", count=2)
    assert operation.done and output_of(operation) == {"echo": "abab"}
    stored = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=operation.name),
        metadata=as_account,
    )
    assert metadata_of(stored).state == State.SUCCEEDED


async def test_every_schema_violation_is_reported_and_nothing_is_started(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, as_account, "test.echo", text="x" * 101, count="3", extra=True)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "ARGUMENTS_INVALID"
    assert sorted(field_violations(caught.value)) == [
        "arguments",
        "arguments.count",
        "arguments.text",
    ]
    listed = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=as_account
    )
    assert list(listed.operations) == []


async def test_validate_only_validates_and_starts_nothing(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    operation = await tools_stub.CallTool(
        tools_pb2.CallToolRequest(
            name="tools/test.sleep", arguments=struct({"steps": 2}), validate_only=True
        ),
        metadata=as_account,
    )
    listed = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=as_account
    )
    assert operation.done and operation.name == ""
    assert list(listed.operations) == []


@pytest.mark.parametrize("tool", ["test.echo", "test.sleep"])
async def test_the_same_request_id_returns_the_original_operation(
    tools_stub: Tools, as_account: Md, tool: str
) -> None:
    arguments = {"text": "hi"} if tool == "test.echo" else {"steps": 1}
    request = tools_pb2.CallToolRequest(
        name=f"tools/{tool}", arguments=struct(arguments), request_id=str(uuid.uuid4())
    )
    first, second = await asyncio.gather(
        tools_stub.CallTool(request, metadata=as_account),
        tools_stub.CallTool(request, metadata=as_account),
    )
    assert first.name == second.name != ""


async def test_a_request_id_reused_for_another_tool_is_invalid(
    tools_stub: Tools, as_account: Md
) -> None:
    request_id = str(uuid.uuid4())
    await tools_stub.CallTool(
        tools_pb2.CallToolRequest(
            name="tools/test.echo", arguments=struct({"text": "a"}), request_id=request_id
        ),
        metadata=as_account,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_stub.CallTool(
            tools_pb2.CallToolRequest(name="tools/test.sleep", request_id=request_id),
            metadata=as_account,
        )
    assert field_violations(caught.value) == ["request_id"]


async def test_a_long_running_tool_goes_pending_running_succeeded_with_progress(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    pending = await call(tools_stub, as_account, "test.sleep", steps=4, delay_ms=20)
    assert not pending.done
    assert metadata_of(pending).state == State.PENDING
    watch = operations_stub.WatchOperation(
        operations_pb2.WatchOperationRequest(name=pending.name),
        metadata=as_account,
    )
    seen = []
    async with asyncio.timeout(DEADLINE):
        async for operation in watch:
            seen.append(operation)
    states = [metadata_of(op).state for op in seen]
    assert State.RUNNING in states and states[-1] == State.SUCCEEDED
    assert [p for p in (metadata_of(op).progress_percent for op in seen) if p][:4] == [
        25,
        25,
        50,
        50,
    ] or 100 in [metadata_of(op).progress_percent for op in seen]
    assert output_of(seen[-1]) == {"steps": 4}


async def test_a_failing_tool_ends_failed_with_its_error(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    pending = await call(tools_stub, as_account, "test.fail")
    final = await operations_stub.WaitOperation(
        operations_pb2.WaitOperationRequest(name=pending.name),
        metadata=as_account,
        timeout=DEADLINE,
    )
    assert final.done and final.error.code == code_pb2.FAILED_PRECONDITION
    assert "failed on purpose" in final.error.message


async def test_cancel_stops_a_running_tool(
    tools_stub: Tools, operations_stub: Operations, as_account: Md
) -> None:
    pending = await call(tools_stub, as_account, "test.sleep", steps=1000, delay_ms=50)
    name = pending.name
    watch = operations_stub.WatchOperation(
        operations_pb2.WatchOperationRequest(name=name), metadata=as_account
    )
    async with asyncio.timeout(DEADLINE):
        async for operation in watch:
            if metadata_of(operation).progress_percent > 0:
                await operations_stub.CancelOperation(
                    operations_pb2.CancelOperationRequest(name=name), metadata=as_account
                )
            if operation.done:
                break
    assert operation.error.code == code_pb2.CANCELLED
    assert metadata_of(operation).state == State.CANCELLED


async def test_every_call_is_audited(
    app: Application, tools_stub: Tools, account: str, as_account: Md
) -> None:
    operation = await call(tools_stub, as_account, "test.echo", text="audit me")
    with pytest.raises(grpc.aio.AioRpcError):
        await call(tools_stub, as_account, "test.echo", text=5)
    async with app.database.read() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.tool, audit_log.c.outcome, audit_log.c.operation_id)
                .where(audit_log.c.account == account)
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [(r.tool, r.outcome) for r in rows] == [
        ("test.echo", "SUCCEEDED"),
        ("test.echo", "INVALID"),
    ]
    assert rows[0].operation_id == operation.name.split("/")[1]


async def test_admin_only_tools_are_refused_to_users(tools_stub: Tools, as_account: Md) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, as_account, "test.admin")
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    info = error_info(caught.value)
    assert (info.reason, info.metadata["permission"]) == ("MISSING_PERMISSION", "tools.test.admin")


async def test_a_viewer_may_call_read_only_tools_only(
    app: Application, channel: grpc.aio.Channel, tools_stub: Tools
) -> None:
    key = Ed25519PrivateKey.generate()
    user = await login(channel, key)
    await app.accounts.update(auth_pb2.Account(name=user.account.name, roles=["viewer"]), ["roles"])
    viewer = bearer((await login(channel, key)).access_token)
    read = await call(tools_stub, viewer, "test.read")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, viewer, "test.echo", text="no")
    assert read.done and output_of(read) == {"value": 42}
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


# -- bounded arguments ---------------------------------------------------------------------


def nested(levels: int) -> object:
    value: object = "bottom"
    for _ in range(levels):
        value = [value]
    return value


async def test_arguments_nested_too_deeply_are_invalid_naming_the_path(
    tools_stub: Tools, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, as_account, "test.echo", text=nested(40))

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["arguments.text" + "[0]" * 32]  # the 33rd level
    assert "nested too deeply (more than 32 objects and lists)" in (caught.value.details() or "")


async def test_arguments_with_too_many_values_are_resource_exhausted(
    tools_stub: Tools, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, as_account, "test.echo", text=["x"] * 20_000)

    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(caught.value).reason == "ARGUMENTS_TOO_LARGE"
    assert field_violations(caught.value) == ["arguments.text"]


async def test_a_number_that_is_not_finite_is_invalid(tools_stub: Tools, as_account: Md) -> None:
    request = tools_pb2.CallToolRequest(name="tools/test.echo")
    request.arguments.fields["text"].string_value = "hi"
    request.arguments.fields["count"].number_value = math.nan

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_stub.CallTool(request, metadata=as_account)

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["arguments.count"]


async def test_a_call_of_200_000_values_is_refused_without_holding_up_other_calls(
    tools_stub: Tools, channel: grpc.aio.Channel, as_account: Md
) -> None:
    files = {str(n): "x" for n in range(200_000)}  # about 3 MB: within the message size limit
    # Built beforehand: the client shares the event loop with the server here.
    request = tools_pb2.CallToolRequest(
        name="tools/pack.build",
        arguments=struct({"formfile": "NAME x\n", "context_files": files}),
    )
    refused, loop = await cheap_calls_during(
        tools_stub.CallTool(request, metadata=as_account), channel, as_account
    )

    assert loop.longest_stall < LOOP_STALL_LIMIT, loop
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_read_only_grant_calls_read_only_tools_only(
    app: Application, tools_stub: Tools, account: str
) -> None:
    """The token's scope, not the role, refuses the call, and says so (SCOPE_INSUFFICIENT);
    the refusal is audited like any other."""
    read_only = bearer(server_token(app, account, scope="read-only"))
    assert output_of(await call(tools_stub, read_only, "test.read")) is not None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools_stub, read_only, "test.echo", text="no")
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    info = error_info(caught.value)
    assert (info.reason, info.metadata["scope"], info.metadata["tool"]) == (
        "SCOPE_INSUFFICIENT",
        "read-only",
        "test.echo",
    )
    async with app.database.read() as conn:
        outcomes = (
            await conn.execute(
                sa.select(audit_log.c.tool, audit_log.c.outcome).where(
                    audit_log.c.account == account
                )
            )
        ).all()
    assert ("test.echo", "DENIED") in [(r.tool, r.outcome) for r in outcomes]
