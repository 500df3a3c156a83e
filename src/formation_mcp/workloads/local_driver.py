"""The local driver: instances as supervised process groups on this worker's machine.

An instance lives in `work_dir/instances/<instance_id>/`: `root/` is the pack unpacked (the
entrypoint runs in `root/<WORKDIR>`), `tmp/` its TMPDIR, and the supervisor's files (`pid`,
`exit.json`, `output.log`). The entrypoint gets a scrubbed environment: PATH, HOME, LANG,
TMPDIR, the Formfile's ENV, `FMCP_INSTANCE_ID`, `FMCP_INSTANCE_NAME`, and for every `expose`
port a free loopback port as `FMCP_PORT_<port>` (the first one also as `PORT`); the workload
must listen on those (the local driver maps no ports). It runs in the workload sandbox
(`sandbox.WorkloadSandbox`: its own namespaces, only `root/` and `tmp/` writable, nothing of
the node's), as `run_as` when the worker is root. Limits: address space = memory_mb, file size
= disk_gb, CPU affinity = the first `vcpus` CPUs this worker may use, processes (with `run_as`)
as for builds.

Every state change is written to the instances table at once. When the node starts it
reconciles: an instance recorded as running whose supervisor is still there is adopted;
otherwise it becomes failed with the exit status its supervisor recorded (when there is one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from formation_mcp.clock import now_us
from formation_mcp.errors import FailedPrecondition, NotFound
from formation_mcp.events import model as events
from formation_mcp.events.model import Severity, last_lines
from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.build import DEFAULT_PATH, MANIFEST_DIR, MANIFEST_NAME
from formation_mcp.workloads.driver import Action, CreateRequest, InstanceStatus
from formation_mcp.workloads.instance_events import InstanceEvents, exit_data
from formation_mcp.workloads.instance_logs import InstanceLog, log_tail, read_log
from formation_mcp.workloads.instance_resources import (
    cpus,
    free_port,
    limits,
)
from formation_mcp.workloads.instances import (
    InstanceRecord,
    InstanceState,
    InstanceStore,
    NodeRegistry,
    formfile_resources,
)
from formation_mcp.workloads.pack_tools import WorkloadEnvironment
from formation_mcp.workloads.packs import PackStore
from formation_mcp.workloads.sandbox import check_reachable, run_as_identity
from formation_mcp.workloads.supervisor import (
    Exit,
    LaunchSpec,
    Supervised,
    adopt,
    launch,
    read_exit,
)

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS: Final = 10.0


def instance_id_for(operation: str) -> str:
    """Derived from the creating operation, so a redelivered create finds its own instance."""
    return hashlib.sha256(operation.encode()).hexdigest()[:32]


class LocalDriver:
    def __init__(
        self,
        environment: WorkloadEnvironment,
        *,
        stop_grace_seconds: float,
        log_bytes: int,
        stop_on_exit: bool,
    ) -> None:
        self.node_id = environment.node_id
        self._env = environment
        self._store = InstanceStore(environment.database)
        self._nodes = NodeRegistry(environment.database)
        self._packs = PackStore(environment.database)
        self._grace = stop_grace_seconds
        self._log_bytes = log_bytes
        self._stop_on_exit = stop_on_exit
        self._running: dict[str, Supervised] = {}
        self._ports: dict[str, set[int]] = {}
        """Loopback ports of the running instances (never handed out twice)."""
        self._stopping: set[str] = set()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        """Set by `stop()`: background tasks finish what they write and end (never cancelled
        in the middle of a database write, which would leave its connection behind)."""
        self._lock_fd: int | None = None
        self._start_time = now_us()
        self._events = InstanceEvents(environment.events, self.node_id)

    @property
    def instances_dir(self) -> Path:
        return self._env.work_dir / "instances"

    def directory(self, instance_id: str) -> Path:
        return self.instances_dir / instance_id

    def running_groups(self) -> dict[str, int]:
        """Running instance id -> its entrypoint's pid, the leader of its process group (what
        the metrics sampler measures)."""
        return {instance_id: running.pid for instance_id, running in self._running.items()}

    # -- lifecycle of the driver ---------------------------------------------------------------

    async def start(self) -> None:
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        self._lock_node()
        self._start_time = now_us()
        await self._nodes.heartbeat(self.node_id, self._start_time)
        await self._reconcile()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        self._events.node(events.NODE_ONLINE, f"node {self.node_id} is online")
        log.info("local driver started", extra={"node": self.node_id})
        await self._report_isolation()

    async def _report_isolation(self) -> None:
        """Say at start, not at the first workload, when workloads will not be isolated."""
        if self._env.sandbox.unsafe:
            log.warning(
                "workloads run WITHOUT isolation (FMCP_UNSAFE_WORKLOADS=true): they can see "
                "this node's processes and read what their user can read",
                extra={"node": self.node_id},
            )
            return
        try:
            await self._env.sandbox.check(run_as_identity(self._env.run_as))
        except FailedPrecondition as exc:
            log.warning("workloads will be refused: %s", exc.message, extra={"node": self.node_id})

    async def stop(self) -> None:
        """Stop this node's instances (FMCP_STOP_INSTANCES_ON_EXIT) or leave them running for
        the next start to adopt."""
        if self._stop_on_exit:
            await asyncio.gather(
                *(self._stop_on_shutdown(iid) for iid in list(self._running)),
                return_exceptions=True,
            )
        self._closing.set()
        await asyncio.gather(
            *self._tasks, *([self._heartbeat] if self._heartbeat else []), return_exceptions=True
        )
        self._running.clear()
        self._events.node(events.NODE_OFFLINE, f"node {self.node_id} went offline (shut down)")
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock_node(self) -> None:
        """One process per node id: two would take each other's instance calls."""
        lock_dir = self._env.work_dir / "nodes"
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            lock_dir / f"{self.node_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FailedPrecondition(
                f"another worker on this machine runs as node {self.node_id}; give each worker "
                "its own FMCP_NODE_ID (or FMCP_DATA_DIR)",
                reason="NODE_IN_USE",
            ) from None
        self._lock_fd = fd

    async def _beat(self) -> None:
        while not await _set_within(self._closing, HEARTBEAT_SECONDS):
            try:
                await self._nodes.heartbeat(self.node_id, self._start_time)
            except Exception:
                log.exception("node heartbeat failed")

    async def _reconcile(self) -> None:
        for instance in await self._store.on_node(self.node_id):
            if instance.state not in (InstanceState.RUNNING, InstanceState.CREATING):
                continue
            directory = self.directory(instance.instance_id)
            supervised = None
            if instance.state is InstanceState.RUNNING and instance.pid and instance.supervisor_pid:
                supervised = adopt(
                    directory, instance.pid, instance.supervisor_pid, instance.supervisor_start or 0
                )
            if supervised is not None:
                self._watch(instance.instance_id, supervised)
                log.info("adopted a running instance", extra={"instance": instance.instance_id})
                self._events.report(
                    instance,
                    events.INSTANCE_ADOPTED,
                    Severity.INFO,
                    f"instance {instance.name} still running: adopted by node {self.node_id} "
                    "after its restart",
                    pid=instance.pid,
                )
                continue
            ended = read_exit(directory) or Exit(None, None)
            if instance.state is InstanceState.CREATING:
                message = f"node {self.node_id} restarted while the instance was being created"
            else:
                message = f"found not running when node {self.node_id} started: {ended.describe()}"
            self._events.report(
                instance,
                events.INSTANCE_LOST,
                Severity.WARNING,
                f"instance {instance.name} lost: {message}",
                **exit_data(ended),
                last_lines=last_lines(log_tail(directory, events.MAX_LAST_LINES)),
            )
            await self._store.save(
                instance,
                state=InstanceState.FAILED,
                pid=None,
                exit_code=ended.code,
                end_time=ended.end_time_us or now_us(),
                status_message=message,
            )

    # -- supervision -----------------------------------------------------------------------------

    def _watch(self, instance_id: str, supervised: Supervised) -> None:
        self._running[instance_id] = supervised
        task = asyncio.get_running_loop().create_task(self._on_end(instance_id, supervised))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_end(self, instance_id: str, supervised: Supervised) -> None:
        """The entrypoint ended by itself: stopped (exit 0) or failed, with its exit code."""
        waits = [
            asyncio.ensure_future(self._closing.wait()),
            asyncio.ensure_future(supervised.ended.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if not supervised.ended.is_set():
            return  # the driver stops and leaves this instance running
        async with self._locks[instance_id]:
            if self._running.get(instance_id) is not supervised or instance_id in self._stopping:
                return  # stopped on purpose: the stopper records it
            del self._running[instance_id]
            instance = await self._store.get(instance_id)
            if instance is None or instance.state is not InstanceState.RUNNING:
                return
            ended = supervised.exit()
            state = InstanceState.STOPPED if ended.code == 0 else InstanceState.FAILED
            if ended.code == 0:
                self._events.report(
                    instance,
                    events.INSTANCE_EXITED,
                    Severity.INFO,
                    f"instance {instance.name} exited with code 0",
                    exit_code=0,
                )
            else:
                tail = await asyncio.to_thread(
                    log_tail, self.directory(instance_id), events.MAX_LAST_LINES
                )
                self._events.report(
                    instance,
                    events.INSTANCE_FAILED,
                    Severity.ERROR,
                    f"instance {instance.name} {ended.describe()}",
                    **exit_data(ended),
                    last_lines=last_lines(tail),
                )
            await self._store.save(
                instance,
                state=state,
                pid=None,
                exit_code=ended.code,
                end_time=ended.end_time_us or now_us(),
                status_message=f"the entrypoint {ended.describe()}",
            )

    # -- the driver interface -------------------------------------------------------------------

    async def create(self, context: ToolContext, request: CreateRequest) -> InstanceRecord:
        instance_id = instance_id_for(context.operation)
        async with self._locks[instance_id]:
            existing = await self._store.get(instance_id)
            if existing is not None and instance_id in self._running:
                return existing  # a redelivery of a create that already succeeded
            archive, formfile = await self._pack(request.build_id, request.owner)
            if existing is None:
                now = now_us()
                existing = InstanceRecord(
                    instance_id=instance_id,
                    owner=request.owner,
                    name=request.name,
                    build_id=request.build_id,
                    node=self.node_id,
                    state=InstanceState.CREATING,
                    resources=request.resources or formfile_resources(formfile),
                    metadata=dict(request.metadata),
                    network=dict(formfile.get("network") or {}),
                    status_message=f"being created on node {self.node_id}",
                    create_time=now,
                    update_time=now,
                )
                await self._store.insert(existing)
                self._events.report(
                    existing,
                    events.INSTANCE_CREATED,
                    Severity.INFO,
                    f"instance {existing.name} created from pack {existing.build_id} on node "
                    f"{self.node_id}",
                    build_id=existing.build_id,
                    operation=context.operation,
                )
            try:
                await context.progress(30, "materializing", "Unpacking the pack.")
                await asyncio.to_thread(self._materialize, archive, instance_id)
                await context.progress(70, "starting", "Starting the entrypoint.")
                running = await self._launch(existing)
                self._events.running(running, events.INSTANCE_RUNNING, "is running")
                return running
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    message = "the operation was cancelled"
                else:
                    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                started = self._running.get(instance_id)
                if started is not None:  # cancelled right after the start: undo it
                    self._stopping.add(instance_id)
                    with contextlib.suppress(Exception):
                        await started.stop(0.0)
                    self._stopping.discard(instance_id)
                    self._running.pop(instance_id, None)
                with contextlib.suppress(Exception):
                    self._events.report(
                        existing,
                        events.INSTANCE_FAILED,
                        Severity.ERROR,
                        f"instance {existing.name} could not be created: {message}",
                    )
                    await self._store.save(
                        existing,
                        state=InstanceState.FAILED,
                        status_message=f"could not be created: {message}",
                        end_time=now_us(),
                    )
                raise

    async def control(
        self, context: ToolContext, instance_id: str, action: Action
    ) -> InstanceRecord:
        async with self._locks[instance_id]:
            instance = await self._live(instance_id)
            if action in (Action.STOP, Action.RESTART):
                await context.progress(20, "stopping", f"Stopping {instance.name}.")
                instance = await self._stop(instance, self._grace, "stopped")
            if action in (Action.START, Action.RESTART):
                await context.progress(60, "starting", f"Starting {instance.name}.")
                was_running = instance.instance_id in self._running
                instance = await self._start_again(instance)
                if not was_running and action is Action.RESTART:
                    self._events.running(instance, events.INSTANCE_RESTARTED, "restarted")
                elif not was_running:
                    self._events.running(instance, events.INSTANCE_RUNNING, "is running")
            return instance

    async def delete(self, context: ToolContext, instance_id: str, force: bool) -> InstanceRecord:
        async with self._locks[instance_id]:
            instance = await self._live(instance_id)
            await context.progress(20, "stopping", f"Stopping {instance.name}.")
            instance = await self._stop(instance, 0.0 if force else self._grace, "stopped")
            await context.progress(70, "removing", "Removing its files.")
            await asyncio.to_thread(_remove_tree, self.directory(instance_id))
            deleted = await self._store.save(
                instance, state=InstanceState.DELETED, ports={}, status_message="deleted"
            )
            self._events.report(
                deleted, events.INSTANCE_DELETED, Severity.INFO, f"instance {instance.name} deleted"
            )
            return deleted

    async def status(self, instance_id: str, log_lines: int) -> InstanceStatus:
        instance = await self._live(instance_id)
        lines = await asyncio.to_thread(log_tail, self.directory(instance_id), log_lines)
        return InstanceStatus(instance, lines)

    async def read_log(self, instance_id: str, after: int | None = None) -> InstanceLog:
        await self._live(instance_id)
        return await asyncio.to_thread(read_log, self.directory(instance_id), after)

    def is_running(self, instance_id: str) -> bool:
        return instance_id in self._running

    # -- helpers ------------------------------------------------------------------------------

    async def _live(self, instance_id: str) -> InstanceRecord:
        instance = await self._store.get(instance_id)
        if instance is None or instance.state is InstanceState.DELETED:
            raise NotFound(
                f"no instance {instance_id!r}",
                reason="INSTANCE_NOT_FOUND",
                metadata={"instance": instance_id},
            )
        if instance.node != self.node_id:
            raise FailedPrecondition(
                f"instance {instance_id} runs on node {instance.node}, not on {self.node_id}",
                reason="WRONG_NODE",
            )
        return instance

    async def _pack(self, build_id: str, owner: str) -> tuple[Path, dict[str, Any]]:
        pack = await self._packs.get(build_id, owner)
        archive = self._env.artifact_dir / pack.archive_name
        if not archive.exists():
            raise FailedPrecondition(
                f"pack {build_id} is not in the artifact store of node {self.node_id} "
                f"({self._env.artifact_dir}); build it again or share FMCP_ARTIFACT_DIR",
                reason="PACK_NOT_ON_NODE",
            )
        formfile: dict[str, Any] = json.loads(pack.formfile)
        return archive, formfile

    def _materialize(self, archive: Path, instance_id: str) -> None:
        """A fresh root from the pack (tarfile's `data` filter refuses anything that would
        land outside it: absolute paths, `..`, links pointing out, devices)."""
        directory = self.directory(instance_id)
        _remove_tree(directory / "root")
        (directory / "tmp").mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(directory / "root", filter="data")
        who = run_as_identity(self._env.run_as)
        if who is not None:
            for path in [directory / "root", directory / "tmp"]:
                for base, dirs, files in os.walk(path):
                    for name in [base, *(os.path.join(base, n) for n in dirs + files)]:
                        os.lchown(name, who.uid, who.gid)

    def _manifest(self, instance_id: str) -> dict[str, Any]:
        path = self.directory(instance_id) / "root" / MANIFEST_DIR / MANIFEST_NAME
        try:
            manifest: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(
                f"the instance's pack manifest is unreadable ({exc}); delete and ship again",
                reason="PACK_MANIFEST_UNREADABLE",
            ) from None
        return manifest

    async def _launch(self, instance: InstanceRecord) -> InstanceRecord:
        manifest = self._manifest(instance.instance_id)
        argv = [str(part) for part in manifest.get("entrypoint") or []]
        if not argv:
            raise FailedPrecondition(
                "the pack has no entrypoint: add ENTRYPOINT (or `entrypoint`) to the Formfile "
                "and build again",
                reason="NO_ENTRYPOINT",
            )
        directory = self.directory(instance.instance_id)
        workdir = str(manifest.get("workdir") or "/").lstrip("/")
        cwd = directory / "root" / workdir
        cwd.mkdir(parents=True, exist_ok=True)
        taken = {port for other in self._running for port in self._ports.get(other, ())}
        ports = {
            str(port): free_port(instance.ports.get(str(port)), taken)
            for port in manifest.get("expose") or []
        }
        env = {
            "PATH": DEFAULT_PATH,
            "HOME": str(cwd),
            "LANG": "C.UTF-8",
            "TMPDIR": str(directory / "tmp"),
            **{str(k): str(v) for k, v in (manifest.get("env") or {}).items()},
            "FMCP_INSTANCE_ID": instance.instance_id,
            "FMCP_INSTANCE_NAME": instance.name,
        }
        for exposed, host_port in ports.items():
            env[f"FMCP_PORT_{exposed}"] = str(host_port)
        if ports:
            env["PORT"] = str(next(iter(ports.values())))
        who = run_as_identity(self._env.run_as)
        sandbox = self._env.sandbox
        await sandbox.check(who)
        if who is not None:
            check_reachable(cwd, who)
        spec = LaunchSpec(
            directory=directory,
            cwd=cwd,
            argv=sandbox.command(
                argv,
                writable=[directory / "root", directory / "tmp"],
                cwd=cwd,
                restore_signals=True,
            ),
            env=env,
            limits=limits(instance.resources, with_user=who is not None),
            cpus=cpus(instance.resources.vcpus),
            user=None if who is None else who.to_spec(),
            log_bytes=self._log_bytes,
            sandboxed=sandbox.isolated,
        )
        supervised = await launch(spec)
        self._watch(instance.instance_id, supervised)
        self._ports[instance.instance_id] = set(ports.values())
        return await self._store.save(
            instance,
            state=InstanceState.RUNNING,
            pid=supervised.pid,
            supervisor_pid=supervised.supervisor_pid,
            supervisor_start=supervised.start_ticks,
            ports=ports,
            exit_code=None,
            start_time=now_us(),
            end_time=None,
            status_message=f"running on node {self.node_id}",
        )

    async def _stop(self, instance: InstanceRecord, grace: float, verb: str) -> InstanceRecord:
        supervised = self._running.get(instance.instance_id)
        if supervised is None:
            if instance.state is not InstanceState.RUNNING:
                return instance  # stopped or failed already: nothing to stop
            ended = read_exit(self.directory(instance.instance_id)) or Exit(None, None)
        else:
            self._stopping.add(instance.instance_id)
            try:
                await supervised.stop(grace)
            finally:
                self._stopping.discard(instance.instance_id)
                self._running.pop(instance.instance_id, None)
            ended = supervised.exit()
            self._events.report(
                instance,
                events.INSTANCE_STOPPED,
                Severity.INFO,
                f"instance {instance.name} {verb} ({ended.describe()})",
                **exit_data(ended),
            )
        return await self._store.save(
            instance,
            state=InstanceState.STOPPED,
            pid=None,
            exit_code=ended.code,
            end_time=ended.end_time_us or now_us(),
            status_message=f"{verb} ({ended.describe()})",
        )

    async def _start_again(self, instance: InstanceRecord) -> InstanceRecord:
        if instance.instance_id in self._running:
            return instance
        if not (self.directory(instance.instance_id) / "root").is_dir():
            archive, _formfile = await self._pack(instance.build_id, instance.owner)
            await asyncio.to_thread(self._materialize, archive, instance.instance_id)
        return await self._launch(instance)

    async def _stop_on_shutdown(self, instance_id: str) -> None:
        async with self._locks[instance_id]:
            instance = await self._store.get(instance_id)
            if instance is not None:
                await self._stop(
                    instance, self._grace, f"stopped when node {self.node_id} shut down"
                )


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
