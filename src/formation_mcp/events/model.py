"""The event record, its id, its proto form and the bounds on what an event carries.

Ids are 16 hex digits: the time the API recorded the event (microseconds, 13 digits) and a
counter (3 digits) for events recorded in the same microsecond. They are assigned under a
lock in the recording transaction (see `store`), so they sort in commit order: a reader that
sees an event has seen every event with a smaller id. That makes an id a watch cursor.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from formation.mcp.v1 import events_pb2
from google.protobuf import json_format, struct_pb2

from formation_mcp.clock import to_timestamp
from formation_mcp.errors import InvalidArgument

NAME_PREFIX: Final = "events/"
ID_CHARS: Final = 16
_COUNTER_DIGITS: Final = 3
MAX_COUNTER: Final = 16**_COUNTER_DIGITS - 1
_ID = re.compile(r"[0-9a-f]{16}")
MAX_MESSAGE_CHARS: Final = 500
MAX_DATA_BYTES: Final = 8192
MAX_LAST_LINES: Final = 20
MAX_LINE_CHARS: Final = 300

INSTANCE_CREATED: Final = "instance.created"
INSTANCE_RUNNING: Final = "instance.running"
INSTANCE_EXITED: Final = "instance.exited"
INSTANCE_FAILED: Final = "instance.failed"
INSTANCE_STOPPED: Final = "instance.stopped"
INSTANCE_RESTARTED: Final = "instance.restarted"
INSTANCE_DELETED: Final = "instance.deleted"
INSTANCE_ADOPTED: Final = "instance.adopted"
INSTANCE_LOST: Final = "instance.lost"
PACK_BUILT: Final = "pack.built"
PACK_BUILD_FAILED: Final = "pack.build_failed"
NODE_ONLINE: Final = "node.online"
NODE_OFFLINE: Final = "node.offline"
OPERATION_SUCCEEDED: Final = "operation.succeeded"
OPERATION_FAILED: Final = "operation.failed"
OPERATION_CANCELLED: Final = "operation.cancelled"
OPERATION_APPROVAL_REQUESTED: Final = "operation.approval_requested"
OPERATION_APPROVED: Final = "operation.approved"
OPERATION_DENIED: Final = "operation.denied"
OPERATION_APPROVAL_EXPIRED: Final = "operation.approval_expired"
NETWORK_EXPOSED: Final = "network.exposed"
NETWORK_UNEXPOSED: Final = "network.unexposed"


class Severity(IntEnum):
    """The proto's Event.Severity numbers."""

    INFO = events_pb2.Event.INFO
    WARNING = events_pb2.Event.WARNING
    ERROR = events_pb2.Event.ERROR


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event before it is recorded: `key` makes recording it idempotent."""

    key: str
    type: str
    resource: str
    owner: str
    time: int
    severity: Severity
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    node: str = ""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A recorded event (times in microseconds since the epoch)."""

    id: str
    type: str
    resource: str
    owner: str
    time: int
    severity: Severity
    message: str
    data: dict[str, Any]
    node: str

    @property
    def name(self) -> str:
        return NAME_PREFIX + self.id


def event_id(record_us: int, counter: int) -> str:
    return f"{record_us:013x}{counter:0{_COUNTER_DIGITS}x}"


def next_event_id(last: str | None, now: int) -> str:
    """The id after `last` (or the first), never smaller even when the clock went back."""
    if last is None:
        return event_id(now, 0)
    last_us, last_counter = int(last[:13], 16), int(last[13:], 16)
    if now > last_us:
        return event_id(now, 0)
    if last_counter < MAX_COUNTER:
        return event_id(last_us, last_counter + 1)
    return event_id(last_us + 1, 0)


def parse_cursor(text: str, field_name: str) -> str:
    """An event id from an event's name or id; INVALID_ARGUMENT naming `field_name`."""
    event = text.removeprefix(NAME_PREFIX)
    if not _ID.fullmatch(event):
        raise InvalidArgument.for_field(
            field_name,
            f"{text[:64]!r} is not an event: pass the name of the last event you received "
            "(events/ and 16 hex digits), or nothing to start from now",
        )
    return event


def bounded_message(text: str) -> str:
    """One line, at most MAX_MESSAGE_CHARS."""
    line = " ".join(text.split())
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 1] + "…"
    return line


def last_lines(lines: list[str]) -> list[str]:
    """The last MAX_LAST_LINES lines, each cut at MAX_LINE_CHARS (for `instance.failed`)."""
    return [
        line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"
        for line in lines[-MAX_LAST_LINES:]
    ]


def bounded_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` when its JSON fits MAX_DATA_BYTES; otherwise without its largest values, saying
    which were left out (`truncated`)."""
    text = json.dumps(data, sort_keys=True, default=str)
    if len(text.encode()) <= MAX_DATA_BYTES:
        return dict(json.loads(text))
    kept = dict(json.loads(text))
    dropped: list[str] = []
    for key in sorted(kept, key=lambda k: len(json.dumps(kept[k])), reverse=True):
        dropped.append(key)
        del kept[key]
        if len(json.dumps(kept).encode()) <= MAX_DATA_BYTES - 200:
            break
    kept["truncated"] = sorted(dropped)
    return kept


def to_proto(record: EventRecord) -> events_pb2.Event:
    event = _event_proto(record)
    event.name = record.name
    return event


def to_json(record: EventRecord) -> dict[str, Any]:
    """The event as a tool answers it (the proto's JSON, snake_case names)."""
    return json_format.MessageToDict(to_proto(record), preserving_proto_field_name=True)


def new_event_to_proto(event: NewEvent) -> events_pb2.Event:
    return _event_proto(event)


def _event_proto(event: NewEvent | EventRecord) -> events_pb2.Event:
    """What a reported and a recorded event share (a recorded one has its name too)."""
    data = struct_pb2.Struct()
    data.update(event.data)
    return events_pb2.Event(
        type=event.type,
        resource=event.resource,
        owner=event.owner,
        time=to_timestamp(event.time),
        severity=events_pb2.Event.Severity.ValueType(int(event.severity)),
        message=event.message,
        data=data,
        node=event.node,
    )


def new_event_from_proto(key: str, event: events_pb2.Event) -> NewEvent:
    """A node's reported event, bounded; ValueError when it cannot be recorded."""
    if not key or len(key) > 128:
        raise ValueError("an event key is 1 to 128 characters")
    if not event.type or len(event.type) > 64 or not event.resource or len(event.resource) > 255:
        raise ValueError("an event needs a type (<= 64 chars) and a resource (<= 255)")
    try:
        severity = Severity(event.severity)
    except ValueError:
        severity = Severity.INFO
    micros = event.time.seconds * 1_000_000 + event.time.nanos // 1000
    data = json_format.MessageToDict(event.data) if event.HasField("data") else {}
    return NewEvent(
        key=key,
        type=event.type,
        resource=event.resource,
        owner=event.owner[:255],
        time=micros,
        severity=severity,
        message=bounded_message(event.message),
        data=bounded_data(data),
        node=event.node[:128],
    )
