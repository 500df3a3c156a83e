"""`fmcp events list | watch` and `fmcp vm logs | events`, on the real workload tools."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import pytest
from tests.support.cli import Fmcp
from tests.support.waiting import eventually

from formation_mcp.client import FormfileBuilder

COUNTING = (
    FormfileBuilder("counting")
    .entrypoint("sh", "-c", "for i in 1 2 3 4 5; do echo n-$i; done; echo bad >&2; exit 2")
    .to_text()
)


@pytest.fixture
async def crashed(fmcp: Fmcp) -> dict[str, Any]:
    """An instance of this test's account that printed five lines and failed."""
    async with fmcp.client() as client:
        build = await client.build_workload(COUNTING, timeout=60)
        shipped = await client.deploy_workload(
            build["build_id"], f"counting-{uuid.uuid4().hex[:8]}", timeout=60
        )

        async def failed() -> bool:
            page = await client.instance_events(shipped["instance_id"])
            return bool(page["events"]) and page["events"][0]["type"] == "instance.failed"

        await eventually(failed, deadline=30)
    return shipped


async def test_events_list_shows_the_instances_events_as_a_table(
    fmcp: Fmcp, crashed: dict[str, Any]
) -> None:
    result = await fmcp("events", "list", "--filter", 'type = "instance.*"')
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["TIME", "SEVERITY", "TYPE", "RESOURCE", "MESSAGE"]
    assert "instance.failed" in rows[0] and "ERROR" in rows[0]
    assert f"instances/{crashed['instance_id']}" in rows[0]


async def test_events_list_json_and_a_bad_filter(fmcp: Fmcp, crashed: dict[str, Any]) -> None:
    listed = await fmcp(
        "events", "list", "--limit", "2", "--filter", 'type = "instance.*"', "-o", "json"
    )
    assert [e["type"] for e in json.loads(listed.stdout)] == [
        "instance.failed",
        "instance.running",
    ]
    bad = await fmcp("events", "list", "--filter", "colour = red")
    assert bad.exit_code != 0 and "unknown field 'colour'" in bad.stderr


async def test_events_watch_prints_events_after_the_cursor_as_ndjson(
    fmcp: Fmcp, crashed: dict[str, Any]
) -> None:
    """A real `fmcp events watch` process (it runs until interrupted): stopped once it printed
    the events after the cursor."""
    resource = f"instances/{crashed['instance_id']}"
    async with fmcp.client() as client:
        oldest = [e async for e in client.events.list(f'resource = "{resource}"')][-1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "formation_mcp.cli.main",
        "events",
        "watch",
        "--filter",
        f'resource = "{resource}"',
        "--after",
        oldest.name,
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **fmcp.env},
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            printed = [json.loads(await process.stdout.readline()) for _ in range(2)]
    finally:
        process.kill()
        await process.wait()
    assert [e["type"] for e in printed] == ["instance.running", "instance.failed"]


async def test_vm_logs_prints_time_stream_and_text_and_a_cursor_when_cut(
    fmcp: Fmcp, crashed: dict[str, Any]
) -> None:
    result = await fmcp("vm", "logs", crashed["name"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[1:] for line in lines] == [
        *(["stdout", f"n-{i}"] for i in range(1, 6)),
        ["stderr", "bad"],
    ]
    cut = await fmcp("vm", "logs", crashed["name"], "--max-bytes", "256", "-o", "json")
    answer = json.loads(cut.stdout)
    assert answer["truncated"] and answer["lines_left_out"] > 0
    rest = await fmcp("vm", "logs", crashed["name"], "--cursor", answer["next_cursor"])
    assert rest.stdout.splitlines()[-1].split()[1:] == ["stderr", "bad"]


async def test_vm_events_lists_an_instances_events(fmcp: Fmcp, crashed: dict[str, Any]) -> None:
    result = await fmcp("vm", "events", crashed["name"], "-o", "json")
    types = [e["type"] for e in json.loads(result.stdout)["events"]]
    assert types == ["instance.failed", "instance.running", "instance.created"]
