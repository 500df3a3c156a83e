"""The sandbox on its own: when it refuses, what it reports, what a workload may not do."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from tests.support.workloads import WORKLOAD_USER

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.sandbox import WorkloadSandbox, launcher_argv, run_as_identity


async def run(sandbox: WorkloadSandbox, *argv: str, cwd: Path) -> tuple[int, str]:
    """Run `argv` in the sandbox as the workload user; its exit code and output."""
    who = run_as_identity(WORKLOAD_USER)
    if who is not None:
        os.chown(cwd, who.uid, who.gid)
    env = {"PATH": "/usr/bin:/bin"}
    command = launcher_argv(sandbox.command(argv, writable=[cwd], cwd=cwd), (), who, env)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return sandbox.exit_code(process.returncode), output.decode()


async def test_a_node_without_bubblewrap_refuses_workloads_naming_the_way_out() -> None:
    sandbox = WorkloadSandbox(unsafe=False, bwrap="/nonexistent/bwrap")
    with pytest.raises(FailedPrecondition) as caught:
        await sandbox.check(run_as_identity(WORKLOAD_USER))
    assert caught.value.reason == "WORKLOAD_ISOLATION_UNAVAILABLE"
    assert "FMCP_UNSAFE_WORKLOADS=true" in caught.value.message
    assert "bubblewrap (bwrap) is not installed" in caught.value.message


async def test_a_bubblewrap_that_cannot_isolate_is_refused_with_its_reason(
    shared_dir: Path,
) -> None:
    broken = shared_dir / "bwrap"
    said = "bwrap: No permissions to create new namespace"
    broken.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit 1\n")
    broken.chmod(0o755)
    sandbox = WorkloadSandbox(unsafe=False, bwrap=str(broken))
    with pytest.raises(FailedPrecondition, match="No permissions to create new namespace"):
        await sandbox.check(None if os.geteuid() != 0 else run_as_identity("nobody"))


async def test_unsafe_workloads_run_unwrapped_without_bubblewrap() -> None:
    sandbox = WorkloadSandbox(unsafe=True, bwrap="/nonexistent/bwrap")
    await sandbox.check(run_as_identity(WORKLOAD_USER))
    assert sandbox.command(["true"], writable=[], cwd=Path("/")) == ["true"]


async def test_isolated_workloads_never_run_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root worker could run them as root")
    with pytest.raises(FailedPrecondition) as caught:
        await WorkloadSandbox(unsafe=False).check(None)
    assert caught.value.reason == "RUN_AS_REQUIRED"


def test_a_workload_killed_by_a_signal_reports_that_signal() -> None:
    sandbox = WorkloadSandbox(unsafe=False)
    assert [sandbox.exit_code(code) for code in (0, 3, 137, 143, 200)] == [0, 3, -9, -15, 200]


def test_a_program_named_with_an_equals_sign_is_refused() -> None:
    sandbox = WorkloadSandbox(unsafe=False)
    with pytest.raises(FailedPrecondition) as caught:
        sandbox.command(["./a=b"], writable=[], cwd=Path("/"), restore_signals=True)
    assert caught.value.reason == "ENTRYPOINT_UNUSABLE"


async def test_a_workload_cannot_make_user_namespaces(
    sandbox: WorkloadSandbox, shared_dir: Path
) -> None:
    code, output = await run(sandbox, "unshare", "--user", "true", cwd=shared_dir)
    assert code != 0, output


async def test_a_workload_writes_only_its_own_directory(
    sandbox: WorkloadSandbox, shared_dir: Path
) -> None:
    script = "echo mine > own.txt && (echo x > /etc/fmcp-test || echo refused)"
    code, output = await run(sandbox, "sh", "-c", script, cwd=shared_dir)
    assert (code, output.strip().splitlines()[-1]) == (0, "refused")
    assert (shared_dir / "own.txt").read_text() == "mine\n"
    assert not Path("/etc/fmcp-test").exists()  # noqa: ASYNC240
