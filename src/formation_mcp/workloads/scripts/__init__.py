"""Programs that run in a fresh interpreter, by path: `python -I -S <script> <spec JSON>`.

They start workloads, so they run where the worker cannot safely run Python code: between
fork and exec. The worker is multi-threaded (gRPC), and Python code between fork and exec in
such a process can deadlock or crash the child (it did: SIGSEGV in the end-to-end tool test),
so `preexec_fn` is out; a fresh single-threaded interpreter can fork, set limits and switch
users safely. Each script takes one argument, a JSON spec, and uses the standard library only
(it cannot import `formation_mcp`: `-I -S` gives it no site-packages). They are real files so
that ruff and mypy read them; importing one runs nothing.

- `launcher.py`: rlimits, then the workload's user, then exec (a build's RUN step, the probe).
- `supervisor_process.py`: an instance's supervisor (see `workloads.supervisor`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

_HERE: Final = Path(__file__).resolve().parent

LAUNCHER_SCRIPT: Final = _HERE / "launcher.py"
"""Sets rlimits, switches user and execs the command (`sandbox.launcher_argv`)."""
SUPERVISOR_SCRIPT: Final = _HERE / "supervisor_process.py"
"""Supervises one instance's entrypoint (`supervisor.launch`)."""
