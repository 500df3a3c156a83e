"""Instance records: what the database knows about each instance (owner, node, state, ports,
exit code). The node that runs an instance writes its changes; the API reads them to place
calls on that node and to list instances.

States: creating -> running -> stopped | failed -> (running again on start) -> deleted.
A deleted instance's name can be used again; the row stays (state `deleted`) for the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import instances, nodes
from formation_mcp.errors import AlreadyExists, NotFound

RESOURCE_PREFIX = "instances/"


class InstanceState(StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Resources:
    vcpus: int
    memory_mb: int
    disk_gb: int

    def to_json(self) -> dict[str, int]:
        return {"vcpus": self.vcpus, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb}


DEFAULT_RESOURCES = Resources(vcpus=1, memory_mb=1024, disk_gb=10)
"""An instance's resources when neither the call nor the Formfile gives them."""


def formfile_resources(formfile: dict[str, Any]) -> Resources:
    """The resources a pack's (normalized) Formfile asks for, defaults filling the gaps."""
    given = formfile.get("resources") or {}
    return Resources(
        vcpus=int(given.get("vcpus") or DEFAULT_RESOURCES.vcpus),
        memory_mb=int(given.get("memory_mb") or DEFAULT_RESOURCES.memory_mb),
        disk_gb=int(given.get("disk_gb") or DEFAULT_RESOURCES.disk_gb),
    )


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    instance_id: str
    owner: str
    name: str
    build_id: str
    node: str
    state: InstanceState
    resources: Resources
    metadata: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    """Exposed port (as a string, JSON keys are strings) -> loopback port on the node."""
    pid: int | None = None
    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    exit_code: int | None = None
    status_message: str = ""
    create_time: int = 0
    update_time: int = 0
    start_time: int | None = None
    end_time: int | None = None
    network: dict[str, Any] = field(default_factory=dict)
    """The pack's Formfile NETWORK settings that differ from the defaults: recorded, not
    applied by the local driver (its instances get loopback ports only)."""

    @property
    def resource_name(self) -> str:
        return RESOURCE_PREFIX + self.instance_id

    def to_output(self, now: int | None = None) -> dict[str, Any]:
        """The JSON every vm tool returns for an instance (INSTANCE_SCHEMA)."""
        output: dict[str, Any] = {
            "instance_id": self.instance_id,
            "name": self.name,
            "owner": self.owner,
            "build_id": self.build_id,
            "node": self.node,
            "state": self.state.value,
            "ports": dict(self.ports),
            "resources": self.resources.to_json(),
            "metadata": dict(self.metadata),
            "status_message": self.status_message,
            "create_time": rfc3339(self.create_time),
            "update_time": rfc3339(self.update_time),
        }
        if self.pid is not None and self.state is InstanceState.RUNNING:
            output["pid"] = self.pid
        if self.exit_code is not None:
            output["exit_code"] = self.exit_code
        if self.network:
            output["network"] = dict(self.network)
            output["not_applied"] = ["network"]
        if self.start_time is not None and self.state is InstanceState.RUNNING:
            output["uptime_seconds"] = round(((now or now_us()) - self.start_time) / 1e6, 3)
        return output


def rfc3339(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")


def _from_row(row: sa.Row[Any]) -> InstanceRecord:
    resources = json.loads(row.resources)
    return InstanceRecord(
        instance_id=row.instance_id,
        owner=row.owner,
        name=row.name,
        build_id=row.build_id,
        node=row.node,
        state=InstanceState(row.state),
        resources=Resources(**resources),
        metadata=json.loads(row.metadata),
        ports=json.loads(row.ports),
        pid=row.pid,
        supervisor_pid=row.supervisor_pid,
        supervisor_start=row.supervisor_start,
        exit_code=row.exit_code,
        status_message=row.status_message,
        create_time=row.create_time,
        update_time=row.update_time,
        start_time=row.start_time,
        end_time=row.end_time,
        network=json.loads(row.network),
    )


def _values(instance: InstanceRecord) -> dict[str, Any]:
    return {
        "instance_id": instance.instance_id,
        "owner": instance.owner,
        "name": instance.name,
        "build_id": instance.build_id,
        "node": instance.node,
        "state": instance.state.value,
        "pid": instance.pid,
        "supervisor_pid": instance.supervisor_pid,
        "supervisor_start": instance.supervisor_start,
        "exit_code": instance.exit_code,
        "status_message": instance.status_message,
        "ports": json.dumps(instance.ports, sort_keys=True),
        "resources": json.dumps(instance.resources.to_json(), sort_keys=True),
        "metadata": json.dumps(instance.metadata, sort_keys=True),
        "create_time": instance.create_time,
        "update_time": instance.update_time,
        "start_time": instance.start_time,
        "end_time": instance.end_time,
        "network": json.dumps(instance.network, sort_keys=True),
    }


class InstanceStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, instance: InstanceRecord) -> None:
        """ALREADY_EXISTS when the owner has a live instance of that name."""
        try:
            async with self._db.write() as conn:
                await conn.execute(instances.insert().values(**_values(instance)))
        except IntegrityError:
            raise AlreadyExists(
                f"an instance named {instance.name!r} exists already; pick another name or "
                "delete that one (vm.delete)",
                reason="INSTANCE_EXISTS",
                metadata={"name": instance.name},
            ) from None

    async def save(self, instance: InstanceRecord, **changes: Any) -> InstanceRecord:
        """Write changed fields (and the update time); returns the new record."""
        updated = replace(instance, update_time=now_us(), **changes)
        async with self._db.write() as conn:
            await conn.execute(
                instances.update()
                .where(instances.c.instance_id == instance.instance_id)
                .values(**_values(updated))
            )
        return updated

    async def get(self, instance_id: str) -> InstanceRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(instances).where(instances.c.instance_id == instance_id)
                )
            ).first()
        return None if row is None else _from_row(row)

    async def find(self, reference: str, owner: str, *, any_owner: bool) -> InstanceRecord:
        """A live instance by id, or by name among the owner's; NOT_FOUND otherwise (also for
        another owner's instance, unless `any_owner`: admins)."""
        reference = reference.removeprefix(RESOURCE_PREFIX)
        live = instances.c.state != InstanceState.DELETED.value
        by_id = sa.select(instances).where(instances.c.instance_id == reference, live)
        by_name = sa.select(instances).where(
            instances.c.name == reference, instances.c.owner == owner, live
        )
        async with self._db.read() as conn:
            row = (await conn.execute(by_id)).first() or (await conn.execute(by_name)).first()
        if row is None or not (any_owner or row.owner == owner):
            raise NotFound(
                f"no instance {reference!r} (by id, or by name among yours); vm.list shows them",
                reason="INSTANCE_NOT_FOUND",
                metadata={"instance": reference},
            )
        return _from_row(row)

    async def list_live(self, owner: str | None, limit: int = 1000) -> list[InstanceRecord]:
        """Live instances, newest first; every owner's with `owner=None`."""
        query = sa.select(instances).where(instances.c.state != InstanceState.DELETED.value)
        if owner is not None:
            query = query.where(instances.c.owner == owner)
        query = query.order_by(instances.c.create_time.desc()).limit(limit)
        async with self._db.read() as conn:
            return [_from_row(row) for row in (await conn.execute(query)).all()]

    async def on_node(self, node: str) -> list[InstanceRecord]:
        query = sa.select(instances).where(
            instances.c.node == node, instances.c.state != InstanceState.DELETED.value
        )
        async with self._db.read() as conn:
            return [_from_row(row) for row in (await conn.execute(query)).all()]


class NodeRegistry:
    """Nodes say they are alive (a heartbeat row); calls for an instance whose node has not
    been seen for a while fail at once instead of waiting for it."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def heartbeat(self, node: str, start_time: int) -> None:
        now = now_us()
        async with self._db.write() as conn:
            updated = await conn.execute(
                nodes.update()
                .where(nodes.c.node_id == node)
                .values(last_seen=now, start_time=start_time)
            )
            if updated.rowcount == 0:
                await _insert_node(conn, node, start_time, now)

    async def last_seen(self, node: str) -> int | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(nodes.c.last_seen).where(nodes.c.node_id == node))
            ).first()
        return None if row is None else int(row.last_seen)


async def _insert_node(conn: AsyncConnection, node: str, start_time: int, now: int) -> None:
    await conn.execute(nodes.insert().values(node_id=node, start_time=start_time, last_seen=now))
