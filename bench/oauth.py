"""`oauth`: what an MCP host's sign-in and token refresh cost, against what a login and a
RefreshToken cost on the same server in the same run.

One `fmcp serve` (SQLite, the embedded default) pinned to core 0; this process, the client, on
core 1.

- Sign-in, sequential, `SIGN_INS` times after warm-up: the authorize request (the sign-in page),
  the person's approval (GetAuthorizationRequest, an Ed25519 signature,
  ApproveAuthorizationRequest: what `fmcp authorize` does), the page's reload (the code), and
  the code's exchange at the token endpoint (PKCE). Against it, in turns: a login
  (CreateChallenge, signature, Login). Printed: p50 and p99 of each, and sign-in / login.
- Refresh, `CLIENTS` concurrent clients for `SECONDS` each, each rotating its own refresh token
  as fast as the server answers: at the OAuth token endpoint (form POST over HTTP/1.1), then
  with the RefreshToken RPC (gRPC). Printed: refreshes per second of each and their ratio.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import grpc
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc

from bench.common import LOAD_CORE, SERVER_CORE, figure, heading, note, percentile, ratio
from bench.mcp import _on_core
from bench.processes import fmcp_server, running
from formation_mcp.client import Client
from formation_mcp.client.auth import login

SIGN_INS = int(os.environ.get("FMCP_BENCH_OAUTH_SIGN_INS", "100"))
WARM_UP = 10
BLOCK = 10
CLIENTS = 16
SECONDS = 8.0
CALLBACK = "http://127.0.0.1:9999/callback"
CODE = re.compile(r"fmcp authorize ([A-Z]{4}-[A-Z]{4})")
PAGE = re.compile(r'href="(/oauth/requests/[^"]+)"')


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Host:
    """One registered client signing in as one person."""

    def __init__(self, base: str, http: httpx.AsyncClient, person: Client) -> None:
        self.base = base
        self.http = http
        self.person = person
        self.client_id = ""

    async def register(self) -> None:
        response = await self.http.post(
            f"{self.base}/oauth/register",
            json={"client_name": "Bench Host", "redirect_uris": [CALLBACK]},
        )
        self.client_id = response.json()["client_id"]

    async def sign_in(self) -> dict[str, str]:
        verifier, challenge = _pkce()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": CALLBACK,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "resource": f"{self.base}/mcp",
            }
        )
        page = (await self.http.get(f"{self.base}/oauth/authorize?{query}")).text
        code_match, page_match = CODE.search(page), PAGE.search(page)
        assert code_match and page_match, page
        await self.person.authorizations.approve(code_match.group(1))
        back = await self.http.get(self.base + page_match.group(1))
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        tokens = await self.http.post(
            f"{self.base}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": self.client_id,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        body: dict[str, str] = tokens.json()
        return body

    async def refresh(self, refresh_token: str) -> str:
        response = await self.http.post(
            f"{self.base}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["refresh_token"]
        return token


async def _timed(action: Callable[[], Awaitable[object]], into: list[float]) -> None:
    began = time.perf_counter()
    await action()
    into.append(time.perf_counter() - began)


async def _sign_ins(host: Host, channel: grpc.aio.Channel) -> tuple[list[float], list[float]]:
    oauth: list[float] = []
    logins: list[float] = []
    for _ in range(WARM_UP):
        await host.sign_in()
        await login(channel, Ed25519PrivateKey.generate())
    while len(oauth) < SIGN_INS:
        for _ in range(BLOCK):
            await _timed(host.sign_in, oauth)
        for _ in range(BLOCK):
            await _timed(lambda: login(channel, Ed25519PrivateKey.generate()), logins)
    return oauth, logins


async def _rate(chains: list[Callable[[], Awaitable[object]]]) -> float:
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def run(step: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await step()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(run(step) for step in chains))
    return done / (time.perf_counter() - began)


async def _refreshes(host: Host, channel: grpc.aio.Channel) -> tuple[float, float]:
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    def oauth_chain(first: str) -> Callable[[], Awaitable[object]]:
        current = [first]

        async def step() -> None:
            current[0] = await host.refresh(current[0])

        return step

    def grpc_chain(first: str) -> Callable[[], Awaitable[object]]:
        current = [first]

        async def step() -> None:
            session = await stub.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=current[0])
            )
            current[0] = session.refresh_token

        return step

    oauth_tokens = [(await host.sign_in())["refresh_token"] for _ in range(CLIENTS)]
    sessions = [await login(channel, Ed25519PrivateKey.generate()) for _ in range(CLIENTS)]
    oauth_rate = await _rate([oauth_chain(token) for token in oauth_tokens])
    grpc_rate = await _rate([grpc_chain(session.refresh_token) for session in sessions])
    return oauth_rate, grpc_rate


async def run() -> None:
    heading(
        f"oauth: an MCP host's sign-in ({SIGN_INS} sequential, in turns of {BLOCK} with logins) "
        f"and refresh ({CLIENTS} concurrent chains, {SECONDS:.0f} s each) against Login and "
        f"RefreshToken; server on core {SERVER_CORE}, client on core {LOAD_CORE}"
    )
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-oauth-") as scratch:
        server = fmcp_server(Path(scratch), None)
        assert server.env is not None
        server.env["FMCP_LOGIN_RATE"] = "100000000"  # the work, not the abuse limits
        async with running(server) as ready:
            grpc_address, http_address = ready.group(1), ready.group(2)
            key = Ed25519PrivateKey.generate()
            async with (
                grpc.aio.insecure_channel(grpc_address) as channel,
                httpx.AsyncClient(timeout=30) as http,
                Client(grpc_address, key=key) as person,
            ):
                host = Host(f"http://{http_address}", http, person)
                await host.register()
                with _on_core(LOAD_CORE):
                    oauth, logins = await _sign_ins(host, channel)
                    oauth_rate, grpc_rate = await _refreshes(host, channel)
    note("a sign-in is 4 HTTP requests and 2 gRPC calls; a login is 2 gRPC calls")
    figure("sign-in p50", percentile(oauth, 0.5) * 1e3, "ms")
    figure("sign-in p99", percentile(oauth, 0.99) * 1e3, "ms")
    figure("login p50", percentile(logins, 0.5) * 1e3, "ms")
    figure("login p99", percentile(logins, 0.99) * 1e3, "ms")
    ratio("p50 sign-in / login", percentile(oauth, 0.5), percentile(logins, 0.5))
    figure("refreshes at the OAuth token endpoint", oauth_rate, "/s", 0)
    figure("RefreshToken (gRPC) refreshes", grpc_rate, "/s", 0)
    ratio("OAuth token endpoint / RefreshToken", oauth_rate, grpc_rate)
