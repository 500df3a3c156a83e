"""The AIP-160 filter subset of ListEvents and WatchEvents: comparisons joined by AND.

    type = "instance.*"  AND  resource = "instances/abc"  AND  severity != INFO
    AND  time >= "2026-12-04T10:00:00Z"

`type` and `resource` take `=` and `!=` (`type` with a trailing `*` matches a prefix, with
`=` only), `severity` takes `=` and `!=` with INFO, WARNING or ERROR, `time` every comparison
with an RFC 3339 timestamp. A filter becomes both a SQL condition (for reading the table) and
a predicate (for events a watch receives live), which always agree.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from formation_mcp.clock import datetime_to_us
from formation_mcp.db.schema import events
from formation_mcp.errors import InvalidArgument
from formation_mcp.events.model import EventRecord, Severity

MAX_FILTER_CHARS: Final = 1024
MAX_TERMS: Final = 16
FIELDS: Final = ("type", "resource", "severity", "time")
_TERM = re.compile(
    r"\s*(?P<field>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>!=|<=|>=|=|<|>)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.:+*/-]+)\s*'
)
_AND = re.compile(r"AND\b\s*")
_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Term:
    field: str
    op: str
    value: str | int
    prefix: bool = False

    def condition(self) -> sa.ColumnElement[bool]:
        column = events.c[self.field]
        if self.prefix:
            escaped = str(self.value).replace("\\", "\\\\").replace("%", "\\%")
            return column.like(escaped.replace("_", "\\_") + "%", escape="\\")
        value = sa.literal(self.value, column.type)
        return {
            "=": column == value,
            "!=": column != value,
            "<": column < value,
            ">": column > value,
            "<=": column <= value,
            ">=": column >= value,
        }[self.op]

    def matches(self, event: EventRecord) -> bool:
        fields: dict[str, str | int] = {
            "type": event.type,
            "resource": event.resource,
            "severity": int(event.severity),
            "time": event.time,
        }
        actual = fields[self.field]
        if self.prefix:
            return str(actual).startswith(str(self.value))
        return _OPS[self.op](actual, self.value)


@dataclass(frozen=True, slots=True)
class EventFilter:
    terms: tuple[Term, ...] = ()

    def condition(self) -> sa.ColumnElement[bool]:
        return sa.and_(sa.true(), *(term.condition() for term in self.terms))

    def matches(self, event: EventRecord) -> bool:
        return all(term.matches(event) for term in self.terms)


def parse_filter(text: str, field_name: str = "filter") -> EventFilter:
    """INVALID_ARGUMENT naming `field_name` and what to fix for anything else."""
    if len(text) > MAX_FILTER_CHARS:
        raise _invalid(field_name, f"is longer than {MAX_FILTER_CHARS} characters")
    terms: list[Term] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        if terms:
            joined = _AND.match(text, position)
            if joined is None:
                raise _invalid(
                    field_name,
                    f"expected AND at position {position}; only comparisons joined by AND "
                    "are supported",
                )
            position = joined.end()
        match = _TERM.match(text, position)
        if match is None:
            raise _invalid(
                field_name,
                f"expected FIELD OP VALUE at position {position}, e.g. "
                '`type = "instance.*"` (fields: ' + ", ".join(FIELDS) + ")",
            )
        terms.append(_term(match, field_name))
        if len(terms) > MAX_TERMS:
            raise _invalid(field_name, f"has more than {MAX_TERMS} comparisons")
        position = match.end()
    return EventFilter(tuple(terms))


def _term(match: re.Match[str], field_name: str) -> Term:
    field, op, raw = match["field"], match["op"], match["value"]
    value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
    if field not in FIELDS:
        raise _invalid(
            field_name, f"unknown field {field!r}; supported fields: " + ", ".join(FIELDS)
        )
    if field != "time" and op not in ("=", "!="):
        raise _invalid(field_name, f"operator {op} is not allowed for {field} (use = or !=)")
    if field == "severity":
        names = [member.name for member in Severity]
        if value not in names:
            raise _invalid(field_name, f"severity {value!r} is not one of " + ", ".join(names))
        return Term(field, op, int(Severity[value]))
    if field == "time":
        return Term(field, op, _time(value, field_name))
    if "*" in value:
        if field != "type" or not value.endswith("*") or value.count("*") > 1 or op != "=":
            raise _invalid(
                field_name,
                'a "*" may only end a type compared with = (prefix match: type = "instance.*")',
            )
        return Term(field, op, value[:-1], prefix=True)
    return Term(field, op, value)


def _time(value: str, field_name: str) -> int:
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _invalid(
            field_name,
            f"time {value!r} is not an RFC 3339 timestamp with a zone, e.g. 2026-12-04T10:00:00Z",
        )
    return datetime_to_us(moment)


def _invalid(field_name: str, what: str) -> InvalidArgument:
    return InvalidArgument.for_field(field_name, what)
