"""Any replica serves any step of a sign-in: registration, the page, the decision, the code,
the tokens, and a revocation made on one is honoured by the other at once (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.oauth.host import REDIRECT_URI, code_on, page_link, pkce_pair, query_of
from tests.oauth.test_mcp_host_flow import ACCEPT, INITIALIZE
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.client import Client

StartApp = Callable[..., Awaitable[Application]]
FRONT = "front.example"
"""The Host every replica is reached as (one front door in front of them all)."""


@pytest.mark.usefixtures("postgres_only")
async def test_each_step_on_another_replica(start_app: StartApp, tmp_path: Path) -> None:
    first, second = await start_app(), await start_app()
    to = {app: f"http://{app.http.address}" for app in (first, second)}
    headers = {"host": FRONT}
    async with httpx.AsyncClient(timeout=20, headers=headers) as http:
        registered = await http.post(
            f"{to[first]}/oauth/register",
            json={"client_name": "Replica Host", "redirect_uris": [REDIRECT_URI]},
        )
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": f"http://{FRONT}/mcp",
        }
        page = await http.get(f"{to[second]}/oauth/authorize?{urlencode(params)}")
        key = Ed25519PrivateKey.generate()
        async with Client(first.grpc.address, key=key) as person:
            await person.authorizations.approve(code_on(page.text))
            back = await http.get(to[first] + page_link(page.text))
            code = query_of(back.headers["location"])["code"]
            tokens = await http.post(
                f"{to[second]}/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": client_id,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
            )
            token = tokens.json()["access_token"]
            bearer = ACCEPT | {"authorization": f"Bearer {token}"}
            opened = await http.post(f"{to[first]}/mcp", json=INITIALIZE, headers=bearer)
            assert opened.status_code == 200
            [grant] = [g async for g in person.grants.list("kind = OAUTH")]
            async with Client(second.grpc.address, key=key) as same:
                await same.grants.revoke(grant.name)

        async def refused_on_first() -> bool:
            answer = await http.post(f"{to[first]}/mcp", json=INITIALIZE, headers=bearer)
            return answer.status_code == 401

        await eventually(refused_on_first)
