"""Start a workload command with limits, as its user: `python -I -S launcher.py <spec JSON>`.

The spec (written by `formation_mcp.workloads.sandbox.launcher_argv`) is an object:
`limits` ([resource, value] pairs, already clamped to the hard limits), `user` (null, or
`{name, uid, gid, groups}`), `argv` (absolute program path first) and `lc_ctype` (whether
the caller's environment had LC_CTYPE).

Runs in a fresh, single-threaded interpreter: limits first (as the worker's user, so any value
up to its hard limit is allowed), then the identity, then the command in this process's place
(bwrap, which then starts the workload). A user switch that fails exits 126 with a line on
stderr. Standard library only (see `formation_mcp.workloads.scripts`).
"""

from __future__ import annotations

import json
import os
import resource
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every start
if TYPE_CHECKING:
    from typing import TypedDict

    class Identity(TypedDict):
        name: str
        uid: int
        gid: int
        groups: list[int]

    class LaunchSpec(TypedDict):
        limits: list[list[int]]
        user: Identity | None
        argv: list[str]
        lc_ctype: bool


CANNOT_SWITCH_USER = 126


def set_limits(limits: list[list[int]]) -> None:
    for kind, value in limits:
        resource.setrlimit(kind, (value, value))


def switch_user(who: Identity) -> None:
    """Become `who` for good (real, effective and saved ids), or exit 126 saying why."""
    try:
        os.setgroups(who["groups"])
        os.setresgid(who["gid"], who["gid"], who["gid"])
        os.setresuid(who["uid"], who["uid"], who["uid"])
    except OSError as exc:
        print(f"formation: cannot run as {who['name']}: {exc}", file=sys.stderr, flush=True)
        sys.exit(CANNOT_SWITCH_USER)


def main(argv: list[str]) -> None:
    spec: LaunchSpec = json.loads(argv[1])
    set_limits(spec["limits"])
    who = spec["user"]
    if who is not None:
        switch_user(who)
    if not spec["lc_ctype"]:
        os.environ.pop("LC_CTYPE", None)  # added by Python's C-locale coercion (PEP 538)
    os.execv(spec["argv"][0], spec["argv"])


if __name__ == "__main__":
    main(sys.argv)
