"""The same policy at the other front doors: REST through Envoy (PoliciesService and CallTool)
and MCP over Streamable HTTP (by the tool's name and its host-safe name)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from tests.mcp_server.mcp_tokens import mcp_token
from tests.policies.conftest import Policies, set_policy
from tests.support.auth import Md
from tests.support.envoy import assert_error, auth, details, url
from tests.support.mcp import LEGACY, http_client, operation_of, text_of

from formation_mcp.app import Application
from formation_mcp.auth.keys import account_name, key_id, public_bytes, write_private_key
from formation_mcp.client.auth import login


@pytest.fixture
async def client(envoy: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=envoy) as http:
        yield http


@pytest.fixture
def admin_token(admin: Md) -> str:
    return admin[0][1].removeprefix("Bearer ")


async def test_an_admin_sets_and_reads_a_policy_over_rest(
    client: httpx.AsyncClient, admin_token: str, account: str
) -> None:
    response = await client.patch(
        url(f"/v1/{account}/policy", update_mask="deny_tools,max_instances"),
        json={"deny_tools": ["vm.delete"], "max_instances": 3},
        headers=auth(admin_token),
    )
    assert response.status_code == 200, response.text
    assert response.json()["deny_tools"] == ["vm.delete"]
    assert response.json()["max_instances"] == 3
    read = await client.get(f"/v1/{account}/policy", headers=auth(admin_token))
    assert read.status_code == 200 and read.json()["max_instances"] == 3
    role = await client.get("/v1/roles/viewer/policy", headers=auth(admin_token))
    assert role.status_code == 200 and role.json()["name"] == "roles/viewer/policy"


async def test_an_unknown_field_in_a_policy_body_is_400_naming_it(
    client: httpx.AsyncClient, admin_token: str, account: str
) -> None:
    response = await client.patch(
        f"/v1/{account}/policy", json={"deny_tool": ["vm.delete"]}, headers=auth(admin_token)
    )
    assert response.status_code == 400 and "deny_tool" in response.text


async def test_a_caller_reads_its_effective_policy_over_rest(
    client: httpx.AsyncClient, policies: Policies, admin: Md, session: auth_pb2.Session
) -> None:
    await set_policy(policies, admin, session.account.name, max_running_operations=4)
    response = await client.get("/v1/policy:effective", headers=auth(session.access_token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"]["max_running_operations"] == 4
    assert body["usage"] == [{"quota": "max_running_operations", "limit": "4", "used": "0"}]


@pytest.mark.parametrize("path", ["/v1/tools/test.echo:call", "/v1/tools/test_echo:call"])
async def test_a_denied_tool_is_403_policy_denied_over_rest(
    client: httpx.AsyncClient, policies: Policies, admin: Md, session: auth_pb2.Session, path: str
) -> None:
    await set_policy(policies, admin, session.account.name, deny_tools=["test.echo"])
    response = await client.post(
        path, json={"arguments": {"text": "hi"}}, headers=auth(session.access_token)
    )
    body = assert_error(response, 403, 7, "POLICY_DENIED")
    assert details(body, "ErrorInfo")[0]["metadata"]["rule"] == "deny_tools"


async def test_a_quota_is_429_quota_exceeded_over_rest(
    client: httpx.AsyncClient, policies: Policies, admin: Md, session: auth_pb2.Session
) -> None:
    await set_policy(policies, admin, session.account.name, max_running_operations=0)
    response = await client.post(
        "/v1/tools/test.sleep:call", json={"arguments": {}}, headers=auth(session.access_token)
    )
    body = assert_error(response, 429, 8, "QUOTA_EXCEEDED")
    assert details(body, "ErrorInfo")[0]["metadata"]["quota"] == "max_running_operations"


@pytest.mark.parametrize("name", ["test.echo", "test_echo"])
async def test_a_denied_tool_is_an_error_result_over_mcp(
    envoy: str,
    app: Application,
    policies: Policies,
    admin: Md,
    session: auth_pb2.Session,
    name: str,
) -> None:
    await set_policy(policies, admin, session.account.name, deny_tools=["test.echo"])
    token = mcp_token(app, session.access_token, f"{envoy}/mcp")
    async with http_client(f"{envoy}/mcp", token) as mcp:
        result = await mcp.call_tool(name, {"text": "hi"})
    assert result.is_error is True
    text = text_of(result)
    assert "POLICY_DENIED" in text and "test.echo is denied by the policy" in text


async def test_mcp_lists_only_the_tools_the_policy_lets_the_caller_call(
    envoy: str, app: Application, policies: Policies, admin: Md, session: auth_pb2.Session
) -> None:
    await set_policy(policies, admin, session.account.name, deny_tools=["vm.*", "test.echo"])
    token = mcp_token(app, session.access_token, f"{envoy}/mcp")
    async with http_client(f"{envoy}/mcp", token) as mcp:
        listed = {tool.name for tool in (await mcp.list_tools()).tools}
    assert "test_read" in listed and "pack_build" in listed
    assert not {name for name in listed if name.startswith("vm_")}
    assert "test_echo" not in listed


async def test_read_only_holds_over_mcp(
    envoy: str, app: Application, policies: Policies, admin: Md, session: auth_pb2.Session
) -> None:
    await set_policy(policies, admin, session.account.name, read_only=True)
    token = mcp_token(app, session.access_token, f"{envoy}/mcp")
    async with http_client(f"{envoy}/mcp", token) as mcp:
        refused = await mcp.call_tool("test_sleep", {"steps": 1})
        read = await mcp.call_tool("test_read", {})
    assert refused.is_error is True and "the policy is read-only" in text_of(refused)
    assert read.is_error is False


async def test_a_call_that_needs_approval_is_approved_over_rest(
    client: httpx.AsyncClient,
    policies: Policies,
    admin: Md,
    admin_token: str,
    session: auth_pb2.Session,
) -> None:
    await set_policy(policies, admin, session.account.name, require_approval=["test.echo"])
    called = await client.post(
        "/v1/tools/test.echo:call",
        json={"arguments": {"text": "hi"}, "reason": "greeting"},
        headers=auth(session.access_token),
    )
    assert called.status_code == 200, called.text
    operation = called.json()
    assert operation["metadata"]["state"] == "AWAITING_APPROVAL"
    assert operation["metadata"]["approval"]["reason"] == "greeting"
    path = f"/v1/{operation['name']}"
    mine = await client.post(f"{path}:approve", json={}, headers=auth(session.access_token))
    assert_error(mine, 403, 7, "MISSING_PERMISSION")
    no_comment = await client.post(f"{path}:deny", json={}, headers=auth(admin_token))
    assert_error(no_comment, 400, 3, "INVALID_ARGUMENT")
    approved = await client.post(
        f"{path}:approve", json={"comment": "fine"}, headers=auth(admin_token)
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["metadata"]["approval"]["state"] == "APPROVED"
    waited = await client.post(f"{path}:wait", json={}, headers=auth(session.access_token))
    assert waited.json()["response"]["output"] == {"echo": "hi"}


async def test_a_call_that_needs_approval_is_answered_at_once_over_mcp(
    envoy: str, app: Application, policies: Policies, admin: Md, session: auth_pb2.Session
) -> None:
    await set_policy(policies, admin, session.account.name, require_approval=["test.sleep"])
    token = mcp_token(app, session.access_token, f"{envoy}/mcp")
    async with http_client(f"{envoy}/mcp", token) as mcp:
        result = await mcp.call_tool("test_sleep", {"steps": 1})
    text = text_of(result)
    assert "test.sleep needs approval (require_approval: test.sleep); operations/" in text
    assert "Nothing has run yet" in text and operation_of(result) in text


async def test_a_denied_tool_is_an_error_result_over_mcp_stdio(
    app: Application, policies: Policies, admin: Md, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "key.pem"
    write_private_key(key_file, key)
    account = account_name(key_id(public_bytes(key)))
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        await login(channel, key)  # the account exists (open sign-up)
    await set_policy(policies, admin, account, deny_tools=["test.echo"], read_only=True)
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "formation_mcp.cli.main", "mcp"],
        env={
            "FMCP_TARGET": app.grpc.address,
            "FMCP_KEY_FILE": str(key_file),
            "FMCP_CONFIG_DIR": str(tmp_path / "config"),
        },
    )
    async with Client(parameters, mode=LEGACY) as mcp:
        by_alias = await mcp.call_tool("test_echo", {"text": "hi"})
        not_read_only = await mcp.call_tool("test.sleep", {"steps": 1})
        read = await mcp.call_tool("test.read", {})
    assert by_alias.is_error is True and "test.echo is denied by the policy" in text_of(by_alias)
    assert not_read_only.is_error is True and "the policy is read-only" in text_of(not_read_only)
    assert read.is_error is False
