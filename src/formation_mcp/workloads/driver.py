"""The interface between the workload tools and what really runs instances.

The local driver (`local_driver.LocalDriver`) runs them as supervised process groups on the
worker's machine; later backends (the Formation network, qemu) implement the same methods.
A driver runs on one node and acts only on the instances of that node: the Tools service
places calls for an instance on its node (see `vm_tools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.instance_logs import InstanceLog
from formation_mcp.workloads.instances import InstanceRecord, Resources


class Action(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"


@dataclass(frozen=True, slots=True)
class CreateRequest:
    owner: str
    name: str
    build_id: str
    resources: Resources | None
    """None: the Formfile's resources (or the defaults)."""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    instance: InstanceRecord
    logs: list[str]


class InstanceDriver(Protocol):
    node_id: str

    async def start(self) -> None:
        """Reconcile the recorded instances of this node with what really runs."""
        ...

    async def stop(self) -> None: ...

    async def create(self, context: ToolContext, request: CreateRequest) -> InstanceRecord:
        """Materialize the pack and start the instance (idempotent per operation)."""
        ...

    async def control(
        self, context: ToolContext, instance_id: str, action: Action
    ) -> InstanceRecord: ...

    async def delete(
        self, context: ToolContext, instance_id: str, force: bool
    ) -> InstanceRecord: ...

    async def status(self, instance_id: str, log_lines: int) -> InstanceStatus: ...

    async def read_log(self, instance_id: str, after: int | None = None) -> InstanceLog:
        """The instance's output kept on this node (from offset `after`, when given)."""
        ...

    def is_running(self, instance_id: str) -> bool:
        """Whether this node runs the instance's entrypoint now."""
        ...
