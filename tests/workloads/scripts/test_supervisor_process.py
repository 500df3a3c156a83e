"""The supervisor script on its own, as `supervisor.launch` starts it:
`python -I -S supervisor_process.py <spec>`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from formation_mcp.workloads import instance_logs, supervisor
from formation_mcp.workloads.scripts import SUPERVISOR_SCRIPT, supervisor_process


def supervise(directory: Path, *argv: str, log_bytes: int = 1 << 20) -> int:
    """Run the supervisor until the entrypoint has ended; the supervisor's own exit code."""
    spec = {
        "dir": str(directory),
        "cwd": str(directory),
        "argv": list(argv),
        "env": {"PATH": "/usr/bin:/bin", "GREETING": "hi"},
        "limits": [],
        "cpus": [],
        "user": None,
        "log_bytes": log_bytes,
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
    when, stream, text = (tmp_path / "output.log").read_text().split(" ", 2)
    assert (stream, text) == ("o", "hi\n") and when.isdigit()
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 5


def test_the_supervisor_records_an_entrypoint_it_cannot_start_as_127(tmp_path: Path) -> None:
    assert supervise(tmp_path, "/nonexistent/program") == 0
    assert json.loads((tmp_path / "exit.json").read_text())["exit_code"] == 127
    assert "cannot start '/nonexistent/program'" in (tmp_path / "output.log").read_text()


def test_the_supervisor_writes_the_files_the_worker_reads() -> None:
    names = (supervisor_process.PID_FILE, supervisor_process.EXIT_FILE, supervisor_process.LOG_FILE)
    assert names == (supervisor.PID_FILE, supervisor.EXIT_FILE, supervisor.LOG_FILE)
    logs = (supervisor_process.LOG_FILE, supervisor_process.DROPPED_FILE)
    assert logs == (instance_logs.LOG_FILE, instance_logs.DROPPED_FILE)


def test_stdout_and_stderr_lines_are_recorded_apart_with_their_time(tmp_path: Path) -> None:
    assert supervise(tmp_path, "sh", "-c", "echo out; echo err >&2; printf partial") == 0
    records = [line.split(" ", 2) for line in (tmp_path / "output.log").read_text().splitlines()]
    assert sorted((stream, text) for _, stream, text in records) == [
        ("e", "err"),
        ("o", "out"),
        ("o", "partial"),
    ]
    assert all(when.isdigit() for when, _, _ in records)


def test_a_rotation_counts_the_bytes_it_drops(tmp_path: Path) -> None:
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"
    spec_bytes = 8192
    assert supervise(tmp_path, "sh", "-c", script, log_bytes=spec_bytes) == 0
    kept = sum((tmp_path / name).stat().st_size for name in ("output.log", "output.log.1"))
    dropped = int((tmp_path / "output.dropped").read_text())
    log = instance_logs.read_log(tmp_path)
    assert log.start == dropped and log.end == dropped + kept
    assert log.records[-1].text == "line-2999" and log.records[-1].end == log.end
