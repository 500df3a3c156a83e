"""Human approval: a call of a tool the policy names in `require_approval` waits
AWAITING_APPROVAL; an approver (never the caller) approves it (it runs) or denies it; it expires;
it can be cancelled while it waits. The bypasses: approving your own call, a finished one,
someone else's unrelated one, a non-approver approving, a reused request_id."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeAlias

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    auth_pb2,
    events_pb2,
    events_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    policies_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from google.rpc import code_pb2
from tests.policies.conftest import Policies, Tools, set_policy
from tests.support.auth import Md
from tests.support.errors import refused
from tests.support.operations import metadata_of, output_of, struct
from tests.support.servers import StartApp
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login

State = operations_pb2.OperationMetadata
Ops: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"


@pytest.fixture
def ops(channel: grpc.aio.Channel) -> Ops:
    return operations_pb2_grpc.OperationsServiceStub(channel)


def call(
    tools: Tools, md: Md, name: str, reason: str = "", reason_argument: str = "", **arguments: Any
) -> Any:
    """CallTool; `reason` as the request's field, `reason_argument` as the `reason` argument."""
    given = {**arguments, **({"reason": reason_argument} if reason_argument else {})}
    return tools.CallTool(
        tools_pb2.CallToolRequest(name=f"tools/{name}", arguments=struct(given), reason=reason),
        metadata=md,
    )


async def finished(ops: Ops, md: Md, name: str) -> lro_pb2.Operation:
    operation: lro_pb2.Operation = await ops.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=md
    )
    while not operation.done:
        operation = await ops.WaitOperation(
            operations_pb2.WaitOperationRequest(name=name), metadata=md
        )
    return operation


async def test_a_call_waits_then_runs_once_approved(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sle*"])
    waiting: lro_pb2.Operation = await call(
        tools, md, "test_sleep", reason="nightly job", steps=1, delay_ms=0
    )
    meta = metadata_of(waiting)
    assert meta.state == State.AWAITING_APPROVAL and not waiting.done
    assert meta.status_message == (
        f"test.sleep needs approval (require_approval: test.sle*); {waiting.name} waits for "
        "an approver"
    )
    assert (meta.approval.state, meta.approval.reason) == (
        operations_pb2.Approval.REQUESTED,
        "nightly job",
    )
    assert json_format.MessageToDict(meta.approval.arguments) == {"steps": 1, "delay_ms": 0}
    assert len(meta.approval.arguments_sha256) == 64 and not meta.approval.arguments_truncated
    listed = await ops.ListOperations(
        operations_pb2.ListOperationsRequest(filter="state = AWAITING_APPROVAL"), metadata=md
    )
    assert [o.name for o in listed.operations] == [waiting.name]
    approved = await ops.ApproveOperation(
        operations_pb2.ApproveOperationRequest(name=waiting.name, comment="ok"), metadata=admin
    )
    assert metadata_of(approved).state in (State.PENDING, State.RUNNING, State.SUCCEEDED)
    done = await finished(ops, md, waiting.name)
    assert metadata_of(done).state == State.SUCCEEDED
    assert metadata_of(done).approval.state == operations_pb2.Approval.APPROVED
    assert metadata_of(done).approval.decided_by.startswith("accounts/")
    assert output_of(done) == {"steps": 1}


async def test_big_arguments_are_left_out_of_the_request_an_approver_reads(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["pack.build"])
    waiting: lro_pb2.Operation = await call(
        tools, md, "pack.build", formfile="NAME big\n", context_files={"a.txt": "x" * 5000}
    )
    approval = metadata_of(waiting).approval
    assert approval.arguments_truncated and not approval.HasField("arguments")
    assert len(approval.arguments_sha256) == 64


async def test_a_quick_tool_that_needs_approval_runs_on_a_worker_once_approved(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test_echo"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.echo", text="later")
    assert metadata_of(waiting).state == State.AWAITING_APPROVAL
    await ops.ApproveOperation(
        operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
    )
    assert output_of(await finished(ops, md, waiting.name)) == {"echo": "later"}


async def test_a_denied_call_fails_permission_denied_with_the_comment(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    await refused(
        ops.DenyOperation(operations_pb2.DenyOperationRequest(name=waiting.name), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    denied = await ops.DenyOperation(
        operations_pb2.DenyOperationRequest(name=waiting.name, comment="not tonight"),
        metadata=admin,
    )
    assert denied.done and denied.error.code == code_pb2.PERMISSION_DENIED
    assert denied.error.message.endswith(": not tonight")
    await refused(
        ops.ApproveOperation(
            operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "OPERATION_NOT_AWAITING_APPROVAL",
    )


async def test_a_call_cancelled_while_it_waits_is_cancelled_and_cannot_be_approved(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    cancelled = await ops.CancelOperation(
        operations_pb2.CancelOperationRequest(name=waiting.name), metadata=md
    )
    assert metadata_of(cancelled).state == State.CANCELLED
    await refused(
        ops.ApproveOperation(
            operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "OPERATION_NOT_AWAITING_APPROVAL",
    )


async def test_a_user_cannot_approve_and_nobody_approves_their_own_call(
    tools: Tools,
    policies: Policies,
    ops: Ops,
    admin: Md,
    md: Md,
    account: str,
    channel: grpc.aio.Channel,
) -> None:
    other = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    for stranger in (md, other):
        await refused(
            ops.ApproveOperation(
                operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=stranger
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "MISSING_PERMISSION",
        )
    assert metadata_of(await finished_or_now(ops, md, waiting.name)).state == (
        State.AWAITING_APPROVAL
    )


async def test_an_admin_cannot_approve_its_own_call(
    tools: Tools, policies: Policies, ops: Ops, admin: Md
) -> None:
    me = admin_account(admin)
    await set_policy(policies, admin, me, require_approval=["test.sleep"])
    try:
        waiting: lro_pb2.Operation = await call(tools, admin, "test.sleep", steps=1)
        await refused(
            ops.ApproveOperation(
                operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "SELF_APPROVAL",
        )
    finally:
        await set_policy(policies, admin, me, require_approval=[])


async def test_an_approver_sees_no_unrelated_or_finished_operation_of_others(
    start_app: StartApp,
) -> None:
    admin_key = Ed25519PrivateKey.generate()
    application = await start_app(admin_keys=(b64url(public_bytes(admin_key)),))
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        admin, approver_account, approver, user = await _parties(application, channel, admin_key)
        md = bearer(user.access_token)
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        plain: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
        await refused(
            ops.ApproveOperation(
                operations_pb2.ApproveOperationRequest(name=plain.name), metadata=approver
            ),
            grpc.StatusCode.NOT_FOUND,
            "OPERATION_NOT_FOUND",
        )
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(channel),
            admin,
            user.account.name,
            require_approval=["test.sleep"],
        )
        waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
        mine = operations_pb2.ListOperationsRequest(filter="awaiting_my_approval = true")
        listed = await ops.ListOperations(mine, metadata=approver)
        await refused(
            ops.ListOperations(mine, metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        )
        approved = await ops.ApproveOperation(
            operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=approver
        )
    names = [o.name for o in listed.operations]  # other tests' calls may wait in this database
    assert waiting.name in names and plain.name not in names
    assert {metadata_of(o).state for o in listed.operations} == {State.AWAITING_APPROVAL}
    assert approver_account not in {metadata_of(o).owner for o in listed.operations}
    assert metadata_of(approved).approval.decided_by == approver_account


async def test_an_unapproved_call_expires_deadline_exceeded(start_app: StartApp) -> None:
    admin_key = Ed25519PrivateKey.generate()
    application = await start_app(
        admin_keys=(b64url(public_bytes(admin_key)),), approval_ttl_seconds=0.5
    )
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        admin = bearer((await login(channel, admin_key)).access_token)
        user = await login(channel, Ed25519PrivateKey.generate())
        md = bearer(user.access_token)
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(channel),
            admin,
            user.account.name,
            require_approval=["*"],
        )
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        waiting: lro_pb2.Operation = await call(tools, md, "test.echo", text="x")
        expired = await finished(ops, md, waiting.name)
    assert expired.error.code == code_pb2.DEADLINE_EXCEEDED
    assert metadata_of(expired).approval.state == operations_pb2.Approval.EXPIRED


async def test_validate_only_says_the_call_would_wait(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.echo"])
    answer = await tools.CallTool(
        tools_pb2.CallToolRequest(
            name="tools/test.echo", arguments=struct({"text": "x"}), validate_only=True
        ),
        metadata=md,
    )
    assert "would wait for an approval (require_approval: test.echo)" in (
        metadata_of(answer).status_message
    )


async def test_a_reused_request_id_with_other_arguments_gets_the_approved_call(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.echo"])
    first = await tools.CallTool(
        tools_pb2.CallToolRequest(
            name="tools/test.echo", arguments=struct({"text": "approved"}), request_id="r-1"
        ),
        metadata=md,
    )
    await ops.ApproveOperation(
        operations_pb2.ApproveOperationRequest(name=first.name), metadata=admin
    )
    again = await tools.CallTool(
        tools_pb2.CallToolRequest(
            name="tools/test.echo", arguments=struct({"text": "other"}), request_id="r-1"
        ),
        metadata=md,
    )
    assert again.name == first.name
    assert output_of(await finished(ops, md, first.name)) == {"echo": "approved"}


async def test_watch_shows_the_wait_then_the_run(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    states: list[int] = []
    stream = ops.WatchOperation(
        operations_pb2.WatchOperationRequest(name=waiting.name), metadata=md
    )

    async def approve_after_first() -> bool:
        return bool(states)

    async for operation in stream:
        states.append(metadata_of(operation).state)
        if len(states) == 1:
            await eventually(approve_after_first)
            await ops.ApproveOperation(
                operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
            )
    assert states[0] == State.AWAITING_APPROVAL and states[-1] == State.SUCCEEDED
    assert State.PENDING in states


async def finished_or_now(ops: Ops, md: Md, name: str) -> lro_pb2.Operation:
    operation: lro_pb2.Operation = await ops.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=md
    )
    return operation


def admin_account(admin: Md) -> str:
    token = admin[0][1].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def _parties(
    application: Application, channel: grpc.aio.Channel, admin_key: Ed25519PrivateKey
) -> tuple[Md, str, Md, auth_pb2.Session]:
    """The admin's credentials; an approver's account and credentials (an account given the
    approver role, signed in again to carry it); a new user's session."""
    admin = bearer((await login(channel, admin_key)).access_token)
    approver_key = Ed25519PrivateKey.generate()
    approver_account = (await login(channel, approver_key)).account.name
    await application.accounts.update(_account(approver_account, ["user", "approver"]), ["roles"])
    approver = bearer((await login(channel, approver_key)).access_token)
    user = await login(channel, Ed25519PrivateKey.generate())
    return admin, approver_account, approver, user


def _account(name: str, roles: list[str]) -> auth_pb2.Account:
    return auth_pb2.Account(name=name, roles=roles)


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_approved_work_runs_on_a_separate_worker_through_rabbitmq(
    start_app: StartApp, database_url: str, rabbitmq_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("an API and a separate worker share PostgreSQL")
    shared = {"broker_url": rabbitmq_url, "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}"}
    admin_key = Ed25519PrivateKey.generate()
    api = await start_app(run_worker=False, admin_keys=(b64url(public_bytes(admin_key)),), **shared)
    worker = await start_app(**shared)  # its in-process worker is the only one
    await asyncio.wait_for(worker.broker_ready.wait(), 30)
    async with grpc.aio.insecure_channel(api.grpc.address) as channel:
        admin = bearer((await login(channel, admin_key)).access_token)
        user = await login(channel, Ed25519PrivateKey.generate())
        md = bearer(user.access_token)
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(channel),
            admin,
            user.account.name,
            require_approval=["test.sleep"],
        )
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=2, delay_ms=10)
        assert metadata_of(waiting).state == State.AWAITING_APPROVAL
        await ops.ApproveOperation(
            operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
        )
        done = await finished(ops, md, waiting.name)
    assert metadata_of(done).state == State.SUCCEEDED and output_of(done) == {"steps": 2}


async def test_a_call_its_policy_denies_while_it_waits_cannot_be_approved(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    await set_policy(policies, admin, account, deny_tools=["test.sleep"])
    await refused(
        ops.ApproveOperation(
            operations_pb2.ApproveOperationRequest(name=waiting.name), metadata=admin
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "POLICY_CHANGED",
    )
    denied = await ops.DenyOperation(
        operations_pb2.DenyOperationRequest(name=waiting.name, comment="policy changed"),
        metadata=admin,
    )
    assert denied.error.code == code_pb2.PERMISSION_DENIED


async def approval_events(channel: grpc.aio.Channel, md: Md, operation: str) -> list[Any]:
    """(type, data) of the operation's approval events, oldest first."""
    listed = await events_pb2_grpc.EventsServiceStub(channel).ListEvents(
        events_pb2.ListEventsRequest(filter=f'resource = "{operation}"'), metadata=md
    )
    return [
        (event.type, json_format.MessageToDict(event.data))
        for event in reversed(listed.events)
        if "approv" in event.type or event.type == "operation.denied"
    ]


async def test_a_request_and_its_approval_are_events_of_the_operation(
    tools: Tools,
    policies: Policies,
    ops: Ops,
    admin: Md,
    md: Md,
    account: str,
    channel: grpc.aio.Channel,
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", reason="why not", steps=1)
    requested = await approval_events(channel, md, waiting.name)
    await ops.ApproveOperation(
        operations_pb2.ApproveOperationRequest(name=waiting.name, comment="fine"), metadata=admin
    )
    await finished(ops, md, waiting.name)

    told = await approval_events(channel, md, waiting.name)
    assert [kind for kind, _ in requested] == ["operation.approval_requested"]
    assert requested[0][1]["rule"] == "test.sleep" and requested[0][1]["reason"] == "why not"
    assert [kind for kind, _ in told] == ["operation.approval_requested", "operation.approved"]
    assert told[1][1]["comment"] == "fine" and told[1][1]["decided_by"].startswith("accounts/")


async def test_a_denial_is_an_event_of_the_operation(
    tools: Tools,
    policies: Policies,
    ops: Ops,
    admin: Md,
    md: Md,
    account: str,
    channel: grpc.aio.Channel,
) -> None:
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
    await ops.DenyOperation(
        operations_pb2.DenyOperationRequest(name=waiting.name, comment="not tonight"),
        metadata=admin,
    )

    told = await approval_events(channel, md, waiting.name)
    assert [kind for kind, _ in told] == ["operation.approval_requested", "operation.denied"]
    assert told[1][1]["comment"] == "not tonight"


async def test_the_reason_may_come_as_an_argument_every_tool_accepts(
    tools: Tools, policies: Policies, ops: Ops, admin: Md, md: Md, account: str
) -> None:
    """As MCP callers give it: the `reason` argument is the call's, not the tool's."""
    await set_policy(policies, admin, account, require_approval=["test.sleep"])
    waiting: lro_pb2.Operation = await call(
        tools, md, "test.sleep", steps=1, delay_ms=0, reason_argument="the nightly run"
    )
    meta = metadata_of(waiting)
    assert meta.approval.reason == "the nightly run"
    assert json_format.MessageToDict(meta.approval.arguments) == {"steps": 1, "delay_ms": 0}
    await ops.ApproveOperation(
        operations_pb2.ApproveOperationRequest(name=waiting.name, comment="ok"), metadata=admin
    )
    assert output_of(await finished(ops, md, waiting.name)) == {"steps": 1}


async def test_an_approver_reads_a_held_call_of_another_but_cannot_cancel_it(
    start_app: StartApp,
) -> None:
    admin_key = Ed25519PrivateKey.generate()
    application = await start_app(admin_keys=(b64url(public_bytes(admin_key)),))
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        admin, _approver_account, approver, user = await _parties(application, channel, admin_key)
        md = bearer(user.access_token)
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        plain: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(channel),
            admin,
            user.account.name,
            require_approval=["test.sleep"],
        )
        waiting: lro_pb2.Operation = await call(tools, md, "test.sleep", steps=1)

        read = await ops.GetOperation(
            operations_pb2.GetOperationRequest(name=waiting.name), metadata=approver
        )
        await refused(
            ops.GetOperation(
                operations_pb2.GetOperationRequest(name=plain.name), metadata=approver
            ),
            grpc.StatusCode.NOT_FOUND,
            "OPERATION_NOT_FOUND",
        )
        await refused(
            ops.CancelOperation(
                operations_pb2.CancelOperationRequest(name=waiting.name), metadata=approver
            ),
            grpc.StatusCode.NOT_FOUND,
            "OPERATION_NOT_FOUND",
        )
    assert metadata_of(read).state == State.AWAITING_APPROVAL
