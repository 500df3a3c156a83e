"""The SDK's `client.policies` and `fmcp policy get|set|effective`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.cli import Fmcp

from formation_mcp.app import Application
from formation_mcp.auth.keys import write_private_key
from formation_mcp.client import Client, EffectivePolicy, PermissionDenied, SyncClient


@pytest.fixture
def admin_fmcp(app: Application, admin_key: Ed25519PrivateKey, tmp_path: Path) -> Fmcp:
    key_file = tmp_path / "admin.pem"
    write_private_key(key_file, admin_key)
    return Fmcp(app.grpc.address, key_file, tmp_path / "admin-config")


@pytest.fixture
def user_fmcp(app: Application, tmp_path: Path) -> Fmcp:
    key_file = tmp_path / "user.pem"
    write_private_key(key_file, Ed25519PrivateKey.generate())
    return Fmcp(app.grpc.address, key_file, tmp_path / "user-config")


async def test_the_sdk_updates_reads_and_clears_a_policy(
    app: Application, admin_key: Ed25519PrivateKey, account: str
) -> None:
    async with Client(app.grpc.address, key=admin_key) as admin:
        updated = await admin.policies.update(
            account, deny_tools=["vm.delete"], max_instances=2, tool_calls_per_minute={"vm.*": 5}
        )
        assert updated.deny_tools == ["vm.delete"] and updated.max_instances == 2
        assert updated.tool_calls_per_minute == {"vm.*": 5}
        cleared = await admin.policies.update(account, max_instances=None)
        assert cleared.max_instances is None and cleared.deny_tools == ["vm.delete"]
        assert (await admin.policies.get(account)) == cleared
        assert (await admin.policies.get("roles/viewer")).name == "roles/viewer/policy"


async def test_the_sdk_reads_the_callers_effective_policy_and_lists_allowed_tools(
    app: Application, admin_key: Ed25519PrivateKey
) -> None:
    user_key = Ed25519PrivateKey.generate()
    async with (
        Client(app.grpc.address, key=admin_key) as admin,
        Client(app.grpc.address, key=user_key) as user,
    ):
        me = await user.whoami()
        await admin.policies.update(me.name, deny_tools=["test.echo"], max_running_operations=2)
        effective = await user.policies.effective()
        tools = {tool.name: tool for tool in await user.tools.list()}
        with pytest.raises(PermissionDenied) as caught:
            await user.tools.call("test_echo", {"text": "hi"})
        with pytest.raises(PermissionDenied):
            await user.policies.get(me.name)
    assert effective.policy.deny_tools == ["test.echo"]
    assert [(u.quota, u.limit, u.used) for u in effective.usage] == [
        ("max_running_operations", 2, 0)
    ]
    assert tools["test.echo"].allowed is False and tools["test.read"].allowed is True
    assert caught.value.reason == "POLICY_DENIED"


async def test_the_sync_client_reads_the_effective_policy(
    app: Application, session: auth_pb2.Session
) -> None:
    def script() -> EffectivePolicy:
        with SyncClient(app.grpc.address, token=session.access_token) as client:
            return client.policies.effective()

    effective = await asyncio.to_thread(script)  # the server runs on this test's event loop
    assert effective.policy.name == f"{session.account.name}/policy"


async def test_fmcp_policy_set_get_and_effective(admin_fmcp: Fmcp, user_fmcp: Fmcp) -> None:
    me = json.loads((await user_fmcp("whoami", "-o", "json")).stdout)["name"]
    result = await admin_fmcp(
        "policy",
        "set",
        me,
        "--deny",
        "vm.delete",
        "--max-instances",
        "3",
        "--rate",
        "pack.*=10",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_instances"] == 3
    shown = await admin_fmcp("policy", "get", me)
    assert shown.exit_code == 0 and "vm.delete" in shown.output and "pack.*" in shown.output
    cleared = await admin_fmcp("policy", "set", me, "--clear", "max_instances", "-o", "json")
    assert json.loads(cleared.stdout)["max_instances"] is None
    mine = await user_fmcp("policy", "effective")
    assert mine.exit_code == 0, mine.output
    assert "vm.delete" in mine.output and f"{me}/policy" in mine.output
    refused = await user_fmcp("policy", "get", me)
    assert refused.exit_code != 0 and "PERMISSION_DENIED" in refused.output


async def test_fmcp_policy_set_needs_a_change_and_well_formed_rates(admin_fmcp: Fmcp) -> None:
    assert (await admin_fmcp("policy", "set", "roles/viewer")).exit_code == 2
    bad = await admin_fmcp("policy", "set", "roles/viewer", "--rate", "pack.*")
    assert bad.exit_code == 2 and "PATTERN=N" in bad.output


async def test_fmcp_ops_approve_and_deny(
    admin_fmcp: Fmcp, user_fmcp: Fmcp, app: Application, admin_key: Ed25519PrivateKey
) -> None:
    me = json.loads((await user_fmcp("whoami", "-o", "json")).stdout)["name"]
    await admin_fmcp("policy", "set", me, "--deny", "x.*")
    async with Client(app.grpc.address, key=admin_key) as admin:
        await admin.policies.update(me, require_approval=["test.echo"])
    called = await user_fmcp(
        "call", "test.echo", "--arg", "text=hi", "--reason", "say hi", "--no-wait", "-o", "json"
    )
    assert called.exit_code == 0, called.output
    operation = json.loads(called.stdout)
    assert operation["metadata"]["state"] == "AWAITING_APPROVAL"
    assert operation["metadata"]["approval"]["reason"] == "say hi"
    shown = await admin_fmcp("ops", "approve", operation["name"], "--comment", "ok")
    assert shown.exit_code == 0, shown.output
    assert "APPROVED by accounts/" in shown.output and "(say hi)" in shown.output
    again = await user_fmcp("call", "test.echo", "--arg", "text=bye", "--no-wait", "-o", "json")
    second = json.loads(again.stdout)["name"]
    assert (await admin_fmcp("ops", "deny", second)).exit_code == 2  # --comment is required
    denied = await admin_fmcp("ops", "deny", second, "--comment", "no", "-o", "json")
    assert json.loads(denied.stdout)["metadata"]["approval"]["state"] == "DENIED"
