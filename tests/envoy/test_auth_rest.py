"""AuthService and AccountsService over REST through Envoy: login, tokens, keys, accounts."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, b64, rest_login, url

from formation_mcp.auth.keys import key_id, public_bytes


async def test_login_by_rest_only_gives_a_working_access_token(
    client: httpx.AsyncClient,
) -> None:
    key = Ed25519PrivateKey.generate()
    session = await rest_login(client, key)
    response = await client.get("/v1/auth/account", headers=auth(session["access_token"]))
    assert response.status_code == 200
    assert response.json()["name"] == f"accounts/{key_id(public_bytes(key))}"


async def test_challenge_message_is_base64_of_the_text_to_sign(client: httpx.AsyncClient) -> None:
    key = Ed25519PrivateKey.generate()
    response = await client.post("/v1/auth/challenge", json={"public_key": b64(public_bytes(key))})
    challenge = response.json()
    text = base64.b64decode(challenge["message"]).decode()
    assert text.splitlines()[0] == "formation-mcp-login-v1"
    assert f"key_id: {challenge['key_id']}" in text.splitlines()


async def test_get_current_account(client: httpx.AsyncClient, session: auth_pb2.Session) -> None:
    response = await client.get("/v1/auth/account", headers=auth(session.access_token))
    assert response.status_code == 200
    account = response.json()
    assert (account["name"], account["roles"], account["disabled"]) == (
        session.account.name,
        ["user"],
        False,
    )
    assert base64.b64decode(account["public_key"]) == session.account.public_key


async def test_refresh_rotates_the_refresh_token_and_gives_a_working_access_token(
    client: httpx.AsyncClient,
) -> None:
    first = await rest_login(client, Ed25519PrivateKey.generate())
    response = await client.post(
        "/v1/auth/token:refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["account"]["name"] == first["account"]["name"]
    account = await client.get("/v1/auth/account", headers=auth(second["access_token"]))
    assert account.status_code == 200


async def test_revoke_logs_out_and_the_old_access_token_gets_401_token_revoked(
    client: httpx.AsyncClient,
) -> None:
    session = await rest_login(client, Ed25519PrivateKey.generate())
    response = await client.post(
        "/v1/auth/token:revoke",
        headers=auth(session["access_token"]),
        json={"refresh_token": session["refresh_token"]},
    )
    assert (response.status_code, response.json()) == (200, {})
    after = await client.get("/v1/auth/account", headers=auth(session["access_token"]))
    assert_error(after, 401, 16, "TOKEN_REVOKED")


async def test_revoked_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    session = await rest_login(client, Ed25519PrivateKey.generate())
    await client.post(
        "/v1/auth/token:revoke",
        headers=auth(session["access_token"]),
        json={"refresh_token": session["refresh_token"]},
    )
    response = await client.post(
        "/v1/auth/token:refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert_error(response, 401, 16, "REFRESH_TOKEN_INVALID")


async def test_jwks_publishes_the_key_that_signs_access_tokens(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get("/v1/auth/jwks")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys, "at least the server's own key"
    for jwk in keys:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == (
            "OKP",
            "Ed25519",
            "sig",
            "EdDSA",
        )
        assert len(base64.urlsafe_b64decode(jwk["x"] + "==")) == 32
    header = json.loads(base64.urlsafe_b64decode(session.access_token.split(".")[0] + "=="))
    assert header["kid"] in {jwk["kid"] for jwk in keys}


# AccountsService: admins only.


ACCOUNTS_ROUTES = [
    ("GET", "/v1/accounts", None),
    ("GET", "/v1/accounts/someone", None),
    ("POST", "/v1/accounts", {"public_key": b64(bytes(32))}),
    ("PATCH", "/v1/accounts/someone?update_mask=roles", {"roles": ["admin"]}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ACCOUNTS_ROUTES, ids=[f"{m} {p}" for m, p, _ in ACCOUNTS_ROUTES]
)
async def test_accounts_routes_are_403_missing_permission_for_a_user(
    client: httpx.AsyncClient,
    session: auth_pb2.Session,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    response = await client.request(method, path, headers=auth(session.access_token), json=body)
    error = assert_error(response, 403, 7, "MISSING_PERMISSION")
    assert error["details"][0]["metadata"]["permission"] == "accounts.admin"


async def test_admin_creates_and_gets_an_account(
    client: httpx.AsyncClient, admin: auth_pb2.Session
) -> None:
    public_key = public_bytes(Ed25519PrivateKey.generate())
    created = await client.post(
        "/v1/accounts",
        headers=auth(admin.access_token),
        json={"public_key": b64(public_key), "roles": ["viewer"]},
    )
    assert created.status_code == 200
    name = f"accounts/{key_id(public_key)}"
    assert (created.json()["name"], created.json()["roles"]) == (name, ["viewer"])
    got = await client.get(f"/v1/{name}", headers=auth(admin.access_token))
    assert (got.status_code, got.json()) == (200, created.json())


async def test_admin_updates_an_accounts_roles_with_an_update_mask(
    client: httpx.AsyncClient, admin: auth_pb2.Session
) -> None:
    public_key = public_bytes(Ed25519PrivateKey.generate())
    await client.post(
        "/v1/accounts", headers=auth(admin.access_token), json={"public_key": b64(public_key)}
    )
    response = await client.patch(
        url(f"/v1/accounts/{key_id(public_key)}", update_mask="roles"),
        headers=auth(admin.access_token),
        json={"roles": ["viewer"], "disabled": True},
    )
    assert response.status_code == 200
    assert (response.json()["roles"], response.json()["disabled"]) == (["viewer"], False)


async def test_admin_lists_accounts_page_by_page(
    client: httpx.AsyncClient, admin: auth_pb2.Session
) -> None:
    another = public_bytes(Ed25519PrivateKey.generate())  # the admin's and this one, at least
    await client.post(
        "/v1/accounts", headers=auth(admin.access_token), json={"public_key": b64(another)}
    )
    first = await client.get(url("/v1/accounts", page_size=1), headers=auth(admin.access_token))
    assert first.status_code == 200
    assert len(first.json()["accounts"]) == 1 and first.json()["next_page_token"]
    second = await client.get(
        url("/v1/accounts", page_size=1, page_token=first.json()["next_page_token"]),
        headers=auth(admin.access_token),
    )
    assert second.status_code == 200
    assert second.json()["accounts"][0]["name"] > first.json()["accounts"][0]["name"]
