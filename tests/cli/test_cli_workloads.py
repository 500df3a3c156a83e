"""`fmcp pack build | ship` and `fmcp vm list | status | control | delete`, on the real
workload tools (local driver)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import Fmcp

from formation_mcp.client import FormfileBuilder, NotFound

IDLE_FORMFILE = FormfileBuilder("idle").entrypoint("sleep", "600").to_text()


@pytest.fixture
async def instance(fmcp: Fmcp) -> AsyncIterator[dict[str, Any]]:
    """A running instance of this test's account (built and shipped with the SDK), deleted
    after the test."""
    async with fmcp.client() as client:
        build = await client.build_workload(IDLE_FORMFILE, timeout=60)
        shipped = await client.deploy_workload(
            build["build_id"], f"idle-{uuid.uuid4().hex[:8]}", timeout=60
        )
        yield shipped
        with contextlib.suppress(NotFound):  # unless the test deleted it
            await client.call_and_wait(
                "vm.delete", {"id": shipped["instance_id"], "force": True}, timeout=60
            )


async def test_pack_build_sends_the_directory_without_its_formfile(
    fmcp: Fmcp, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hi</h1>")
    (site / "Formfile").write_text("NAME site\nRUN test -f index.html && test ! -e Formfile\n")
    result = await fmcp("pack", "build", str(site), "-o", "json")
    assert result.exit_code == 0, result.output
    build = json.loads(result.stdout)
    assert build["name"] == "site" and len(build["build_id"]) == 64
    assert "[100%] SUCCEEDED" in result.stderr


async def test_pack_build_reads_a_yaml_formfile(fmcp: Fmcp, tmp_path: Path) -> None:
    (tmp_path / "Formfile.yaml").write_text("name: yamlsite\nrun:\n  - echo built\n")
    result = await fmcp("pack", "build", str(tmp_path), "-o", "json")
    assert json.loads(result.stdout)["name"] == "yamlsite"


async def test_pack_build_without_a_formfile_is_a_usage_error(fmcp: Fmcp, tmp_path: Path) -> None:
    result = await fmcp("pack", "build", str(tmp_path))
    assert result.exit_code == 2
    assert "no Formfile" in result.stderr


async def test_an_invalid_formfile_exits_3_naming_the_problem(fmcp: Fmcp, tmp_path: Path) -> None:
    (tmp_path / "Formfile").write_text("NAME x\nFROBNICATE now\n")
    result = await fmcp("pack", "build", str(tmp_path))
    assert result.exit_code == 3
    assert "FORMFILE_INVALID" in result.stderr


async def test_pack_ship_runs_a_build_as_an_instance(fmcp: Fmcp, tmp_path: Path) -> None:
    (tmp_path / "Formfile").write_text(IDLE_FORMFILE)
    build = json.loads((await fmcp("pack", "build", str(tmp_path), "-o", "json")).stdout)
    result = await fmcp(
        "pack",
        "ship",
        build["build_id"],
        "shipped",
        "--vcpus",
        "1",
        "--memory-mb",
        "128",
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    shipped = json.loads(result.stdout)
    assert (shipped["name"], shipped["state"]) == ("shipped", "running")
    assert shipped["resources"]["memory_mb"] == 128
    await fmcp("vm", "delete", "shipped", "--force")


async def test_vm_list_shows_your_instances(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    listed = json.loads((await fmcp("vm", "list", "-o", "json")).stdout)
    assert [i["instance_id"] for i in listed["instances"]] == [instance["instance_id"]]
    table = (await fmcp("vm", "list")).stdout
    assert instance["name"] in table and "running" in table


async def test_vm_status_shows_the_instance(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    result = await fmcp("vm", "status", instance["name"], "-o", "json")
    status = json.loads(result.stdout)
    assert status["instance_id"] == instance["instance_id"]
    assert status["state"] == "running" and "logs" in status


async def test_vm_status_of_an_unknown_instance_exits_6(fmcp: Fmcp) -> None:
    result = await fmcp("vm", "status", "nothing-here")
    assert result.exit_code == 6


async def test_vm_control_stops_an_instance(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    result = await fmcp("vm", "control", instance["instance_id"], "stop", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "stopped"


async def test_vm_control_refuses_an_unknown_action(fmcp: Fmcp) -> None:
    result = await fmcp("vm", "control", "x", "pause")
    assert result.exit_code == 2


async def test_vm_delete_removes_the_instance(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    result = await fmcp("vm", "delete", instance["name"], "--force", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "deleted"
    assert json.loads((await fmcp("vm", "list", "-o", "json")).stdout)["count"] == 0


async def test_shipping_a_taken_name_exits_7(fmcp: Fmcp, instance: dict[str, Any]) -> None:
    result = await fmcp("pack", "ship", instance["build_id"], instance["name"])
    assert result.exit_code == 7
    assert "ALREADY_EXISTS (INSTANCE_EXISTS)" in result.stderr
