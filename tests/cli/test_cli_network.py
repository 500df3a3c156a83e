"""`fmcp net expose | list | rm` and the SDK's expose / routes / unexpose, on the real network
tools (routes through Envoy are tested in tests/network)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.cli import Fmcp

from formation_mcp.client import AlreadyExists, FormfileBuilder

WEB_FORMFILE = FormfileBuilder("idle-web").entrypoint("sleep", "600").expose(8080, 9090).to_text()


@pytest.fixture
async def instance(fmcp: Fmcp) -> AsyncIterator[dict[str, Any]]:
    """A running instance exposing 8080 and 9090, deleted after the test."""
    async with fmcp.client() as client:
        build = await client.build_workload(WEB_FORMFILE, timeout=60)
        shipped = await client.deploy_workload(
            build["build_id"], f"web-{uuid.uuid4().hex[:8]}", timeout=60
        )
        yield shipped
        await client.call_and_wait(
            "vm.delete", {"id": shipped["instance_id"], "force": True}, timeout=60
        )


async def test_net_expose_list_and_rm(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    name = instance["name"]
    path = f"/cli-{name}/"

    exposed = await fmcp("net", "expose", name, "--port", "9090", "--path", path, "-o", "json")
    listed = await fmcp("net", "list")
    removed = await fmcp("net", "rm", name, "--path", path, "-o", "json")
    after = await fmcp("net", "list", "-o", "json")

    assert exposed.exit_code == 0, exposed.output
    route = json.loads(exposed.stdout)
    assert (route["path"], route["port"], route["auth"]) == (path, 9090, "public")
    assert route["url"].endswith(path) and route["state"] == "running"
    assert listed.exit_code == 0 and path in listed.stdout and name in listed.stdout
    assert [r["path"] for r in json.loads(removed.stdout)["routes"]] == [path]
    assert json.loads(after.stdout)["routes"] == []


async def test_net_expose_of_a_port_not_exposed_exits_naming_the_ports(
    fmcp: Fmcp, instance: dict[str, Any]
) -> None:
    result = await fmcp("net", "expose", instance["name"], "--port", "22")
    assert result.exit_code != 0
    assert "PORT_NOT_EXPOSED" in result.stderr and "8080, 9090" in result.stderr


async def test_the_sdk_exposes_lists_and_unexposes(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    name = instance["name"]
    async with fmcp.client() as client:
        route = await client.expose(name, auth="token")
        listed = await client.routes()
        with pytest.raises(AlreadyExists):
            await client.expose(instance["instance_id"], port=9090)  # the same default path
        removed = await client.unexpose(name)

    assert (route["path"], route["port"], route["auth"]) == (f"/apps/{name}/", 8080, "token")
    assert [r["path"] for r in listed["routes"]] == [route["path"]]
    assert removed["count"] == 1
