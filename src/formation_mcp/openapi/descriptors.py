"""The descriptor set: messages, enums, services and their comments, by full name.

`generated/formation_mcp.binpb` (built by `make proto`, with source info) holds every message
and service with its comments, which become descriptions; `field_behavior` gives `required`
(REQUIRED), `readOnly` (OUTPUT_ONLY) and `writeOnly` (INPUT_ONLY).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from formation_mcp.openapi.errors import OpenApiError
from formation_mcp.openapi.json_types import FieldProto

REQUIRED = field_behavior_pb2.REQUIRED
OUTPUT_ONLY = field_behavior_pb2.OUTPUT_ONLY
INPUT_ONLY = field_behavior_pb2.INPUT_ONLY


@dataclass(frozen=True)
class _Located:
    file: descriptor_pb2.FileDescriptorProto
    path: tuple[int, ...]
    full_name: str


@dataclass(frozen=True)
class MessageInfo(_Located):
    proto: descriptor_pb2.DescriptorProto


@dataclass(frozen=True)
class EnumInfo(_Located):
    proto: descriptor_pb2.EnumDescriptorProto


@dataclass(frozen=True)
class _ServiceInfo(_Located):
    proto: descriptor_pb2.ServiceDescriptorProto


class DescriptorIndex:
    """Messages, enums, services and comments of a FileDescriptorSet, by full name."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, MessageInfo] = {}
        self.enums: dict[str, EnumInfo] = {}
        self.services: dict[str, _ServiceInfo] = {}
        self._comments: dict[tuple[str, tuple[int, ...]], str] = {}
        for file in descriptor_set.file:
            self._add_file(file)

    @classmethod
    def load(cls, path: Path) -> DescriptorIndex:
        return cls(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()))

    def _add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        prefix = f"{file.package}." if file.package else ""
        for location in file.source_code_info.location:
            text = location.leading_comments or location.trailing_comments
            if text.strip():
                self._comments[(file.name, tuple(location.path))] = _clean_comment(text)
        for i, message in enumerate(file.message_type):
            self._add_message(file, message, (4, i), prefix)
        for i, enum in enumerate(file.enum_type):
            name = prefix + enum.name
            self.enums[name] = EnumInfo(file=file, path=(5, i), full_name=name, proto=enum)
        for i, service in enumerate(file.service):
            name = prefix + service.name
            self.services[name] = _ServiceInfo(
                file=file, path=(6, i), full_name=name, proto=service
            )

    def _add_message(
        self,
        file: descriptor_pb2.FileDescriptorProto,
        message: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        prefix: str,
    ) -> None:
        name = prefix + message.name
        self.messages[name] = MessageInfo(file=file, path=path, full_name=name, proto=message)
        for i, nested in enumerate(message.nested_type):
            self._add_message(file, nested, (*path, 3, i), f"{name}.")
        for i, enum in enumerate(message.enum_type):
            enum_name = f"{name}.{enum.name}"
            self.enums[enum_name] = EnumInfo(
                file=file, path=(*path, 4, i), full_name=enum_name, proto=enum
            )

    def comment(self, item: _Located, *sub_path: int) -> str:
        return self._comments.get((item.file.name, (*item.path, *sub_path)), "")

    def message(self, type_name: str) -> MessageInfo:
        try:
            return self.messages[type_name.lstrip(".")]
        except KeyError:
            raise OpenApiError(f"message {type_name} is not in the descriptor set") from None

    def enum(self, type_name: str) -> EnumInfo:
        try:
            return self.enums[type_name.lstrip(".")]
        except KeyError:
            raise OpenApiError(f"enum {type_name} is not in the descriptor set") from None


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()


def summary(description: str) -> str:
    first = description.split("\n\n", 1)[0].replace("\n", " ")
    match = re.match(r"(.+?[.!?])(\s|$)", first)
    return match.group(1) if match else first


def field_behaviors(proto: FieldProto) -> set[int]:
    return {int(b) for b in proto.options.Extensions[field_behavior_pb2.field_behavior]}


def is_map(index: DescriptorIndex, proto: FieldProto) -> bool:
    if proto.type != FieldProto.TYPE_MESSAGE or proto.label != FieldProto.LABEL_REPEATED:
        return False
    return index.message(proto.type_name).proto.options.map_entry


def in_real_oneof(proto: FieldProto) -> bool:
    return proto.HasField("oneof_index") and not proto.proto3_optional


def has_presence(proto: FieldProto) -> bool:
    """Fields that Envoy omits when unset even with always_print_primitive_fields."""
    return (
        proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP)
        and proto.label != FieldProto.LABEL_REPEATED
    ) or proto.HasField("oneof_index")
