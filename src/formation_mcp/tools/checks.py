"""What CallTool works out from a call's arguments: their digest for the audit log, whether
they are valid (JSON Schema, then the tool's precheck), and the work item a long-running call
queues.

For small arguments of a tool without a precheck this is microseconds and runs inline. Big
arguments (more than `HEAVY_VALUES` values or `HEAVY_CHARS` characters: jsonschema, the
digest and the protobuf conversion cost milliseconds per megabyte) and every precheck (a
Formfile's grammar) run on the `offload.ARGUMENT_CHECKS` threads instead, so the event loop
keeps answering other calls while they are checked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from formation.mcp.internal.v1 import queue_pb2
from google.protobuf import json_format

from formation_mcp.errors import InvalidArgument
from formation_mcp.offload import ARGUMENT_CHECKS, Offload
from formation_mcp.structs import StructSize
from formation_mcp.tools import audit
from formation_mcp.tools.registry import Placement, ToolSpec

HEAVY_VALUES: Final = 256
HEAVY_CHARS: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class CheckedArguments:
    digest: str
    """sha256 of the canonical JSON (what the audit log keeps instead of the arguments)."""
    invalid: InvalidArgument | None
    """Why the arguments are refused, or None: raised by the caller at its turn, after the
    permission and request-id checks."""
    size: StructSize | None
    """What `structs.arguments_from_struct` measured (None: not measured, small)."""

    @property
    def big(self) -> bool:
        """Whether more work on these arguments runs off the event loop too."""
        return is_big(self.size)


def is_big(size: StructSize | None) -> bool:
    return size is not None and (size.values > HEAVY_VALUES or size.chars > HEAVY_CHARS)


async def check_arguments(
    spec: ToolSpec,
    arguments: dict[str, Any],
    size: StructSize | None,
    offload: Offload = ARGUMENT_CHECKS,
) -> CheckedArguments:
    """`size` is what `structs.arguments_from_struct` measured (None: small)."""
    if is_big(size) or spec.precheck is not None:
        return await offload.run(_check, spec, arguments, size)
    return _check(spec, arguments, size)


def _check(spec: ToolSpec, arguments: dict[str, Any], size: StructSize | None) -> CheckedArguments:
    digest = audit.arguments_digest(arguments)
    try:
        spec.validate(arguments)
    except InvalidArgument as error:
        return CheckedArguments(digest, error, size)
    return CheckedArguments(digest, None, size)


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """What a long-running call queues: its operation, tool, owner and where it must run."""

    operation: str
    tool: str
    owner: str
    placement: Placement | None


async def work_item(
    order: WorkOrder,
    arguments: dict[str, Any],
    checked: CheckedArguments,
    offload: Offload = ARGUMENT_CHECKS,
) -> queue_pb2.WorkItem:
    """The queue message (its arguments converted off the loop when they are big)."""
    if checked.big:
        return await offload.run(_work_item, order, arguments)
    return _work_item(order, arguments)


def _work_item(order: WorkOrder, arguments: dict[str, Any]) -> queue_pb2.WorkItem:
    item = queue_pb2.WorkItem(
        operation=order.operation,
        tool=order.tool,
        owner=order.owner,
        attempt=1,
        trace_id=uuid.uuid4().hex,
    )
    if order.placement is not None:
        item.node = order.placement.node
        item.resource = order.placement.resource
    json_format.ParseDict(arguments, item.arguments)
    return item
