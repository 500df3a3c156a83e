"""The launcher script on its own, as the worker starts it: `python -I -S launcher.py <spec>`."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from formation_mcp.workloads.scripts import LAUNCHER_SCRIPT


def launch(
    argv: list[str],
    *,
    limits: list[list[int]] | None = None,
    user: dict[str, object] | None = None,
    lc_ctype: bool = False,
) -> subprocess.CompletedProcess[str]:
    spec = {"limits": limits or [], "user": user, "argv": argv, "lc_ctype": lc_ctype}
    return subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER_SCRIPT), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_launcher_runs_the_command_in_a_fresh_interpreter() -> None:
    ran = launch(["/bin/true"])
    assert (ran.returncode, ran.stderr) == (0, "")


def test_the_launcher_passes_on_the_commands_exit_code() -> None:
    assert launch(["/bin/sh", "-c", "exit 7"]).returncode == 7


def test_the_launcher_sets_the_limits_before_the_command_starts() -> None:
    ran = launch(["/bin/sh", "-c", "ulimit -n"], limits=[[resource.RLIMIT_NOFILE, 64]])
    assert ran.stdout.split() == ["64"]


def test_a_user_switch_that_fails_exits_126_saying_why() -> None:
    # gid -1 is never a valid group: setgroups fails for root (EINVAL) as for anyone (EPERM).
    ghost = {"name": "ghost", "uid": 65534, "gid": 65534, "groups": [-1]}
    ran = launch(["/bin/true"], user=ghost)
    assert ran.returncode == 126
    assert ran.stderr.startswith("formation: cannot run as ghost: ")
