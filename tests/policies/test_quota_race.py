"""Quotas under concurrency: calls racing for the last slot, on one server and across
replicas sharing PostgreSQL (where only the database can make them take turns)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    policies_pb2,
    policies_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from tests.policies.conftest import Policies, Tools, set_policy
from tests.support.auth import Md
from tests.support.errors import check_refusal
from tests.support.operations import struct
from tests.support.servers import StartApp
from tests.support.workloads import build, output_of, succeed

from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login


def ship(tools: Tools, md: Md, build_id: str, name: str, **config: Any) -> Any:
    arguments: dict[str, Any] = {"build_id": build_id, "instance_name": name}
    if config:
        arguments["vm_config"] = config
    return tools.CallTool(
        tools_pb2.CallToolRequest(name="tools/pack.ship", arguments=struct(arguments)),
        metadata=md,
    )


async def test_ten_simultaneous_ships_with_max_instances_1_start_exactly_one(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, channel: grpc.aio.Channel
) -> None:
    build_id = await build(channel, md)
    await set_policy(policies, admin, account, max_instances=1)
    outcomes = await asyncio.gather(
        *(ship(tools, md, build_id, f"web{n}") for n in range(10)), return_exceptions=True
    )
    admitted = [o for o in outcomes if isinstance(o, lro_pb2.Operation)]
    assert len(admitted) == 1
    for outcome in outcomes:
        if not isinstance(outcome, lro_pb2.Operation):
            error = check_refusal(outcome, grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
            assert "max_instances" in (error.details() or "")
    shipped = output_of(await _wait(channel, md, admitted[0]))
    await _refusal(ship(tools, md, build_id, "again"))  # the live instance still counts
    await succeed(channel, md, "vm.delete", id=shipped["instance_id"], force=True)
    after = await succeed(channel, md, "pack.ship", build_id=build_id, instance_name="after")
    await succeed(channel, md, "vm.delete", id=after["instance_id"], force=True)


async def test_the_resources_of_the_instances_count_against_their_quotas(
    tools: Tools, policies: Policies, admin: Md, md: Md, account: str, channel: grpc.aio.Channel
) -> None:
    build_id = await build(channel, md)
    await set_policy(policies, admin, account, max_vcpus=2, max_memory_mb=4096)
    error = await _refusal(ship(tools, md, build_id, "big", vcpus=3, memory_mb=512, disk_gb=1))
    assert "max_vcpus (3 > 2)" in (error.details() or "")
    error = await _refusal(ship(tools, md, build_id, "fat", vcpus=1, memory_mb=8192, disk_gb=1))
    assert "max_memory_mb" in (error.details() or "")
    policy = await policies.GetEffectivePolicy(
        policies_pb2.GetEffectivePolicyRequest(), metadata=md
    )
    assert {u.quota: u.used for u in policy.usage} == {"max_vcpus": 0, "max_memory_mb": 0}


@pytest.mark.postgres
async def test_replicas_racing_for_the_last_slot_admit_exactly_one(
    start_app: StartApp, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a database on PostgreSQL")
    key = Ed25519PrivateKey.generate()
    first = await start_app(admin_keys=(b64url(public_bytes(key)),))
    second = await start_app()
    async with (
        grpc.aio.insecure_channel(first.grpc.address) as one,
        grpc.aio.insecure_channel(second.grpc.address) as two,
    ):
        admin = bearer((await login(one, key)).access_token)
        user = await login(one, Ed25519PrivateKey.generate())
        md = bearer(user.access_token)
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(one),
            admin,
            user.account.name,
            max_running_operations=1,
        )
        stubs = [tools_pb2_grpc.ToolsServiceStub(one), tools_pb2_grpc.ToolsServiceStub(two)]
        outcomes = await asyncio.gather(
            *(
                stubs[n % 2].CallTool(
                    tools_pb2.CallToolRequest(
                        name="tools/test.sleep", arguments=struct({"steps": 1000, "delay_ms": 50})
                    ),
                    metadata=md,
                )
                for n in range(10)
            ),
            return_exceptions=True,
        )
    admitted = [o for o in outcomes if isinstance(o, lro_pb2.Operation)]
    assert len(admitted) == 1, outcomes
    for outcome in outcomes:
        if not isinstance(outcome, lro_pb2.Operation):
            check_refusal(outcome, grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")


async def _wait(channel: grpc.aio.Channel, md: Md, operation: lro_pb2.Operation) -> Any:
    stub = operations_pb2_grpc.OperationsServiceStub(channel)
    while not operation.done:
        operation = await stub.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), metadata=md
        )
    return operation


async def _refusal(pending: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pending
    return check_refusal(caught.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
