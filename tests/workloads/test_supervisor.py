"""The instance supervisor on its own: exit status, size-capped logs, limits, adoption."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from dataclasses import replace
from pathlib import Path

from tests.support.workloads import WORKLOAD_USER

from formation_mcp.workloads.instance_logs import log_tail
from formation_mcp.workloads.sandbox import WorkloadSandbox, run_as_identity
from formation_mcp.workloads.supervisor import (
    LOG_FILE,
    LaunchSpec,
    adopt,
    launch,
    read_exit,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def spec(directory: Path, *argv: str, log_bytes: int = 1 << 20) -> LaunchSpec:
    """The supervisor's own mechanics, without a sandbox."""
    directory.mkdir(parents=True, exist_ok=True)
    return LaunchSpec(
        directory=directory,
        cwd=directory,
        argv=argv,
        env={"PATH": "/usr/bin:/bin", "GREETING": "hi"},
        limits=[(resource.RLIMIT_NOFILE, 256)],
        cpus=[sorted(os.sched_getaffinity(0))[0]],
        user=None,
        log_bytes=log_bytes,
        sandboxed=False,
    )


def sandboxed_spec(directory: Path, sandbox: WorkloadSandbox, *argv: str) -> LaunchSpec:
    """As the local driver launches an instance: in the sandbox, as the workload user."""
    (directory / "root").mkdir(parents=True)
    who = run_as_identity(WORKLOAD_USER)
    if who is not None:
        os.chown(directory / "root", who.uid, who.gid)
    return replace(
        spec(directory),
        cwd=directory / "root",
        argv=sandbox.command(
            argv, writable=[directory / "root"], cwd=directory / "root", restore_signals=True
        ),
        user=None if who is None else who.to_spec(),
        sandboxed=True,
    )


async def wait_for_line(directory: Path, line: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while line not in log_tail(directory, 20):
        assert loop.time() < deadline, f"no line {line!r} in {log_tail(directory, 20)}"
        await asyncio.sleep(0.02)


async def test_the_exit_code_and_output_are_recorded(tmp_path: Path) -> None:
    supervised = await launch(spec(tmp_path, "sh", "-c", 'echo "$GREETING"; exit 5'))
    await asyncio.wait_for(supervised.ended.wait(), 20)
    ended = read_exit(tmp_path)
    assert ended is not None and ended.code == 5
    assert log_tail(tmp_path, 10) == ["hi"]


async def test_the_entrypoint_gets_the_limits_and_cpus(tmp_path: Path) -> None:
    supervised = await launch(spec(tmp_path, "sh", "-c", "ulimit -n; cat /proc/self/status"))
    await asyncio.wait_for(supervised.ended.wait(), 20)
    lines = log_tail(tmp_path, 200)
    assert lines[0] == "256"
    allowed = [line for line in lines if line.startswith("Cpus_allowed_list:")]
    assert allowed == [f"Cpus_allowed_list:\t{sorted(os.sched_getaffinity(0))[0]}"]


async def test_a_missing_program_exits_127_and_says_so(tmp_path: Path) -> None:
    supervised = await launch(spec(tmp_path, "no-such-program-here"))
    await asyncio.wait_for(supervised.ended.wait(), 20)
    assert supervised.exit().code == 127
    assert "cannot start 'no-such-program-here'" in log_tail(tmp_path, 5)[0]


async def test_the_log_is_capped_and_rotated_once(tmp_path: Path) -> None:
    script = "i=0; while [ $i -lt 4000 ]; do echo line-$i; i=$((i+1)); done"
    supervised = await launch(spec(tmp_path, "sh", "-c", script, log_bytes=16_384))
    await asyncio.wait_for(supervised.ended.wait(), 20)
    sizes = [(tmp_path / name).stat().st_size for name in (LOG_FILE, f"{LOG_FILE}.1")]
    assert all(size <= 8192 for size in sizes)
    assert log_tail(tmp_path, 1) == ["line-3999"]


async def test_stop_signals_the_whole_group_and_records_the_signal(tmp_path: Path) -> None:
    supervised = await launch(spec(tmp_path, "sh", "-c", "sleep 60 & sleep 60; wait"))
    await supervised.stop(grace=5)
    assert supervised.exit().code == -signal.SIGTERM
    assert not alive(supervised.pid)


async def test_a_supervisor_can_be_adopted_only_while_it_is_the_same_process(
    tmp_path: Path,
) -> None:
    supervised = await launch(spec(tmp_path, "sleep", "60"))
    adopted = adopt(tmp_path, supervised.pid, supervised.supervisor_pid, supervised.start_ticks)
    assert adopted is not None
    assert adopt(tmp_path, supervised.pid, supervised.supervisor_pid, 1) is None  # pid reused
    supervised.signal_group(signal.SIGKILL)
    await asyncio.wait_for(adopted.ended.wait(), 20)
    await asyncio.wait_for(supervised.ended.wait(), 20)
    assert adopted.exit().code == -signal.SIGKILL


GRACEFUL = """
import signal, sys, time
def bye(*_):
    print("got SIGTERM", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(60)
"""


async def test_a_sandboxed_entrypoint_gets_the_stop_signal_and_ends_its_own_way(
    shared_dir: Path, sandbox: WorkloadSandbox
) -> None:
    supervised = await launch(sandboxed_spec(shared_dir, sandbox, "python3", "-c", GRACEFUL))
    await wait_for_line(shared_dir, "ready")

    await supervised.stop(grace=10)

    assert supervised.exit().code == 3
    assert log_tail(shared_dir, 5)[-1] == "got SIGTERM"


async def test_a_sandboxed_entrypoint_killed_by_a_signal_is_recorded_with_it(
    shared_dir: Path, sandbox: WorkloadSandbox
) -> None:
    script = "echo ready; exec sleep 60"
    supervised = await launch(sandboxed_spec(shared_dir, sandbox, "sh", "-c", script))
    await wait_for_line(shared_dir, "ready")

    await supervised.stop(grace=10)

    assert supervised.exit().code == -signal.SIGTERM
    assert not alive(supervised.pid)
