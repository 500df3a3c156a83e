"""The policy at CallTool over gRPC, and the bypasses a reviewer would try: aliases and
host-safe names, case and whitespace variants, a token older than the rule, validate_only,
concurrent calls racing a quota, a change while calls are in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tests.policies.conftest import Policies, Tools, set_policy
from tests.support.auth import Md
from tests.support.errors import check_refusal, error_info, refused
from tests.support.operations import metadata_of, struct

SLOW: dict[str, Any] = {"steps": 1000, "delay_ms": 50}


def call(tools: Tools, md: Md, name: str, validate_only: bool = False, **arguments: Any) -> Any:
    return tools.CallTool(
        tools_pb2.CallToolRequest(
            name=f"tools/{name}", arguments=struct(arguments), validate_only=validate_only
        ),
        metadata=md,
    )


async def test_a_denied_tool_is_permission_denied_naming_the_rule(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["test.*"])
    error = await refused(
        call(tools, md, "test.echo", text="hi"), grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"
    )
    assert dict(error_info(error).metadata) == {
        "rule": "deny_tools",
        "pattern": "test.*",
        "tool": "test.echo",
        "policy": f"{account}/policy",
    }
    assert "test.echo is denied by the policy" in (error.details() or "")


@pytest.mark.parametrize("called", ["test_echo", "test.echo"])
@pytest.mark.parametrize("denied", ["test.echo", "test_echo", "TEST.ECHO"])
async def test_every_name_of_a_denied_tool_is_denied(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, denied: str, called: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=[denied])
    await refused(
        call(tools, md, called, text="hi"), grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"
    )


@pytest.mark.parametrize("called", ["pack.ship", "form_pack_ship", "pack_ship"])
async def test_the_alias_and_host_safe_name_of_pack_ship_are_denied_too(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, called: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["pack.ship"])
    await refused(
        call(tools, md, called, build_id="a" * 64, instance_name="web"),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )


@pytest.mark.parametrize("called", ["Test.Echo", " test.echo", "test.echo ", "test.echo\t"])
async def test_case_and_whitespace_variants_of_a_denied_name_run_nothing(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, called: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["test.echo"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(tools, md, called, text="hi")
    assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


async def test_an_allow_list_refuses_the_rest(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, allow_tools=["test.read"])
    assert (await call(tools, md, "test.read")).done
    error = await refused(
        call(tools, md, "test_echo", text="hi"), grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"
    )
    assert error_info(error).metadata["rule"] == "allow_tools"


async def test_read_only_applies_to_a_token_issued_before_it_was_set(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    assert (await call(tools, md, "test.echo", text="before")).done
    await set_policy(policies, admin, account, read_only=True)
    error = await refused(
        call(tools, md, "test.echo", text="after"),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )
    assert error_info(error).metadata["rule"] == "read_only"
    assert (await call(tools, md, "test.read")).done


async def test_validate_only_answers_what_the_policy_decides(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["test.echo"])
    await refused(
        call(tools, md, "test.echo", validate_only=True, text="hi"),
        grpc.StatusCode.PERMISSION_DENIED,
        "POLICY_DENIED",
    )


async def test_list_tools_marks_what_the_caller_may_not_call_and_can_hide_it(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["test.echo"])
    listed = await tools.ListTools(tools_pb2.ListToolsRequest(page_size=1000), metadata=md)
    by_name = {tool.name: tool for tool in listed.tools}
    assert by_name["tools/test.echo"].allowed is False
    assert by_name["tools/test.echo"].refusal.startswith("POLICY_DENIED: deny_tools: ")
    assert by_name["tools/test.admin"].allowed is False  # the role, not the policy
    assert by_name["tools/test.read"].allowed is True and by_name["tools/test.read"].refusal == ""
    allowed = await tools.ListTools(
        tools_pb2.ListToolsRequest(filter="allowed = true", page_size=1000), metadata=md
    )
    names = {tool.name for tool in allowed.tools}
    assert "tools/test.read" in names and "tools/test.echo" not in names
    assert "tools/test.admin" not in names
    tool = await tools.GetTool(tools_pb2.GetToolRequest(name="tools/test_echo"), metadata=md)
    assert tool.allowed is False


async def test_calls_over_the_rate_limit_are_exhausted_with_a_retry_delay(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, tool_calls_per_minute={"test.read": 2})
    # A sliding minute: three calls close together are three, whether or not a minute
    # window ends between them.
    outcomes = await _outcomes([call(tools, md, "test.read") for _ in range(3)])
    refusals = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refusals) == 1
    error = check_refusal(refusals[0], grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert error_info(error).metadata["limit"] == "2"
    status = rpc_status.from_call(error)
    assert status is not None
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)


async def test_max_running_operations_refuses_one_more_until_one_ends(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, channel: grpc.aio.Channel
) -> None:
    await set_policy(policies, admin, account, max_running_operations=1)
    first: lro_pb2.Operation = await call(tools, md, "test.sleep", **SLOW)
    error = await refused(
        call(tools, md, "test.sleep", **SLOW),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    info = dict(error_info(error).metadata)
    assert (info["quota"], info["limit"], info["usage"]) == ("max_running_operations", "1", "2")
    await refused(
        call(tools, md, "test.sleep", validate_only=True, **SLOW),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    await operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=first.name), metadata=md
    )
    done = await operations.WaitOperation(
        operations_pb2.WaitOperationRequest(name=first.name), metadata=md
    )
    assert done.done
    second = await call(tools, md, "test.sleep", steps=1, delay_ms=0)
    assert second.name


async def test_ten_concurrent_calls_racing_one_slot_admit_exactly_one(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, max_running_operations=1)
    outcomes = await _outcomes([call(tools, md, "test.sleep", **SLOW) for _ in range(10)])
    admitted = [o for o in outcomes if isinstance(o, lro_pb2.Operation)]
    assert len(admitted) == 1
    for outcome in outcomes:
        if not isinstance(outcome, lro_pb2.Operation):
            check_refusal(outcome, grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert metadata_of(admitted[0]).state in (
        operations_pb2.OperationMetadata.PENDING,
        operations_pb2.OperationMetadata.RUNNING,
    )


async def test_a_change_while_a_call_runs_lets_it_finish_and_refuses_the_next(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, channel: grpc.aio.Channel
) -> None:
    running: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=3, delay_ms=100)
    await set_policy(policies, admin, account, deny_tools=["test.sleep"])
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    done = running
    while not done.done:
        done = await operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=running.name), metadata=md
        )
    assert metadata_of(done).state == operations_pb2.OperationMetadata.SUCCEEDED
    await refused(
        call(tools, md, "test.sleep", steps=1), grpc.StatusCode.PERMISSION_DENIED, "POLICY_DENIED"
    )


async def _outcomes(calls: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))
