"""The edge rule for strings: no control characters where they make no sense.

Every string a request carries (fields, repeated fields, map keys and values, nested messages,
and the JSON inside `google.protobuf.Struct` / `Value` / `ListValue` fields such as
`CallToolRequest.arguments`, object keys included) may end up in the database, a log line or
a file name. NUL is refused everywhere (PostgreSQL text cannot hold it). The other control
characters (U+0001-U+001F, DEL, U+0080-U+009F) are refused too, except tab, newline and
carriage return in the places `TEXT_FIELDS` lists, which hold text (a filter, a Formfile,
file contents, free-text metadata).

`checker_for(descriptor)` compiles, once per request type, a walk over just the fields that can
hold strings (none at all for a message without any); the walk raises `InvalidArgument` naming
the field as the client wrote it: `filter`, `account.roles[1]`, `arguments.id`,
`arguments.context_files["a\\u0000b"]` (a key that is not a plain name is quoted, as JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from formation_mcp.errors import InvalidArgument
from formation_mcp.structs import MAX_VALUES, too_many_values

TEXT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "formation.mcp.v1.ListOperationsRequest": ("filter",),
    "formation.mcp.v1.ListToolsRequest": ("filter",),
    "formation.mcp.v1.CallToolRequest": (
        "arguments.formfile",  # pack.build: the Formfile's lines
        "arguments.context_files.*",  # pack.build: file contents (the keys are paths: names)
        "arguments.metadata.*",  # vm.create: free-text values
        "arguments.vm_config.metadata.*",  # pack.ship: the same
    ),
}
"""Per request type, the paths (`*`: any key or list index) whose strings are text: tab,
newline and carriage return are allowed there, and everything below them is text too.
Object keys are names everywhere."""

REASON: Final = "CONTROL_CHARACTER"

_JSON_TYPES: Final = frozenset(
    d.full_name
    for d in (
        struct_pb2.Struct.DESCRIPTOR,
        struct_pb2.Value.DESCRIPTOR,
        struct_pb2.ListValue.DESCRIPTOR,
    )
)
_NOT_IN_NAMES: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
_NOT_IN_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TEXT: Final = re.compile("[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*")
_CHARACTER_NAMES: Final = {
    "\x00": "NUL",
    "\t": "tab",
    "\n": "newline",
    "\r": "carriage return",
    "\x1b": "ESC",
    "\x7f": "DEL",
}
_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

RequestCheck = Callable[[Message], None]
"""Raises InvalidArgument for the first string of the request that breaks the rule."""


class _Refused(Exception):
    """Raised where a bad string is found; each level on the way up adds its path segment."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
        self.segments: list[str] = []

    def path(self) -> str:
        return "".join(reversed(self.segments)).removeprefix(".")


class _TooMany(_Refused):
    """A JSON value holds more than `MAX_VALUES` values: refused as `arguments_from_struct`
    refuses it, before the walk reads the rest (a request of 200,000 tiny values costs no
    more than one of `MAX_VALUES`)."""

    def __init__(self) -> None:
        super().__init__("too many values")


class _Count:
    """Values seen so far in one JSON field of a request."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = 0


def _check(value: str, text: bool) -> None:
    """Refuse `value` if it holds a control character not allowed in a name (or a text)."""
    if value.isprintable():  # no control character at all: the common case, checked in C
        return
    if text and _TEXT.fullmatch(value):  # a tight loop in re: twice as fast as a search
        return
    bad = (_NOT_IN_TEXT if text else _NOT_IN_NAMES).search(value)
    if bad is not None:
        allowed = (
            "text: tab, newline and carriage return but no other control character"
            if text
            else "no control characters"
        )
        raise _Refused(f"{_found(bad)}; this field takes {allowed}")


def _check_key(key: str) -> None:
    if not key.isprintable() and (bad := _NOT_IN_NAMES.search(key)) is not None:
        raise _Refused(f"the key {_found(bad)}; keys take no control characters")


def _found(bad: re.Match[str]) -> str:
    character = bad.group()
    code = f"U+{ord(character):04X}"
    name = _CHARACTER_NAMES.get(character)
    shown = f"{code} ({name})" if name else code
    return f"contains the control character {shown} at index {bad.start()}"


def key_segment(key: str) -> str:
    """A map key or JSON object key in a path: `.name`, or `["quoted"]` when not a plain name."""
    if _PLAIN_KEY.fullmatch(key):
        return f".{key}"
    return f"[{json.dumps(key)}]"


class _Places:
    """Where strings are text, below one point of a request: a tree of path segments."""

    __slots__ = ("children", "text")

    def __init__(self, text: bool = False) -> None:
        self.text = text
        self.children: dict[str, _Places] = {}

    def below(self, segment: str) -> _Places:
        if self.text:
            return self
        return self.children.get(segment) or self.children.get("*") or _NOWHERE

    @classmethod
    def of(cls, patterns: Iterable[str]) -> _Places:
        root = cls()
        for pattern in patterns:
            node = root
            *parents, last = pattern.split(".")
            for segment in parents:
                node = node.children.setdefault(segment, cls())
            node.children[last] = _EVERYWHERE
        return root


_NOWHERE: Final = _Places()
_EVERYWHERE: Final = _Places(text=True)


# -- JSON (Struct, Value, ListValue), walked at run time: its keys are data --------------------


def _walk_struct(struct: struct_pb2.Struct, places: _Places, count: _Count) -> None:
    fields = struct.fields
    for key in fields:  # with fields[key], twice as fast as items() on upb maps
        try:
            _check_key(key)
            _walk_value(fields[key], places.below(key), count)
        except _Refused as refused:
            refused.segments.append(key_segment(key))
            raise


def _walk_list(values: struct_pb2.ListValue, places: _Places, count: _Count) -> None:
    item_places = places.below("*")
    for index, value in enumerate(values.values):
        try:
            _walk_value(value, item_places, count)
        except _Refused as refused:
            refused.segments.append(f"[{index}]")
            raise


def _walk_value(value: struct_pb2.Value, places: _Places, count: _Count) -> None:
    count.values += 1
    if count.values > MAX_VALUES:
        raise _TooMany()
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        string = value.string_value
        if string:
            _check(string, places.text)
    elif kind == "struct_value":
        _walk_struct(value.struct_value, places, count)
    elif kind == "list_value":
        _walk_list(value.list_value, places, count)


def _json_walker(type_name: str) -> Callable[[Any, _Places, _Count], None]:
    if type_name == "google.protobuf.Struct":
        return _walk_struct
    if type_name == "google.protobuf.ListValue":
        return _walk_list
    return _walk_value


# -- proto messages, compiled once per type -----------------------------------------------------

Visit = Callable[[Any], None]
"""Walks one message (or one field's value); raises _Refused."""


def _visit_all(visits: list[Visit]) -> Visit:
    if len(visits) == 1:
        return visits[0]

    def visit(message: Any) -> None:
        for one in visits:
            one(message)

    return visit


def _json_field(walk: Callable[[Any, _Places, _Count], None], places: _Places) -> Visit:
    """One JSON field's walk, with a count of its own; a refusal for too many values names the
    field's top-level key, as `arguments_from_struct` does."""

    def visit(message: Any) -> None:
        try:
            walk(message, places, _Count())
        except _TooMany as too_many:
            del too_many.segments[:-1]
            raise

    return visit


class _Compiler:
    def __init__(self) -> None:
        self._messages: dict[tuple[str, int], Visit | None] = {}
        self._compiling: set[tuple[str, int]] = set()

    def message(self, descriptor: Descriptor, places: _Places) -> Visit | None:
        """The walk over a message's string-holding fields; None when it has none."""
        if descriptor.full_name in _JSON_TYPES:
            return _json_field(_json_walker(descriptor.full_name), places)
        key = (descriptor.full_name, id(places))
        if key in self._messages:
            return self._messages[key]
        if key in self._compiling:  # a type that contains itself
            return self._late(key)
        self._compiling.add(key)
        visits = [
            visit
            for field in descriptor.fields
            if (visit := self._field(field, places.below(field.name))) is not None
        ]
        self._compiling.discard(key)
        compiled = _visit_all(visits) if visits else None
        self._messages[key] = compiled
        return compiled

    def _late(self, key: tuple[str, int]) -> Visit:
        """A message type that contains itself: look its walk up when a message is walked."""
        messages = self._messages

        def visit(message: Any) -> None:
            compiled = messages.get(key)
            if compiled is not None:
                compiled(message)

        return visit

    def _field(self, field: FieldDescriptor, places: _Places) -> Visit | None:
        if field.type == FieldDescriptor.TYPE_STRING:
            return _string_field(field.name, field.is_repeated, places.text)
        entry = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or entry is None:
            return None
        if entry.GetOptions().map_entry:
            return self._map_field(field.name, entry, places.below("*"))
        visit = self.message(entry, places.below("*") if field.is_repeated else places)
        if visit is None:
            return None
        if field.is_repeated:
            return _repeated_message_field(field.name, visit)
        return _message_field(field.name, visit)

    def _map_field(self, name: str, entry: Descriptor, value_places: _Places) -> Visit | None:
        string_keys = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
        value = entry.fields_by_name["value"]
        walk_value: Visit | None = None
        if value.type == FieldDescriptor.TYPE_STRING:
            walk_value = _string_value(value_places.text)
        elif value.type == FieldDescriptor.TYPE_MESSAGE and value.message_type is not None:
            walk_value = self.message(value.message_type, value_places)
        if walk_value is None and not string_keys:
            return None
        return _map(name, string_keys, walk_value or _nothing)


def _nothing(value: Any) -> None:
    return None


def _string_value(text: bool) -> Visit:
    def visit(value: str) -> None:
        if value:
            _check(value, text)

    return visit


def _string_field(name: str, repeated: bool, text: bool) -> Visit:
    if repeated:

        def visit_repeated(message: Any) -> None:
            for index, value in enumerate(getattr(message, name)):
                if value:
                    try:
                        _check(value, text)
                    except _Refused as refused:
                        refused.segments.append(f".{name}[{index}]")
                        raise

        return visit_repeated

    segment = f".{name}"

    def visit(message: Any) -> None:
        value = getattr(message, name)
        if value:
            try:
                _check(value, text)
            except _Refused as refused:
                refused.segments.append(segment)
                raise

    return visit


def _message_field(name: str, walk: Visit) -> Visit:
    segment = f".{name}"

    def visit(message: Any) -> None:
        if message.HasField(name):
            try:
                walk(getattr(message, name))
            except _Refused as refused:
                refused.segments.append(segment)
                raise

    return visit


def _repeated_message_field(name: str, walk: Visit) -> Visit:
    def visit(message: Any) -> None:
        for index, item in enumerate(getattr(message, name)):
            try:
                walk(item)
            except _Refused as refused:
                refused.segments.append(f".{name}[{index}]")
                raise

    return visit


def _map(name: str, string_keys: bool, walk_value: Visit) -> Visit:
    def visit(message: Any) -> None:
        for key, value in getattr(message, name).items():
            try:
                if string_keys:
                    _check_key(key)
                walk_value(value)
            except _Refused as refused:
                refused.segments.append(key_segment(key) if string_keys else f"[{key}]")
                refused.segments.append(f".{name}")
                raise

    return visit


def checker_for(descriptor: Descriptor) -> RequestCheck | None:
    """The check of one request type, or None when its messages cannot hold a string."""
    places = _Places.of(TEXT_FIELDS.get(descriptor.full_name, ()))
    walk = _Compiler().message(descriptor, places)
    if walk is None:
        return None

    def check(request: Message) -> None:
        try:
            walk(request)
        except _TooMany as too_many:
            raise too_many_values(too_many.path()) from None
        except _Refused as refused:
            raise InvalidArgument.for_field(
                refused.path(), refused.description, reason=REASON
            ) from None

    return check
