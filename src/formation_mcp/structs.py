"""google.protobuf.Struct <-> plain JSON values, the way tools see them.

`arguments_from_struct` is the bounded conversion for what callers send: it stops at the
first value past `MAX_VALUES` or nested deeper than `MAX_DEPTH` (so a request of 200,000
tiny entries costs no more than one of `MAX_VALUES`), refuses numbers that are not finite,
and measures what it converted so the caller can tell big arguments from small ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import json_format, struct_pb2

from formation_mcp.errors import FieldViolation, InvalidArgument, ResourceExhausted

MAX_VALUES: Final = 10_000
"""Values (strings, numbers, objects, lists, ... at any depth) in one call's arguments."""
MAX_DEPTH: Final = 32
"""Objects and lists nested in one another in one call's arguments."""
_KEY_CHARS: Final = 64
_PATH_CHARS: Final = 256


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Struct numbers are doubles; whole ones become ints, as JSON Schema and tools expect."""
    return {key: _plain(value) for key, value in json_format.MessageToDict(struct).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class StructSize:
    """How much a conversion read: values at any depth, and characters of keys and strings."""

    values: int
    chars: int


def arguments_from_struct(
    struct: struct_pb2.Struct, field: str = "arguments"
) -> tuple[dict[str, Any], StructSize]:
    """Like `struct_to_dict`, within `MAX_VALUES` and `MAX_DEPTH`; errors name `field`'s
    path (`arguments.env.PORT`)."""
    walk = _BoundedWalk(field)
    converted = walk.fields(struct, 0)
    return converted, StructSize(walk.values, walk.chars)


class _BoundedWalk:
    def __init__(self, field: str) -> None:
        self.root = field
        self.path: list[str | int] = []
        self.values = 0
        self.chars = 0

    def fields(self, struct: struct_pb2.Struct, depth: int) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for key, value in struct.fields.items():
            self.chars += len(key)
            self.path.append(key)
            converted[key] = self.value(value, depth)
            self.path.pop()
        return converted

    def items(self, values: struct_pb2.ListValue, depth: int) -> list[Any]:
        converted: list[Any] = []
        for index, value in enumerate(values.values):
            self.path.append(index)
            converted.append(self.value(value, depth))
            self.path.pop()
        return converted

    def value(self, value: struct_pb2.Value, depth: int) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._too_many()
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            self.chars += len(value.string_value)
            return value.string_value
        if kind == "number_value":
            number = value.number_value
            if not math.isfinite(number):
                raise InvalidArgument.for_field(self._where(), "is not a finite number")
            return int(number) if number.is_integer() else number
        if kind == "bool_value":
            return value.bool_value
        if kind in ("struct_value", "list_value"):
            if depth + 1 > MAX_DEPTH:
                raise InvalidArgument.for_field(
                    self._where(),
                    f"is nested too deeply (more than {MAX_DEPTH} objects and lists); flatten it",
                )
            if kind == "struct_value":
                return self.fields(value.struct_value, depth + 1)
            return self.items(value.list_value, depth + 1)
        return None

    def _where(self, depth: int | None = None) -> str:
        """The path to the current value (its first `depth` parts), keys cut short."""
        parts = (
            f"[{part}]" if isinstance(part, int) else f".{part[:_KEY_CHARS]}"
            for part in self.path[:depth]
        )
        return (self.root + "".join(parts))[:_PATH_CHARS]

    def _too_many(self) -> ResourceExhausted:
        return too_many_values(self._where(1))


def too_many_values(where: str) -> ResourceExhausted:
    """The refusal of a JSON value (`where`: its field, or the top-level key under it) holding
    more than `MAX_VALUES` values."""
    description = (
        f"has more than {MAX_VALUES} values (strings, numbers, objects and lists at any"
        " depth); send fewer"
    )
    return ResourceExhausted(
        f"{where}: {description}",
        reason="ARGUMENTS_TOO_LARGE",
        metadata={"field": where, "limit": "max_values", "limit_value": str(MAX_VALUES)},
        field_violations=[FieldViolation(where, description, "ARGUMENTS_TOO_LARGE")],
    )
