"""Who the client is, through our Envoy: Envoy proves itself with the server's proxy secret
(overwriting any copy a client sends), and the server takes the address Envoy appended to
x-forwarded-for, never one the client claimed. REST and native gRPC alike."""

from __future__ import annotations

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc
from tests.support.envoy import StartEnvoy, assert_error, b64
from tests.support.servers import StartApp

from formation_mcp.api import auth_servicer
from formation_mcp.api.peers import client_address, metadata_values
from formation_mcp.api.wrapping import Context
from formation_mcp.auth.keys import public_bytes
from formation_mcp.envoy import base_route_config
from formation_mcp.network.routes import RouteRecord, RouteView
from formation_mcp.network.xds import rds_document
from formation_mcp.proxies import (
    BRIDGE_AUDIENCE_HEADER,
    BRIDGE_SECRET_HEADER,
    PROXY_SECRET_HEADER,
    ProxyTrust,
)
from formation_mcp.workloads.instances import InstanceRecord, InstanceState, Resources

PER_ADDRESS = 4
"""Challenges an address gets per minute at FMCP_LOGIN_RATE=1 (4 x the per-key rate)."""
FORGED_SECRET = "f" * 43

Claims = list[tuple[str, str]]


def claims(n: int) -> Claims:
    """Headers of a client pretending to be somebody else, and to be the proxy."""
    return [
        ("x-forwarded-for", f"203.0.113.{n}"),
        ("x-fmcp-proxy-secret", FORGED_SECRET),
        ("x-fmcp-proxy-secret", FORGED_SECRET),
    ]


async def rest_challenge(client: httpx.AsyncClient, headers: Claims) -> httpx.Response:
    key = b64(public_bytes(Ed25519PrivateKey.generate()))
    return await client.post("/v1/auth/challenge", json={"public_key": key}, headers=headers)


async def grpc_challenge(channel: grpc.aio.Channel, headers: Claims) -> grpc.StatusCode:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    request = auth_pb2.CreateChallengeRequest(public_key=public_bytes(Ed25519PrivateKey.generate()))
    try:
        await stub.CreateChallenge(request, metadata=headers)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_over_rest_a_client_claiming_other_addresses_is_still_limited(
    start_app: StartApp, start_envoy: StartEnvoy
) -> None:
    application = await start_app(run_worker=False, login_rate_per_minute=1)
    async with httpx.AsyncClient(base_url=await start_envoy(application)) as client:
        for n in range(PER_ADDRESS):
            assert (await rest_challenge(client, claims(n))).status_code == 200
        assert_error(await rest_challenge(client, claims(99)), 429, 8, "RATE_LIMITED")


async def test_over_grpc_a_client_claiming_other_addresses_is_still_limited(
    start_app: StartApp, start_envoy: StartEnvoy
) -> None:
    application = await start_app(run_worker=False, login_rate_per_minute=1)
    base_url = await start_envoy(application)
    async with grpc.aio.insecure_channel(base_url.removeprefix("http://")) as channel:
        for n in range(PER_ADDRESS):
            assert await grpc_challenge(channel, claims(n)) == grpc.StatusCode.OK
        assert await grpc_challenge(channel, claims(99)) == grpc.StatusCode.RESOURCE_EXHAUSTED


class Seen:
    """What the Auth servicer was given and decided, per challenge it served."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str], str]] = []

    def __call__(self, context: Context, trust: ProxyTrust) -> str:
        address = client_address(context, trust)
        secrets = metadata_values(context, "x-fmcp-proxy-secret")
        forwarded = ",".join(metadata_values(context, "x-forwarded-for")).split(",")
        self.calls.append((secrets, [entry.strip() for entry in forwarded], address))
        return address


@pytest.mark.parametrize("door", ["rest", "grpc"])
async def test_the_server_sees_envoys_secret_once_and_the_address_envoy_appended(
    start_app: StartApp, start_envoy: StartEnvoy, monkeypatch: pytest.MonkeyPatch, door: str
) -> None:
    application = await start_app(run_worker=False)
    base_url = await start_envoy(application)
    seen = Seen()
    monkeypatch.setattr(auth_servicer, "client_address", seen)
    if door == "rest":
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await rest_challenge(client, claims(7))).status_code == 200
    else:
        async with grpc.aio.insecure_channel(base_url.removeprefix("http://")) as channel:
            assert await grpc_challenge(channel, claims(7)) == grpc.StatusCode.OK
    [(secrets, forwarded, address)] = seen.calls
    assert secrets == [application.settings.proxy_secret]
    assert forwarded[0] == "203.0.113.7" and len(forwarded) == 2  # the claim, then Envoy's entry
    assert address == forwarded[-1] != "203.0.113.7"


async def test_an_envoy_with_another_secret_is_not_believed(
    start_app: StartApp, start_envoy: StartEnvoy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A front door the server was not given the secret of is one more client: its
    x-forwarded-for is ignored, the address is its own peer address."""
    application = await start_app(run_worker=False)
    seen = Seen()
    monkeypatch.setattr(auth_servicer, "client_address", seen)
    base_url = await start_envoy(application, proxy_secret="o" * 43)
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await rest_challenge(client, claims(8))).status_code == 200
    [(secrets, _forwarded, address)] = seen.calls
    assert secrets == ["o" * 43]
    assert address == "127.0.0.1"


def test_envoy_writes_the_secret_only_on_routes_to_this_server() -> None:
    """The secret must reach nothing but the server: in the route configuration Envoy gets
    (the routes file), each route that writes it (from Envoy's environment, over any client
    copy) goes to the server's two clusters, and a route to an exposed instance does not
    write it; every client copy is dropped on the one virtual host."""
    [config] = rds_document(base_route_config(), [exposed_instance()])["resources"]
    [host] = config["virtual_hosts"]
    assert config["most_specific_header_mutations_wins"] is True  # removals, then the route's
    assert "request_headers_to_add" not in host
    written = [
        {
            "header": {"key": PROXY_SECRET_HEADER, "value": "%ENVIRONMENT(FMCP_PROXY_SECRET)%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    writing = [route for route in host["routes"] if route.get("request_headers_to_add")]
    assert all(route["request_headers_to_add"] == written for route in writing)
    assert {route["route"]["cluster"] for route in writing} == {"fmcp_grpc", "fmcp_http"}
    [instance] = [route for route in host["routes"] if route not in writing]
    assert instance["route"]["cluster"].startswith("instance_")
    assert host["request_headers_to_remove"] == [
        PROXY_SECRET_HEADER,
        BRIDGE_SECRET_HEADER,  # the MCP endpoint's, inside the process only
        BRIDGE_AUDIENCE_HEADER,
    ]


def exposed_instance() -> RouteView:
    instance = InstanceRecord(
        instance_id="i1",
        owner="accounts/a",
        name="web",
        build_id="b" * 64,
        node="n",
        state=InstanceState.RUNNING,
        resources=Resources(1, 64, 1),
        ports={"8080": 40000},
    )
    return RouteView(RouteRecord("/apps/web/", "i1", "accounts/a", 8080, "public", 0), instance)
