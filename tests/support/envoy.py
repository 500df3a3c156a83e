"""REST through Envoy, in tests: bearer headers, JSON error bodies, the login flow over REST,
NDJSON watches read line by line."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.waiting import DEADLINE

from formation_mcp.auth.keys import public_bytes

Json = dict[str, Any]

StartEnvoy = Callable[..., Awaitable[str]]
"""The Envoy tests' `start_envoy(application, proxy_secret=None)`: a real Envoy in front of a
server (with the server's proxy secret unless another is given); its base URL."""


def url(path: str, **params: str | int) -> str:
    """`path?query` with spaces as %20. The transcoder reads `+` literally, not as a space (as
    form encoding, httpx's `params=` among others, writes it: see test_front_door)."""
    return f"{path}?{urlencode(params, quote_via=quote)}"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    """proto3 JSON `bytes`: standard base64 with padding."""
    return base64.b64encode(data).decode()


def details(body: Json, kind: str) -> list[Json]:
    """The `details` of a JSON google.rpc.Status of one type (`ErrorInfo`, `BadRequest`...)."""
    return [
        d for d in body.get("details", []) if d["@type"] == f"type.googleapis.com/google.rpc.{kind}"
    ]


def assert_error(response: httpx.Response, status: int, code: int, reason: str) -> Json:
    """The response is `status` with a JSON google.rpc.Status of `code`, whose one ErrorInfo
    (domain formation.mcp) has `reason`; the body is returned for more checks."""
    assert response.headers["content-type"] == "application/json", response.text
    body: Json = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    infos = details(body, "ErrorInfo")
    assert [(i["domain"], i["reason"]) for i in infos] == [("formation.mcp", reason)], body
    return body


def field_violations(body: Json) -> list[str]:
    return [v["field"] for d in details(body, "BadRequest") for v in d["field_violations"]]


async def rest_login(client: httpx.AsyncClient, key: Ed25519PrivateKey) -> Json:
    """The whole login flow over REST: challenge, sign its `message` exactly, login."""
    public_key = b64(public_bytes(key))
    response = await client.post("/v1/auth/challenge", json={"public_key": public_key})
    assert response.status_code == 200, response.text
    challenge: Json = response.json()
    signature = key.sign(base64.b64decode(challenge["message"]))
    response = await client.post(
        "/v1/auth/login",
        json={
            "challenge_id": challenge["challenge_id"],
            "public_key": public_key,
            "signature": b64(signature),
        },
    )
    assert response.status_code == 200, response.text
    session: Json = response.json()
    return session


END: Json = {}
"""What `Lines.next()` returns once the stream has ended."""


class Lines:
    """The JSON lines of a streaming response, read by a task of their own, so that a test can
    wait for the next one with a deadline (and see that none comes) without cancelling a read
    in the middle of the response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._queue: asyncio.Queue[Json | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self.response.aiter_lines():
                if line.strip():
                    self._queue.put_nowait(json.loads(line))
            self._queue.put_nowait(END)
        except Exception as error:  # handed to the test by next()
            self._queue.put_nowait(error)

    async def next(self, timeout: float = DEADLINE) -> Json:
        """The next JSON object, or END; TimeoutError when none comes within `timeout`."""
        async with asyncio.timeout(timeout):
            item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def watch(
    client: httpx.AsyncClient, name: str, token: str, params: dict[str, str] | None = None
) -> AsyncIterator[Lines]:
    """GET /v1/{name}:watch, the newline-delimited JSON stream, line by line."""
    async with client.stream(
        "GET", f"/v1/{name}:watch", headers=auth(token), params=params, timeout=None
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = Lines(response)
        try:
            yield lines
        finally:
            await lines.close()


def state(operation: Json) -> str:
    value: str = operation["metadata"]["state"]
    return value


def sequence(operation: Json) -> int:
    """int64 is a string in proto3 JSON."""
    return int(operation["metadata"]["sequence"])
