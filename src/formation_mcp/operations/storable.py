"""Strings from workers made storable and safe to show before they reach the database.

A worker reports what its tool saw: file names from a build context, a program's output,
error messages. Any of them may hold control characters. PostgreSQL text cannot hold NUL at
all (the write fails), and the others (escape sequences, carriage returns, C1 controls) would
reach terminals and logs of whoever reads the operation. So every string of an event (log
lines, progress stage and message, status messages, result values and keys, error messages
and details) has its control characters escaped as `\\xNN`; tab and newline stay.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 controls but tab and newline, DEL, and C1 controls."""
_ANY = any_pb2.Any.DESCRIPTOR.full_name


def storable_text(text: str) -> str:
    """`text` with its control characters (but tab and newline) escaped as `\\xNN`; `text`
    itself when it has none."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def make_storable(message: Message) -> bool:
    """Escape control characters in every string of `message`, in place: nested messages,
    repeated fields, map keys and values, and messages packed in `Any` whose type is known.
    Returns whether anything changed."""
    changed = False
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            changed |= _strings(message, field, value)
        elif field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        elif _entry_type(field).GetOptions().map_entry:
            changed |= _map(field, value)
        elif field.is_repeated:
            for item in value:
                changed |= _nested(item)
        else:
            changed |= _nested(value)
    return changed


def _entry_type(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field (a map's entry type for a map field)."""
    descriptor = field.message_type
    assert descriptor is not None, f"{field.full_name} is not a message field"
    return descriptor


def _nested(message: Message) -> bool:
    if message.DESCRIPTOR.full_name == _ANY:
        return _packed(message)  # type: ignore[arg-type]
    return make_storable(message)


def _strings(message: Message, field: FieldDescriptor, value: Any) -> bool:
    if field.is_repeated:
        cleaned = [storable_text(item) for item in value]
        if cleaned == list(value):
            return False
        value[:] = cleaned
        return True
    text = storable_text(value)
    if text is value:
        return False
    setattr(message, field.name, text)
    return True


def _map(field: FieldDescriptor, mapping: Any) -> bool:
    """A map field (such as `Struct.fields`). A key that changes takes its value along."""
    key_field = _entry_type(field).fields_by_name["key"]
    value_field = _entry_type(field).fields_by_name["value"]
    holds_messages = value_field.type == FieldDescriptor.TYPE_MESSAGE
    changed = False
    for key in list(mapping):
        if holds_messages:
            changed |= _nested(mapping[key])
        elif value_field.type == FieldDescriptor.TYPE_STRING:
            text = storable_text(mapping[key])
            if text is not mapping[key]:
                mapping[key] = text
                changed = True
        if key_field.type == FieldDescriptor.TYPE_STRING:
            new_key = storable_text(key)
            if new_key is not key:
                if holds_messages:
                    mapping[new_key].CopyFrom(mapping[key])
                else:
                    mapping[new_key] = mapping[key]
                del mapping[key]
                changed = True
    return changed


def _packed(packed: any_pb2.Any) -> bool:
    """An `Any` (such as a detail of an error): its type URL, and the message in it when its
    type is known here (undecodable or unknown contents stay as they are: they are bytes)."""
    changed = _strings(packed, any_pb2.Any.DESCRIPTOR.fields_by_name["type_url"], packed.type_url)
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
        inner = message_factory.GetMessageClass(descriptor)()
        inner.ParseFromString(packed.value)
    except (KeyError, DecodeError):
        return changed
    if make_storable(inner):
        packed.value = inner.SerializeToString(deterministic=True)
        return True
    return changed
