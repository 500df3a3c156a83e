"""The supervisor script on its own, as `supervisor.launch` starts it:
`python -I -S supervisor_process.py <spec>`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from formation_mcp.workloads import supervisor
from formation_mcp.workloads.scripts import SUPERVISOR_SCRIPT, supervisor_process


def supervise(directory: Path, *argv: str) -> int:
    """Run the supervisor until the entrypoint has ended; the supervisor's own exit code."""
    spec = {
        "dir": str(directory),
        "cwd": str(directory),
        "argv": list(argv),
        "env": {"PATH": "/usr/bin:/bin", "GREETING": "hi"},
        "limits": [],
        "cpus": [],
        "user": None,
        "log_bytes": 1 << 20,
        "sandboxed": False,
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(SUPERVISOR_SCRIPT), json.dumps(spec)],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    return done.returncode


def test_the_supervisor_records_pid_output_and_exit_of_its_entrypoint(tmp_path: Path) -> None:
    assert supervise(tmp_path, "sh", "-c", 'echo "$GREETING"; exit 5') == 0
    assert int((tmp_path / "pid").read_text()) > 0
    assert (tmp_path / "output.log").read_text() == "hi\n"
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 5


def test_the_supervisor_records_an_entrypoint_it_cannot_start_as_127(tmp_path: Path) -> None:
    assert supervise(tmp_path, "/nonexistent/program") == 0
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 127
    assert "cannot start '/nonexistent/program'" in (tmp_path / "output.log").read_text()


def test_the_supervisor_writes_the_files_the_worker_reads() -> None:
    names = (supervisor_process.PID_FILE, supervisor_process.EXIT_FILE, supervisor_process.LOG_FILE)
    assert names == (supervisor.PID_FILE, supervisor.EXIT_FILE, supervisor.LOG_FILE)
