"""Workloads (build steps and instances) run where they cannot reach the node that runs them.

Every RUN step and every instance entrypoint runs under bubblewrap (`bwrap`, Debian's
`bubblewrap` package, installed by `make setup`) as an unprivileged user:

- its own user, PID, IPC, UTS and cgroup namespaces: it sees only its own processes (never the
  worker, the API server or another workload, so no `/proc/<pid>/environ` or open files of
  theirs), and it cannot make further user namespaces;
- its own filesystem view: the system's `/usr` and `/etc` read-only (with the `/bin`, `/lib`
  ... links of a merged-/usr system), a fresh `/proc`, a minimal `/dev`, an empty `/tmp`, and
  writable only the directories of this one workload (a build's directory, an instance's
  `root/` and `tmp/`), at their own paths. The data directory, the signing key, the database
  file, the artifact store, the server's working directory and every other workload's files are
  not there at all;
- the environment it is given (scrubbed by the caller: no variable of the server's);
- the user: the worker's own user when the worker is not root, else `FMCP_RUN_AS` (by default
  `nobody`): a workload never runs as root, and bwrap itself never runs privileged (the
  launcher drops to the workload's user first, then bwrap makes an unprivileged user
  namespace).

The network is shared with the node (instances listen on loopback ports the node hands out):
what listens on the node's loopback is reachable, so services there must not trust loopback
alone (the README's threat model says so).

Where bwrap is missing or cannot make its namespaces (no unprivileged user namespaces), the
node probes it once and refuses workloads with FAILED_PRECONDITION
`WORKLOAD_ISOLATION_UNAVAILABLE`, unless the operator sets `FMCP_UNSAFE_WORKLOADS=true`: then
workloads run without namespaces (scrubbed environment, rlimits, own process group and user
only), as before isolation existed.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.scripts import LAUNCHER_SCRIPT

BWRAP_SEARCH_PATH: Final = "/usr/bin:/bin:/usr/local/bin"
"""Where bwrap is looked for: fixed, never the caller's PATH."""
RESET_SIGNALS: Final = ("/usr/bin/env", "--default-signal=HUP,INT,TERM", "--")
"""Run inside the sandbox before an instance's entrypoint: the supervisor starts bwrap with
these signals ignored (so a stop reaches the workload, not bwrap), and the entrypoint gets them
back at their defaults."""
PROBE_TIMEOUT_SECONDS: Final = 10.0
MERGED_USR_LINKS: Final = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
READ_ONLY_SYSTEM: Final = ("/usr", "/etc")


# -- the user workloads run as ------------------------------------------------------------------


@dataclass(frozen=True)
class RunAsIdentity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def to_spec(self) -> dict[str, object]:
        """As the scripts (`scripts/launcher.py`, `scripts/supervisor_process.py`) take it."""
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}


def run_as_identity(run_as: str | None) -> RunAsIdentity | None:
    """The unprivileged user to switch to (None: stay the worker's own, non-root user)."""
    if not run_as:
        return None
    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise FailedPrecondition(
            f"the workload user {run_as!r} (FMCP_RUN_AS) does not exist", reason="RUN_AS_UNKNOWN"
        ) from None
    if entry.pw_uid == 0:
        message = f"the workload user {run_as!r} (FMCP_RUN_AS) is root; name an unprivileged user"
        raise FailedPrecondition(message, reason="RUN_AS_PRIVILEGED")
    if os.geteuid() != 0:
        message = f"running workloads as {run_as!r} (FMCP_RUN_AS) needs a worker running as root"
        raise FailedPrecondition(message, reason="RUN_AS_NOT_POSSIBLE")
    groups = tuple(sorted(set(os.getgrouplist(run_as, entry.pw_gid))))
    return RunAsIdentity(run_as, entry.pw_uid, entry.pw_gid, groups)


def _searchable(info: os.stat_result, who: RunAsIdentity) -> bool:
    if info.st_uid == who.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in who.groups or info.st_gid == who.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_reachable(path: Path, who: RunAsIdentity) -> None:
    """`who` must be able to walk to `path` (bwrap opens it as that user)."""
    for directory in [path, *path.parents]:
        if not _searchable(directory.stat(), who):
            raise FailedPrecondition(
                f"the workload user {who.name!r} cannot reach {path}: {directory} is not"
                " searchable by it; put FMCP_WORK_DIR where that user can reach it",
                reason="BUILD_DIR_UNREACHABLE",
            )


# -- the launcher --------------------------------------------------------------------------------

# `scripts/launcher.py` runs in a fresh, single-threaded interpreter: limits first, then the
# identity, then the command in its place (bwrap, which then starts the workload). Not
# `preexec_fn`: see `formation_mcp.workloads.scripts`.


def launcher_argv(
    argv: Sequence[str],
    limits: Sequence[tuple[int, int]],
    who: RunAsIdentity | None,
    env: Mapping[str, str],
) -> list[str]:
    """The command that runs `argv` (absolute program path) with `limits` as `who`."""
    if not sys.executable:
        raise FailedPrecondition("no Python interpreter to start workloads with")
    spec = {
        "limits": [list(pair) for pair in limits],
        "user": None if who is None else who.to_spec(),
        "argv": list(argv),
        "lc_ctype": "LC_CTYPE" in env,
    }
    return [sys.executable, "-I", "-S", str(LAUNCHER_SCRIPT), json.dumps(spec)]


# -- the sandbox ---------------------------------------------------------------------------------


class WorkloadSandbox:
    """How this node isolates workloads: `command()` wraps a workload's argv, `check()` says
    (once per user, probed) whether that works here."""

    def __init__(self, *, unsafe: bool, bwrap: str | None = None) -> None:
        self.unsafe = unsafe
        self.bwrap = bwrap or shutil.which("bwrap", path=BWRAP_SEARCH_PATH)
        self._probed: dict[int | None, str] = {}
        """uid (None: the worker's own) -> "" when bwrap works for it, else why not."""

    @property
    def isolated(self) -> bool:
        return not self.unsafe

    async def check(self, who: RunAsIdentity | None) -> None:
        """Raise FAILED_PRECONDITION unless workloads can run isolated as `who` (or the
        operator accepted unsafe workloads)."""
        if self.unsafe:
            return
        if who is None and os.geteuid() == 0:
            raise FailedPrecondition(
                "workloads never run as root: set FMCP_RUN_AS to an unprivileged user",
                reason="RUN_AS_REQUIRED",
            )
        key = None if who is None else who.uid
        if key not in self._probed:
            self._probed[key] = await self._probe(who)
        problem = self._probed[key]
        if problem:
            raise FailedPrecondition(
                f"workloads cannot be isolated on this node: {problem}. Install bubblewrap "
                "(`make setup` does, as root) on a kernel that allows unprivileged user "
                "namespaces, or set FMCP_UNSAFE_WORKLOADS=true to run them without isolation",
                reason="WORKLOAD_ISOLATION_UNAVAILABLE",
            )

    def command(
        self,
        argv: Sequence[str],
        *,
        writable: Sequence[Path],
        cwd: Path,
        restore_signals: bool = False,
    ) -> list[str]:
        """`argv` as it runs in the sandbox (unchanged when workloads are unsafe). With
        `restore_signals`, SIGHUP, SIGINT and SIGTERM are reset to their defaults inside, for
        a caller that starts bwrap with them ignored (see RESET_SIGNALS)."""
        if self.unsafe:
            return list(argv)
        if self.bwrap is None:
            raise FailedPrecondition(
                "bubblewrap (bwrap) is not installed", reason="WORKLOAD_ISOLATION_UNAVAILABLE"
            )
        if restore_signals:
            if "=" in argv[0]:  # env(1) would take it for a variable
                raise FailedPrecondition(
                    f"the program {argv[0]!r} has '=' in its name; rename it",
                    reason="ENTRYPOINT_UNUSABLE",
                )
            argv = [*RESET_SIGNALS, *argv]
        options = [
            "--unshare-all",
            "--unshare-user",
            "--share-net",
            "--disable-userns",
            "--die-with-parent",
            *_system_mounts(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/dev/shm",
            "--tmpfs",
            "/tmp",
        ]
        for path in writable:
            options += ["--bind", str(path), str(path)]
        options += ["--chdir", str(cwd)]
        return [self.bwrap, *options, "--", *argv]

    def exit_code(self, code: int) -> int:
        """An exit code as the workload itself ended: bwrap reports a workload killed by
        signal N as 128 + N; we report it as -N, like a process we started directly."""
        if self.isolated and 128 < code <= 128 + 64:
            return 128 - code
        return code

    async def _probe(self, who: RunAsIdentity | None) -> str:
        if self.bwrap is None or not os.access(self.bwrap, os.X_OK):
            return "bubblewrap (bwrap) is not installed"
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        argv = launcher_argv(self.command(["/bin/true"], writable=(), cwd=Path("/")), (), who, env)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
            _, stderr = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT_SECONDS)
        except (OSError, TimeoutError) as exc:
            return f"bwrap could not be started ({exc})"
        if process.returncode == 0:
            return ""
        said = stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap failed ({said[-1] if said else f'exit code {process.returncode}'})"


def _system_mounts() -> list[str]:
    """Read-only /usr and /etc, and the top-level links (or directories) of /bin, /lib ..."""
    mounts: list[str] = []
    for path in READ_ONLY_SYSTEM:
        mounts += ["--ro-bind", path, path]
    for path in MERGED_USR_LINKS:
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    return mounts
