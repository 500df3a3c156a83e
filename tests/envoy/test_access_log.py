"""Envoy's access log: one JSON object per request on its stdout. Each test starts an Envoy of
its own, whose stdout is the test's captured stdout (capfd)."""

from __future__ import annotations

import json

import httpx
import pytest
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import Json, StartEnvoy, auth
from tests.support.waiting import eventually

from formation_mcp.app import Application


async def logged_request(
    capfd: pytest.CaptureFixture[str],
    start_envoy: StartEnvoy,
    app: Application,
    path: str,
    token: str,
) -> Json:
    """GET `path` through a new Envoy, and its access-log entry (flushed about once a second)."""
    base_url = await start_envoy(app)
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.get(path, headers=auth(token))
    entries: list[Json] = []

    async def logged() -> bool:
        out = capfd.readouterr().out
        entries.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))
        return any(entry.get("path") == path for entry in entries)

    await eventually(logged)
    [entry] = [entry for entry in entries if entry.get("path") == path]
    return entry


async def test_access_log_has_one_json_line_per_request(
    capfd: pytest.CaptureFixture[str],
    start_envoy: StartEnvoy,
    app: Application,
    session: auth_pb2.Session,
) -> None:
    entry = await logged_request(capfd, start_envoy, app, "/v1/tools", session.access_token)
    assert entry["status"] == 200
    assert entry["request_id"]
    assert isinstance(entry["duration_ms"], int)


async def test_access_log_names_the_rest_method(
    capfd: pytest.CaptureFixture[str],
    start_envoy: StartEnvoy,
    app: Application,
    session: auth_pb2.Session,
) -> None:
    entry = await logged_request(capfd, start_envoy, app, "/v1/tools", session.access_token)
    assert entry["method"] == "GET"


async def test_access_log_never_reports_a_wrong_grpc_code(
    capfd: pytest.CaptureFixture[str],
    start_envoy: StartEnvoy,
    app: Application,
    session: auth_pb2.Session,
) -> None:
    entry = await logged_request(
        capfd, start_envoy, app, "/v1/tools/no.such.tool", session.access_token
    )
    assert entry["status"] == 404
    assert entry.get("grpc_status") in (None, 5)
