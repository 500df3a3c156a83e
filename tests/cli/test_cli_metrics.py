"""`fmcp vm metrics ID` (a text chart, or JSON) and `fmcp vm recommend [ID]`, on an instance
the CLI's server samples every half second; the SDK's instance_metrics / recommendations."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.cli import Fmcp
from tests.support.waiting import eventually

from formation_mcp.cli.metrics_commands import sparkline
from formation_mcp.client import FormfileBuilder

IDLE_FORMFILE = FormfileBuilder("idle").entrypoint("sleep", "600").to_text()


@pytest.fixture
async def sampled(fmcp: Fmcp) -> AsyncIterator[dict[str, Any]]:
    """A running instance with a few samples already (waited for through the SDK)."""
    async with fmcp.client() as client:
        build = await client.build_workload(IDLE_FORMFILE, timeout=60)
        shipped = await client.deploy_workload(
            build["build_id"], f"idle-{uuid.uuid4().hex[:8]}", {"memory_mb": 128}, timeout=60
        )

        async def sampled_twice() -> bool:
            answer = await client.instance_metrics(shipped["name"], window="5m")
            return int(answer["samples"]) >= 2

        await eventually(sampled_twice, deadline=30)
        yield shipped
        await client.call_and_wait("vm.delete", {"id": shipped["instance_id"], "force": True})


def test_a_sparkline_scales_to_the_maximum_and_keeps_gaps() -> None:
    assert sparkline([0.0, 5.0, None, 10.0]) == "▁▅ █"
    assert sparkline([0.0, 0.0]) == "▁▁"


async def test_vm_metrics_draws_a_chart_per_series(fmcp: Fmcp, sampled: dict[str, Any]) -> None:
    result = await fmcp("vm", "metrics", sampled["name"], "--window", "5m")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{sampled['name']} (running): ")
    assert "limits disk_gb=10 memory_mb=128 vcpus=1" in lines[0]
    assert any(line.startswith("memory_mb      |") and "p95" in line for line in lines)


async def test_vm_metrics_as_json_is_the_tools_answer(fmcp: Fmcp, sampled: dict[str, Any]) -> None:
    result = await fmcp("vm", "metrics", sampled["instance_id"], "-o", "json")
    answer = json.loads(result.stdout)
    assert answer["instance_id"] == sampled["instance_id"] and answer["samples"] >= 2
    assert answer["step_seconds"] == 15 and len(answer["times"]) == 60


async def test_vm_recommend_lists_findings_for_all_your_instances(
    fmcp: Fmcp, sampled: dict[str, Any]
) -> None:
    result = await fmcp("vm", "recommend", "-o", "json")
    answer = json.loads(result.stdout)
    assert answer["instances_checked"] == 1
    table = (await fmcp("vm", "recommend", sampled["name"], "--window", "1s")).stdout
    assert "insufficient_data" in table and sampled["name"] in table


async def test_vm_metrics_of_an_unknown_instance_exits_6(fmcp: Fmcp) -> None:
    assert (await fmcp("vm", "metrics", "nothing-here")).exit_code == 6
