"""PoliciesService over gRPC: admins get and update policies (field masks, audited); every
caller reads what applies to it; a change reaches another server within a second."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import policies_pb2, policies_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf import field_mask_pb2
from tests.policies.conftest import Policies, set_policy
from tests.support.auth import Md
from tests.support.errors import error_info, refused
from tests.support.operations import struct
from tests.support.servers import StartApp
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login
from formation_mcp.db.schema import audit_log

ECHO = struct({"text": "x"})


async def test_a_policy_never_set_is_empty(policies: Policies, admin: Md, account: str) -> None:
    policy = await policies.GetPolicy(
        policies_pb2.GetPolicyRequest(name=f"{account}/policy"), metadata=admin
    )
    assert policy == policies_pb2.Policy(name=f"{account}/policy")


async def test_update_returns_the_new_policy_and_get_reads_it(
    policies: Policies, admin: Md, account: str
) -> None:
    updated = await set_policy(
        policies, admin, account, deny_tools=["vm.delete"], max_instances=2, read_only=True
    )
    assert list(updated.deny_tools) == ["vm.delete"] and updated.max_instances == 2
    assert updated.read_only is True and updated.update_account.startswith("accounts/")
    read = await policies.GetPolicy(
        policies_pb2.GetPolicyRequest(name=f"{account}/policy"), metadata=admin
    )
    assert read == updated


async def test_a_masked_update_keeps_the_other_fields(
    policies: Policies, admin: Md, account: str
) -> None:
    await set_policy(policies, admin, account, deny_tools=["vm.delete"], max_instances=2)
    updated = await set_policy(policies, admin, account, max_instances=5)
    assert list(updated.deny_tools) == ["vm.delete"] and updated.max_instances == 5


async def test_a_field_in_the_mask_but_unset_is_cleared(
    policies: Policies, admin: Md, account: str
) -> None:
    await set_policy(policies, admin, account, max_instances=2)
    updated = await policies.UpdatePolicy(
        policies_pb2.UpdatePolicyRequest(
            policy=policies_pb2.Policy(name=f"{account}/policy"),
            update_mask=field_mask_pb2.FieldMask(paths=["max_instances"]),
        ),
        metadata=admin,
    )
    assert not updated.HasField("max_instances")


async def test_every_update_is_audited(
    policies: Policies, admin: Md, account: str, app: Application
) -> None:
    await set_policy(policies, admin, account, deny_tools=["vm.*"])
    async with app.database.read() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log).where(
                    audit_log.c.tool == "PoliciesService.UpdatePolicy",
                    audit_log.c.detail == f"{account}/policy: deny_tools",
                )
            )
        ).all()
    assert len(rows) == 1 and rows[0].outcome == "UPDATED"


async def test_a_user_may_not_read_or_change_policies(
    policies: Policies, md: Md, account: str
) -> None:
    await refused(
        policies.GetPolicy(policies_pb2.GetPolicyRequest(name=f"{account}/policy"), metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )
    await refused(
        set_policy(policies, md, account, read_only=False),
        grpc.StatusCode.PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )


async def test_a_bad_pattern_is_invalid_naming_the_field(
    policies: Policies, admin: Md, account: str
) -> None:
    error = await refused(
        set_policy(policies, admin, account, deny_tools=["vm.delete", "vm delete"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert "policy.deny_tools[1]" in (error.details() or "")


async def test_a_policy_of_an_unknown_role_is_invalid(policies: Policies, admin: Md) -> None:
    await refused(
        policies.GetPolicy(policies_pb2.GetPolicyRequest(name="roles/root/policy"), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )


async def test_the_effective_policy_shows_the_rules_and_the_usage(
    policies: Policies, admin: Md, md: Md, account: str
) -> None:
    await set_policy(policies, admin, account, max_running_operations=3, deny_tools=["vm.*"])
    effective = await policies.GetEffectivePolicy(
        policies_pb2.GetEffectivePolicyRequest(), metadata=md
    )
    assert effective.policy.name == f"{account}/policy"
    assert list(effective.policy.deny_tools) == ["vm.*"]
    assert f"{account}/policy" in effective.sources
    assert [(u.quota, u.limit, u.used) for u in effective.usage] == [
        ("max_running_operations", 3, 0)
    ]


async def test_a_role_default_applies_to_accounts_of_that_role(start_app: StartApp) -> None:
    key = Ed25519PrivateKey.generate()
    application = await start_app(admin_keys=(b64url(public_bytes(key)),))
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        admin = bearer((await login(channel, key)).access_token)
        stub = policies_pb2_grpc.PoliciesServiceStub(channel)
        user = await login(channel, Ed25519PrivateKey.generate())
        try:
            await set_policy(stub, admin, "roles/user", max_instances=1, deny_tools=["vm.delete"])
            effective = await stub.GetEffectivePolicy(
                policies_pb2.GetEffectivePolicyRequest(), metadata=bearer(user.access_token)
            )
        finally:  # the database may be shared with other tests' servers
            await stub.UpdatePolicy(
                policies_pb2.UpdatePolicyRequest(
                    policy=policies_pb2.Policy(name="roles/user/policy")
                ),
                metadata=admin,
            )
    assert effective.policy.max_instances == 1
    assert list(effective.policy.deny_tools) == ["vm.delete"]
    assert list(effective.sources) == ["roles/user/policy"]


@pytest.mark.postgres
async def test_another_server_applies_a_change_within_a_second(
    start_app: StartApp, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("servers share changes through PostgreSQL (SQLite is one process)")
    key = Ed25519PrivateKey.generate()
    first = await start_app(admin_keys=(b64url(public_bytes(key)),))
    second = await start_app(run_worker=False)
    async with (
        grpc.aio.insecure_channel(first.grpc.address) as one,
        grpc.aio.insecure_channel(second.grpc.address) as two,
    ):
        admin = bearer((await login(one, key)).access_token)
        user = await login(two, Ed25519PrivateKey.generate())
        await set_policy(
            policies_pb2_grpc.PoliciesServiceStub(one),
            admin,
            user.account.name,
            deny_tools=["test.echo"],
        )
        tools = tools_pb2_grpc.ToolsServiceStub(two)

        async def denied_there() -> bool:
            try:
                await tools.CallTool(
                    tools_pb2.CallToolRequest(name="tools/test.echo", arguments=ECHO),
                    metadata=bearer(user.access_token),
                )
            except grpc.aio.AioRpcError as error:
                return bool(error_info(error).reason == "POLICY_DENIED")
            return False

        await eventually(denied_there, deadline=1.0)
