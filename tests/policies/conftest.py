"""Fixtures of the policy tests: a server per database backend with an admin key, the test
tools and an in-process worker; the admin's stubs; helpers that set a policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, policies_pb2, policies_pb2_grpc, tools_pb2_grpc
from google.protobuf import field_mask_pb2
from tests.support.auth import Md
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, make_settings

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login

Policies: TypeAlias = "policies_pb2_grpc.PoliciesServiceAsyncStub"
Tools: TypeAlias = "tools_pb2_grpc.ToolsServiceAsyncStub"


@pytest.fixture(scope="session")
def admin_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, admin_key: Ed25519PrivateKey
) -> AsyncIterator[Application]:
    """The policy tests' server: each test acts as an account of its own, whose policy it
    sets (role defaults, which reach every account, are tested on servers of their own)."""
    data_dir = tmp_path_factory.mktemp("policies")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    settings = make_settings(
        data_dir,
        database_url,
        admin_keys=(b64url(public_bytes(admin_key)),),
        login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
        broker_url="memory://",
    )
    application = Application(settings)
    await application.start()
    await asyncio.wait_for(application.broker_ready.wait(), 30)
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
async def admin(channel: grpc.aio.Channel, admin_key: Ed25519PrivateKey) -> Md:
    """The admin's call metadata."""
    session = await login(channel, admin_key)
    return bearer(session.access_token)


@pytest.fixture
def md(session: auth_pb2.Session) -> Md:
    """The test account's call metadata."""
    return bearer(session.access_token)


@pytest.fixture
def policies(channel: grpc.aio.Channel) -> Policies:
    return policies_pb2_grpc.PoliciesServiceStub(channel)


@pytest.fixture
def tools(channel: grpc.aio.Channel) -> Tools:
    return tools_pb2_grpc.ToolsServiceStub(channel)


async def set_policy(stub: Policies, admin: Md, subject: str, **fields: Any) -> policies_pb2.Policy:
    """Set these fields of `subject`'s policy (`accounts/...` or `roles/...`), others kept."""
    policy = policies_pb2.Policy(name=f"{subject}/policy", **fields)
    updated: policies_pb2.Policy = await stub.UpdatePolicy(
        policies_pb2.UpdatePolicyRequest(
            policy=policy, update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        ),
        metadata=admin,
    )
    return updated
