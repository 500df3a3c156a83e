"""Routes with auth `token`: Envoy itself checks the bearer access token (our JWKS) and that
it is the owner's (or an admin's)."""

from __future__ import annotations

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.auth import Md
from tests.support.network import answer, ship_echo
from tests.support.workloads import succeed

from formation_mcp.client.auth import login


def bearer_header(session: auth_pb2.Session) -> dict[str, str]:
    return {"authorization": f"Bearer {session.access_token}"}


async def test_a_token_route_wants_the_owners_token(
    channel: grpc.aio.Channel,
    as_account: Md,
    session: auth_pb2.Session,
    admin: auth_pb2.Session,
    front_door: str,
) -> None:
    await ship_echo(channel, as_account, "private")
    route = await succeed(channel, as_account, "network.expose", id="private", auth="token")
    assert route["auth"] == "token"
    stranger = await login(channel, Ed25519PrivateKey.generate())

    owners = await answer(route["url"] + "x", headers=bearer_header(session))
    assert owners.text == "private /x"
    await answer(route["url"], 401)
    await answer(route["url"], 403, headers=bearer_header(stranger))
    await answer(route["url"], 401, headers={"authorization": "Bearer not-a-token"})
    assert (await answer(route["url"], headers=bearer_header(admin))).status_code == 200
    await succeed(channel, as_account, "vm.delete", id="private", force=True)


async def test_the_token_does_not_reach_the_instance(
    channel: grpc.aio.Channel, as_account: Md, session: auth_pb2.Session, front_door: str
) -> None:
    await ship_echo(channel, as_account, "sealed")
    route = await succeed(channel, as_account, "network.expose", id="sealed", auth="token")

    response = await answer(route["url"] + "headers", headers=bearer_header(session))

    assert "host: " in response.text
    assert "authorization" not in response.text and session.access_token not in response.text
    await succeed(channel, as_account, "vm.delete", id="sealed", force=True)
