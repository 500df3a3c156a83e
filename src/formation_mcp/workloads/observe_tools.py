"""The tools that show what an instance did: `vm.events` (its events, from the database) and
`vm.logs` (its output, read on the node that runs it; `follow` streams new lines into the
operation's log until `duration` ends or the instance stops running).

Every answer is bounded: a page of events with a cursor; log lines within `tail` and
`max_bytes`, saying what was left out and where to continue (`next_cursor`).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from formation.mcp.v1 import operations_pb2

from formation_mcp.clock import datetime_to_us, now_us
from formation_mcp.db.schema import events as events_table
from formation_mcp.errors import FailedPrecondition, InvalidArgument
from formation_mcp.events import store as event_store
from formation_mcp.events.filtering import parse_filter
from formation_mcp.events.model import parse_cursor, to_json
from formation_mcp.paging import decode_token, encode_token, query_key
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import Placer, ToolRegistry, ToolSpec
from formation_mcp.workloads.driver import InstanceDriver
from formation_mcp.workloads.instance_logs import LogAnswer, LogQuery, LogRecord, select
from formation_mcp.workloads.instances import RESOURCE_PREFIX, InstanceStore
from formation_mcp.workloads.pack_tools import WorkloadEnvironment

SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_TAIL: Final = 200
MAX_TAIL: Final = 5000
DEFAULT_MAX_BYTES: Final = 16 * 1024
MAX_MAX_BYTES: Final = 256 * 1024
DEFAULT_FOLLOW_SECONDS: Final = 60.0
MAX_FOLLOW_SECONDS: Final = 600.0
FOLLOW_POLL_SECONDS: Final = 0.25
FOLLOW_MAX_LINES_PER_POLL: Final = 1000
DEFAULT_EVENTS: Final = 50
MAX_EVENTS: Final = 200
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ID: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "Instance id or name.",
}
_LINE: Final = {
    "type": "object",
    "properties": {
        "time": {"type": "string"},
        "stream": {"enum": ["stdout", "stderr", "system"]},
        "text": {"type": "string"},
    },
    "required": ["stream", "text"],
}

VM_LOGS_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": _ID,
        "tail": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_TAIL,
            "description": f"The last N lines (default {DEFAULT_TAIL}); with cursor, the next N.",
        },
        "since": {
            "type": "string",
            "maxLength": 64,
            "description": "Only lines from this RFC 3339 time, or this long ago (10m, 2h).",
        },
        "stream": {"enum": ["stdout", "stderr", "all"], "description": "Default all."},
        "cursor": {
            "type": "string",
            "maxLength": 512,
            "description": "next_cursor (or start_cursor) of an earlier answer: continue there.",
        },
        "max_bytes": {
            "type": "integer",
            "minimum": 256,
            "maximum": MAX_MAX_BYTES,
            "description": f"Cap on the answer's lines (default {DEFAULT_MAX_BYTES}).",
        },
        "follow": {
            "type": "boolean",
            "description": "Stream new lines into the operation's log until duration ends "
            "or the instance stops (long-running).",
        },
        "duration": {
            "type": "string",
            "maxLength": 16,
            "description": "How long to follow (default 60s, at most 10m).",
        },
    },
    "required": ["id"],
    "additionalProperties": False,
}
VM_LOGS_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "instance_id": {"type": "string"},
        "lines": {"type": "array", "items": _LINE},
        "truncated": {"type": "boolean"},
        "lines_left_out": {"type": "integer"},
        "bytes_left_out": {"type": "integer"},
        "dropped_bytes": {
            "type": "integer",
            "description": "Older output dropped by the size cap (FMCP_INSTANCE_LOG_BYTES).",
        },
        "next_cursor": {"type": "string"},
        "start_cursor": {"type": "string", "description": "The oldest line kept."},
        "hint": {"type": "string"},
        "followed_lines": {"type": "integer"},
        "ended": {"enum": ["duration", "not_running"]},
    },
    "required": ["instance_id", "lines", "truncated", "next_cursor"],
}
VM_EVENTS_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": _ID,
        "filter": {
            "type": "string",
            "maxLength": 1024,
            "description": 'As ListEvents: e.g. type = "instance.*" AND severity = ERROR.',
        },
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS},
        "cursor": {"type": "string", "maxLength": 512, "description": "next_cursor of a page."},
    },
    "required": ["id"],
    "additionalProperties": False,
}
VM_EVENTS_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "instance_id": {"type": "string"},
        "events": {"type": "array", "items": {"type": "object"}},
        "next_cursor": {"type": "string", "description": "Empty on the last page."},
    },
    "required": ["instance_id", "events", "next_cursor"],
}


def parse_since(text: str, now: int) -> int:
    """Microseconds from an RFC 3339 time or a duration ago; INVALID_ARGUMENT otherwise."""
    match = _DURATION.match(text)
    if match is not None:
        return now - int(float(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1e6)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidArgument.for_field(
            "arguments.since",
            f"{text[:64]!r} is neither an RFC 3339 time with a zone (2026-12-04T10:00:00Z) "
            "nor a duration (90s, 10m, 2h, 1d)",
        )
    return datetime_to_us(moment)


def follow_seconds(arguments: dict[str, Any]) -> float:
    text = arguments.get("duration")
    if text is None:
        return DEFAULT_FOLLOW_SECONDS
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else -1.0
    if not 0 < seconds <= MAX_FOLLOW_SECONDS:
        raise InvalidArgument.for_field(
            "arguments.duration", f"{text[:16]!r}: a duration from 1s to 10m, e.g. 60s or 5m"
        )
    return seconds


def precheck_vm_logs(arguments: dict[str, Any]) -> None:
    if "since" in arguments:
        parse_since(arguments["since"], now_us())
    follow_seconds(arguments)
    if "duration" in arguments and not arguments.get("follow"):
        raise InvalidArgument.for_field("arguments.duration", "only with follow: true")


def _cursor(instance_id: str, owner: str, offset: int) -> str:
    return encode_token(str(offset), query_key("vm.logs", instance_id, owner))


def _offset(token: str, instance_id: str, owner: str) -> int:
    try:
        position = decode_token(token, query_key("vm.logs", instance_id, owner))
    except InvalidArgument:
        position = ""
    if not position.isdigit():
        raise InvalidArgument.for_field(
            "arguments.cursor",
            "is not a cursor of this instance's logs for you: pass next_cursor of an earlier "
            "vm.logs answer for the same instance unchanged",
        )
    return int(position)


class ObserveTools:
    def __init__(self, environment: WorkloadEnvironment, driver: InstanceDriver | None) -> None:
        self._db = environment.database
        self._instances = InstanceStore(environment.database)
        self._driver = driver

    async def events(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        instance = await self._instances.find(
            arguments["id"], context.owner, any_owner=context.caller_is_admin
        )
        filter_text = arguments.get("filter", "")
        parsed = parse_filter(filter_text, "arguments.filter")
        key = query_key("vm.events", instance.instance_id, context.owner, filter_text)
        before = None
        if token := arguments.get("cursor"):
            try:
                before = parse_cursor(decode_token(token, key), "arguments.cursor")
            except InvalidArgument:
                raise InvalidArgument.for_field(
                    "arguments.cursor",
                    "is not a cursor of this instance's events (with this filter) for you: "
                    "pass next_cursor of the previous page unchanged",
                ) from None
        size = int(arguments.get("page_size", DEFAULT_EVENTS))
        condition = sa.and_(events_table.c.resource == instance.resource_name, parsed.condition())
        async with self._db.read() as conn:
            found = await event_store.newest_first(conn, condition, before, size + 1)
        next_cursor = encode_token(found[size - 1].id, key) if len(found) > size else ""
        return {
            "instance_id": instance.instance_id,
            "events": [to_json(record) for record in found[:size]],
            "next_cursor": next_cursor,
        }

    async def logs(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        driver = self._driver
        if driver is None:
            raise FailedPrecondition(
                "this process runs no instance driver (no worker)", reason="NO_DRIVER"
            )
        instance_id = context.resource.removeprefix(RESOURCE_PREFIX)
        after = None
        if token := arguments.get("cursor"):
            after = _offset(token, instance_id, context.owner)
        query = LogQuery(
            tail=int(arguments.get("tail", DEFAULT_TAIL)),
            since_us=parse_since(arguments["since"], now_us()) if "since" in arguments else None,
            stream=arguments.get("stream", "all"),
            after=after,
            max_bytes=int(arguments.get("max_bytes", DEFAULT_MAX_BYTES)),
        )
        log = await driver.read_log(instance_id, after)
        answer = select(log, query)
        output = self._answer(instance_id, context.owner, answer, log.start)
        if not arguments.get("follow"):
            return output
        return await self._follow(
            context, driver, instance_id, query, answer, follow_seconds(arguments)
        )

    def _answer(
        self, instance_id: str, owner: str, answer: LogAnswer, start: int
    ) -> dict[str, Any]:
        output: dict[str, Any] = {
            "instance_id": instance_id,
            "lines": [record.to_json() for record in answer.lines],
            "truncated": answer.truncated,
            "lines_left_out": answer.lines_left_out,
            "bytes_left_out": answer.bytes_left_out,
            "dropped_bytes": answer.dropped_bytes,
            "next_cursor": _cursor(instance_id, owner, answer.next_offset),
            "start_cursor": _cursor(instance_id, owner, start),
        }
        if answer.truncated:
            output["hint"] = (
                f"{answer.lines_left_out} lines ({answer.bytes_left_out} bytes) left out: pass "
                "next_cursor to continue, or narrow with tail, since or stream, or raise "
                f"max_bytes (at most {MAX_MAX_BYTES})"
            )
        elif answer.dropped_bytes:
            output["hint"] = (
                f"{answer.dropped_bytes} bytes of older output were dropped by the size cap"
            )
        return output

    async def _follow(
        self,
        context: ToolContext,
        driver: InstanceDriver,
        instance_id: str,
        query: LogQuery,
        first: LogAnswer,
        seconds: float,
    ) -> dict[str, Any]:
        """The first answer's lines, then each new line, into the operation's log."""
        await _send(context, first.lines)
        if first.lines:
            await context.progress(1, "following", first.lines[-1].text[:200])
        offset, followed = first.next_offset, len(first.lines)
        started = time.monotonic()
        ended = "duration"
        while (elapsed := time.monotonic() - started) < seconds:
            context.check_cancelled()
            log = await driver.read_log(instance_id, offset)
            fresh = [r for r in log.records if _wanted(query, r)]
            if len(fresh) > FOLLOW_MAX_LINES_PER_POLL:
                skipped = len(fresh) - FOLLOW_MAX_LINES_PER_POLL
                await context.log(
                    f"[formation: {skipped} lines skipped: more than "
                    f"{FOLLOW_MAX_LINES_PER_POLL} in {FOLLOW_POLL_SECONDS}s]",
                    stream=operations_pb2.LogLine.SYSTEM,
                )
                fresh = fresh[-FOLLOW_MAX_LINES_PER_POLL:]
            await _send(context, fresh)
            followed += len(fresh)
            offset = max(offset, log.end)
            if fresh:
                percent = max(1, min(99, int(elapsed * 100 / seconds)))
                await context.progress(percent, "following", fresh[-1].text[:200])
            if not driver.is_running(instance_id) and not fresh:
                ended = "not_running"
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        return {
            "instance_id": instance_id,
            "lines": [],
            "truncated": False,
            "next_cursor": _cursor(instance_id, context.owner, offset),
            "followed_lines": followed,
            "ended": ended,
        }


def _wanted(query: LogQuery, record: LogRecord) -> bool:
    return query.stream == "all" or record.stream in (query.stream, "system")


_STREAMS: Final = {
    "stdout": operations_pb2.LogLine.STDOUT,
    "stderr": operations_pb2.LogLine.STDERR,
    "system": operations_pb2.LogLine.SYSTEM,
}


async def _send(context: ToolContext, records: list[LogRecord]) -> None:
    """Consecutive lines of one stream in one log event."""
    run: list[str] = []
    stream = ""
    for record in records:
        if run and record.stream != stream:
            await context.log(*run, stream=_STREAMS[stream])
            run = []
        stream = record.stream
        run.append(record.text)
    if run:
        await context.log(*run, stream=_STREAMS[stream])


def register(
    registry: ToolRegistry,
    environment: WorkloadEnvironment,
    driver: InstanceDriver | None,
    place_instance: Placer,
) -> None:
    tools = ObserveTools(environment, driver)

    def spec(**fields: Any) -> ToolSpec:
        return ToolSpec(version="1.0.0", category="vm", **fields)

    registry.register(
        spec(
            name="vm.events",
            title="Events of an instance",
            description=(
                "What happened to an instance (by id or name), newest first: created, running, "
                "exited, failed (exit code or signal, last lines), stopped, restarted, "
                "deleted, adopted or lost by its node. Page on with next_cursor."
            ),
            input_schema=VM_EVENTS_INPUT,
            output_schema=VM_EVENTS_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        tools.events,
    )
    registry.register(
        spec(
            name="vm.logs",
            title="Output of an instance",
            description=(
                "An instance's output lines (time, stream), bounded: the last `tail` lines "
                "(default 200), `since` a time or duration, one `stream`, at most `max_bytes` "
                "(default 16 KiB). A cut answer says so and gives next_cursor to page on. "
                "follow: true streams new lines into the operation's log for `duration` "
                "(default 60s, at most 10m) or until the instance stops."
            ),
            input_schema=VM_LOGS_INPUT,
            output_schema=VM_LOGS_OUTPUT,
            read_only=True,
            precheck=precheck_vm_logs,
            placement=place_instance,
            runs_long=lambda arguments: bool(arguments.get("follow")),
        ),
        tools.logs,
    )
