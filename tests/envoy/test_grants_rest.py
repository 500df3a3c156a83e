"""The sign-in decisions and the grants over REST through Envoy: an approval made with curl and
a signature, REST bodies checked like every other, a grant revoked."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from google.protobuf import json_format
from tests.oauth.host import ManualHost, code_on, pkce_pair
from tests.support.envoy import assert_error, auth, b64, rest_login

from formation_mcp.auth.keys import public_bytes
from formation_mcp.client.grants import decision_signature
from formation_mcp.client.models import AuthorizationRequest


async def pending_name(client: httpx.AsyncClient, envoy: str) -> str:
    host = ManualHost(envoy)
    await host.register(client_name="REST Host")
    _verifier, challenge = pkce_pair()
    page = await client.get(host.authorize_url(challenge).removeprefix(envoy))
    return "authorizationRequests/" + code_on(page.text)


async def test_a_request_is_read_and_approved_over_rest(
    client: httpx.AsyncClient, envoy: str
) -> None:
    name = await pending_name(client, envoy)
    shown = await client.get(f"/v1/auth/{name}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["client_name"], body["state"], body["scope"]) == ("REST Host", "PENDING", "full")
    request = json_format.ParseDict(body, auth_pb2.AuthorizationRequest())
    key = Ed25519PrivateKey.generate()
    signature = decision_signature(
        key, AuthorizationRequest.from_proto(request), "approve read-only"
    )
    approved = await client.post(
        f"/v1/auth/{request.name}:approve",
        json={
            "public_key": b64(public_bytes(key)),
            "signature": b64(signature),
            "scope": "read-only",
        },
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["granted_scope"]) == (
        "APPROVED",
        "read-only",
    )


async def test_an_unknown_field_in_a_decision_is_refused(
    client: httpx.AsyncClient, envoy: str
) -> None:
    name = await pending_name(client, envoy)
    response = await client.post(f"/v1/auth/{name}:deny", json={"reason": "no"})
    body = assert_error(response, 400, 3, "UNKNOWN_FIELD")
    assert "reason: unknown field" in body["message"]


async def test_a_grant_is_listed_and_revoked_over_rest(client: httpx.AsyncClient) -> None:
    session = await rest_login(client, Ed25519PrivateKey.generate())
    listed = await client.get("/v1/auth/grants", headers=auth(session["access_token"]))
    [grant] = listed.json()["grants"]
    assert (grant["kind"], grant["state"]) == ("LOGIN", "ACTIVE")
    revoked = await client.post(
        f"/v1/auth/{grant['name']}:revoke", json={}, headers=auth(session["access_token"])
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "REVOKED"
    after = await client.get("/v1/auth/grants", headers=auth(session["access_token"]))
    assert_error(after, 401, 16, "TOKEN_REVOKED")
