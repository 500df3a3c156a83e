"""`python -m bench calls --json FILE` on a tiny load: the file has the issue's keys and sane
values (not timings: nothing here depends on how fast the machine is)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "calls_per_s",
    "p50_ms",
    "p99_ms",
    "api_cpu_ms_per_call",
    "worker_cpu_ms_per_call",
    "bare_cpu_ms_per_rpc",
    "api_ratio",
    "worker_ratio",
}

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.mark.usefixtures("postgres_url", "rabbitmq_url")
@pytest.mark.timeout(240)
async def test_calls_writes_its_figures_as_json(tmp_path: Path) -> None:
    if shutil.which("h2load") is None or shutil.which("taskset") is None:
        pytest.skip("the benchmark needs h2load and taskset (make bench installs h2load)")
    path = tmp_path / "calls.json"
    env = {**os.environ, "FMCP_BENCH_CALLS_SECONDS": "2"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "calls",
        "--json",
        str(path),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 200)
    assert process.returncode == 0, output.decode(errors="replace")
    printed = output.decode()
    assert "completed calls/s" in printed and "ratio api CPU per call / bare RPC" in printed

    figures = json.loads(path.read_text())

    assert set(figures) == KEYS
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in figures.values())
    assert figures["p50_ms"] <= figures["p99_ms"]
    bare = figures["bare_cpu_ms_per_rpc"]
    assert figures["api_ratio"] == pytest.approx(figures["api_cpu_ms_per_call"] / bare)
    assert figures["worker_ratio"] == pytest.approx(figures["worker_cpu_ms_per_call"] / bare)
