"""The OpenAPI 3.1 document of the REST API, generated from the descriptor set.

REST is Envoy's gRPC-JSON transcoder in front of our gRPC server, so everything the document
says is derived from what the transcoder reads or is configured with:

- `generated/formation_mcp.binpb` (built by `make proto`, with source info): every method's
  `google.api.http` rule becomes a path and an operation; request, response and error bodies
  are the messages' proto3 JSON mapping; descriptions are the proto comments; `field_behavior`
  gives `required` (REQUIRED), `readOnly` (OUTPUT_ONLY) and `writeOnly` (INPUT_ONLY);
- `envoy/envoy.yaml`: which services are transcoded, and the print options (field names as
  in the proto with `preserve_proto_field_names`, zero values printed with
  `always_print_primitive_fields`, server streams as NDJSON with `stream_newline_delimited`);
- `formation_mcp.permissions`: which methods need a bearer token and which permission.

Path templates are expanded into plain OpenAPI paths: `/v1/{name=operations/*}` becomes
`/v1/operations/{operation}`, the resource name being `operations/{operation}`; one path
parameter per `*`. The output is deterministic (sorted keys, stable order), so
`python -m formation_mcp.openapi --check` (run by `make check-generated`) can tell when the
committed document is stale.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.api import annotations_pb2, field_behavior_pb2  # type: ignore[import-untyped]
from google.longrunning import operations_proto_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from formation_mcp.envoy import DESCRIPTOR, REPOSITORY, TEMPLATE
from formation_mcp.permissions import METHOD_PERMISSIONS, is_public

OUTPUT = REPOSITORY / "openapi" / "formation_mcp.openapi.json"
OPENAPI_VERSION = "3.1.0"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
SECURITY_SCHEME = "bearerAuth"
NDJSON = "application/x-ndjson"

JsonObject = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

_REQUIRED = field_behavior_pb2.REQUIRED
_OUTPUT_ONLY = field_behavior_pb2.OUTPUT_ONLY
_INPUT_ONLY = field_behavior_pb2.INPUT_ONLY

_INT32_RANGE = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32_RANGE = {"minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$"}
_BYTES = {"type": "string", "format": "byte", "contentEncoding": "base64"}
_FLOAT_SPECIALS = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}

# proto3 JSON of the scalar types (https://protobuf.dev/programming-guides/json/).
_SCALARS: dict[int, JsonObject] = {
    FieldProto.TYPE_DOUBLE: {"anyOf": [{"type": "number", "format": "double"}, _FLOAT_SPECIALS]},
    FieldProto.TYPE_FLOAT: {"anyOf": [{"type": "number", "format": "float"}, _FLOAT_SPECIALS]},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32", **_INT32_RANGE},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32", **_INT32_RANGE},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32", **_INT32_RANGE},
    FieldProto.TYPE_UINT32: {"type": "integer", "format": "uint32", **_UINT32_RANGE},
    FieldProto.TYPE_FIXED32: {"type": "integer", "format": "uint32", **_UINT32_RANGE},
    FieldProto.TYPE_INT64: _INT64,
    FieldProto.TYPE_SINT64: _INT64,
    FieldProto.TYPE_SFIXED64: _INT64,
    FieldProto.TYPE_UINT64: _UINT64,
    FieldProto.TYPE_FIXED64: _UINT64,
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: _BYTES,
}

# Query parameters carry text: no NaN/Infinity alternatives there.
_QUERY_SCALARS: dict[int, JsonObject] = {
    **_SCALARS,
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
}


def _nullable(schema: JsonObject) -> JsonObject:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


# Well-known types with a JSON mapping of their own; the wrappers are nullable.
_WELL_KNOWN: dict[str, JsonObject] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 timestamp in UTC (`Z`), with 0, 3, 6 or 9 fractional digits.",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "Duration in seconds with up to 9 fractional digits and an `s` suffix, "
        "e.g. `1.5s`.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths in lowerCamelCase, e.g. `roles,disabled`.",
    },
    "google.protobuf.Struct": {
        "type": "object",
        "additionalProperties": True,
        "description": "Any JSON object.",
    },
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}, "description": "Any JSON array."},
    "google.protobuf.Empty": {
        "type": "object",
        "additionalProperties": False,
        "description": "The empty JSON object `{}`.",
    },
    "google.protobuf.Any": {
        "type": "object",
        "properties": {
            "@type": {
                "type": "string",
                "description": "`type.googleapis.com/` and the full name of the packed message.",
            }
        },
        "required": ["@type"],
        "additionalProperties": True,
        "description": "A message of any type: `@type` names it and the message's own JSON "
        "fields follow (a well-known type with a special JSON form is under `value`).",
    },
    "google.protobuf.DoubleValue": _nullable({"type": "number", "format": "double"}),
    "google.protobuf.FloatValue": _nullable({"type": "number", "format": "float"}),
    "google.protobuf.Int64Value": _nullable(_INT64),
    "google.protobuf.UInt64Value": _nullable(_UINT64),
    "google.protobuf.Int32Value": _nullable({"type": "integer", "format": "int32", **_INT32_RANGE}),
    "google.protobuf.UInt32Value": _nullable(
        {"type": "integer", "format": "uint32", **_UINT32_RANGE}
    ),
    "google.protobuf.BoolValue": _nullable({"type": "boolean"}),
    "google.protobuf.StringValue": _nullable({"type": "string"}),
    "google.protobuf.BytesValue": _nullable(_BYTES),
}

# Well-known types that are a single value in JSON, so they can be query parameters.
_QUERY_WELL_KNOWN = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
}

_HTTP_METHODS = ("get", "put", "post", "delete", "patch")
_QUERY_DEPTH = 4
_SEGMENT_PATTERN = "^[^/]+$"
_MULTI_SEGMENT_PATTERN = "^[^/]+(/[^/]+)*$"
_STATUS_CODES = (
    "Errors are the `google.rpc.Status` of the gRPC call as bare JSON (`code` is the gRPC code, "
    "`details` holds an `ErrorInfo` and other `google.rpc` details), with the HTTP status of "
    "Envoy's gRPC-to-HTTP mapping: INVALID_ARGUMENT, FAILED_PRECONDITION and OUT_OF_RANGE 400, "
    "UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS and ABORTED 409, "
    "RESOURCE_EXHAUSTED 429, CANCELLED 499, UNKNOWN, INTERNAL and DATA_LOSS 500, UNIMPLEMENTED "
    "501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504."
)


class OpenApiError(Exception):
    """The descriptor set or Envoy's configuration cannot be turned into a document."""


# --- Envoy's transcoder configuration ------------------------------------------------------


@dataclass(frozen=True)
class TranscoderConfig:
    """What of the transcoder's configuration shapes the REST API."""

    services: tuple[str, ...]
    preserve_proto_field_names: bool = True
    always_print_primitive_fields: bool = True
    always_print_enums_as_ints: bool = False
    stream_newline_delimited: bool = True
    max_request_body_size: int | None = None


def _find_transcoder(node: object) -> dict[str, Any] | None:
    if isinstance(node, dict):
        if node.get("name") == TRANSCODER and isinstance(node.get("typed_config"), dict):
            found: dict[str, Any] = node["typed_config"]
            return found
        children: Iterable[object] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        result = _find_transcoder(child)
        if result is not None:
            return result
    return None


def load_transcoder_config(path: Path = TEMPLATE) -> TranscoderConfig:
    """The transcoder filter's settings in an Envoy configuration file."""
    config = _find_transcoder(yaml.safe_load(path.read_text()))
    if config is None:
        raise OpenApiError(f"{path}: no {TRANSCODER} filter")
    services = config.get("services") or []
    if not services:
        raise OpenApiError(f"{path}: the transcoder lists no services")
    printing = config.get("print_options") or {}
    size = config.get("max_request_body_size")
    return TranscoderConfig(
        services=tuple(str(name) for name in services),
        preserve_proto_field_names=bool(printing.get("preserve_proto_field_names", False)),
        always_print_primitive_fields=bool(printing.get("always_print_primitive_fields", False)),
        always_print_enums_as_ints=bool(printing.get("always_print_enums_as_ints", False)),
        stream_newline_delimited=bool(printing.get("stream_newline_delimited", False)),
        max_request_body_size=int(size) if size is not None else None,
    )


# --- The descriptor set ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    file: descriptor_pb2.FileDescriptorProto
    path: tuple[int, ...]
    full_name: str


@dataclass(frozen=True)
class _MessageInfo(_Located):
    proto: descriptor_pb2.DescriptorProto


@dataclass(frozen=True)
class _EnumInfo(_Located):
    proto: descriptor_pb2.EnumDescriptorProto


@dataclass(frozen=True)
class _ServiceInfo(_Located):
    proto: descriptor_pb2.ServiceDescriptorProto


class DescriptorIndex:
    """Messages, enums, services and comments of a FileDescriptorSet, by full name."""

    def __init__(self, descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, _MessageInfo] = {}
        self.enums: dict[str, _EnumInfo] = {}
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
            self.enums[name] = _EnumInfo(file=file, path=(5, i), full_name=name, proto=enum)
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
        self.messages[name] = _MessageInfo(file=file, path=path, full_name=name, proto=message)
        for i, nested in enumerate(message.nested_type):
            self._add_message(file, nested, (*path, 3, i), f"{name}.")
        for i, enum in enumerate(message.enum_type):
            enum_name = f"{name}.{enum.name}"
            self.enums[enum_name] = _EnumInfo(
                file=file, path=(*path, 4, i), full_name=enum_name, proto=enum
            )

    def comment(self, item: _Located, *sub_path: int) -> str:
        return self._comments.get((item.file.name, (*item.path, *sub_path)), "")

    def message(self, type_name: str) -> _MessageInfo:
        try:
            return self.messages[type_name.lstrip(".")]
        except KeyError:
            raise OpenApiError(f"message {type_name} is not in the descriptor set") from None

    def enum(self, type_name: str) -> _EnumInfo:
        try:
            return self.enums[type_name.lstrip(".")]
        except KeyError:
            raise OpenApiError(f"enum {type_name} is not in the descriptor set") from None


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()


def _summary(description: str) -> str:
    first = description.split("\n\n", 1)[0].replace("\n", " ")
    match = re.match(r"(.+?[.!?])(\s|$)", first)
    return match.group(1) if match else first


def _behaviors(proto: FieldProto) -> set[int]:
    return {int(b) for b in proto.options.Extensions[field_behavior_pb2.field_behavior]}


def _is_map(index: DescriptorIndex, proto: FieldProto) -> bool:
    if proto.type != FieldProto.TYPE_MESSAGE or proto.label != FieldProto.LABEL_REPEATED:
        return False
    return index.message(proto.type_name).proto.options.map_entry


def _in_real_oneof(proto: FieldProto) -> bool:
    return proto.HasField("oneof_index") and not proto.proto3_optional


def _has_presence(proto: FieldProto) -> bool:
    """Fields that Envoy omits when unset even with always_print_primitive_fields."""
    return (
        proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP)
        and proto.label != FieldProto.LABEL_REPEATED
    ) or proto.HasField("oneof_index")


# --- google.api.http ------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpBinding:
    """One `google.api.http` rule (or one of its additional bindings)."""

    method: str
    template: str
    body: str
    response_body: str


def http_bindings(method: descriptor_pb2.MethodDescriptorProto) -> list[HttpBinding]:
    if not method.options.HasExtension(annotations_pb2.http):
        return []
    rule = method.options.Extensions[annotations_pb2.http]
    bindings = [_binding(rule)]
    bindings.extend(_binding(extra) for extra in rule.additional_bindings)
    return bindings


def _binding(rule: Any) -> HttpBinding:
    kind = str(rule.WhichOneof("pattern") or "")
    if kind == "custom":
        verb, template = str(rule.custom.kind).lower(), str(rule.custom.path)
    elif kind in _HTTP_METHODS:
        verb, template = kind, str(getattr(rule, kind))
    else:
        raise OpenApiError(f"unsupported google.api.http pattern {kind!r}")
    return HttpBinding(
        method=verb, template=template, body=str(rule.body), response_body=str(rule.response_body)
    )


@dataclass(frozen=True)
class PathParameter:
    """One OpenAPI path parameter: a `*` (or `**`) of a variable in the template."""

    name: str
    field_path: str
    value_template: str
    multi_segment: bool


@dataclass(frozen=True)
class PathTemplate:
    """A parsed `google.api.http` path template, expanded into an OpenAPI path."""

    openapi_path: str
    parameters: tuple[PathParameter, ...]
    bound_fields: frozenset[str]


def _singular(literal: str) -> str:
    """The parameter name for the `*` after a collection: `operations` -> `operation`."""
    word = re.sub(r"[^A-Za-z0-9_]", "_", literal)
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        return word[:-1]
    return f"{word}_id"


def _split_segments(body: str, template: str) -> list[str]:
    """Top-level `/`-separated segments; a `{...}` variable is one segment."""
    segments: list[str] = []
    current, depth = "", 0
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if depth not in (0, 1):
            raise OpenApiError(f"unbalanced braces in {template!r}")
        if char == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise OpenApiError(f"unbalanced braces in {template!r}")
    segments.append(current)
    return segments


def parse_path_template(template: str) -> PathTemplate:
    """`/v1/{name=operations/*}:cancel` -> `/v1/operations/{operation}:cancel`, with the
    path parameter `operation` standing for the `*` of the field `name`."""
    if not template.startswith("/"):
        raise OpenApiError(f"path template {template!r} must start with '/'")
    body, verb = template[1:], ""
    colon = body.rfind(":")
    if colon > body.rfind("/") and colon > body.rfind("}"):
        body, verb = body[:colon], body[colon + 1 :]
    pieces: list[str] = []
    parameters: list[PathParameter] = []
    bound: set[str] = set()

    def add_parameter(base: str, field_path: str, value: str, multi: bool) -> str:
        taken = {parameter.name for parameter in parameters}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        parameters.append(PathParameter(name, field_path, value, multi))
        return f"{{{name}}}"

    for segment in _split_segments(body, template):
        if not (segment.startswith("{") and segment.endswith("}")):
            if segment in ("*", "**"):  # a wildcard bound to no field
                pieces.append(add_parameter(f"segment{len(pieces) + 1}", "", "", segment == "**"))
            elif "{" in segment or "}" in segment or not segment:
                raise OpenApiError(f"bad segment {segment!r} in {template!r}")
            else:
                pieces.append(segment)
            continue
        field_path, _, sub_template = segment[1:-1].partition("=")
        bound.add(field_path)
        sub_segments = (sub_template or "*").split("/")
        first = len(parameters)
        previous = ""
        for i, sub in enumerate(sub_segments):
            if sub not in ("*", "**"):
                pieces.append(sub)
                previous = sub
                continue
            if sub == "**" and i != len(sub_segments) - 1:
                raise OpenApiError(f"'**' must be the last segment in {template!r}")
            if previous:
                base = _singular(previous)
            elif len(sub_segments) == 1:
                base = field_path.replace(".", "_")
            else:
                base = f"{field_path.replace('.', '_')}_{i + 1}"
            pieces.append(add_parameter(base, field_path, "", sub == "**"))
            previous = ""
        value = "/".join(pieces[len(pieces) - len(sub_segments) :])
        parameters[first:] = [
            PathParameter(p.name, p.field_path, value, p.multi_segment) for p in parameters[first:]
        ]
    path = "/" + "/".join(pieces) + (f":{verb}" if verb else "")
    return PathTemplate(
        openapi_path=path, parameters=tuple(parameters), bound_fields=frozenset(bound)
    )


# --- Schemas ---------------------------------------------------------------------------------


def schema_ref(full_name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{full_name}"}


@dataclass
class _Builder:
    index: DescriptorIndex
    config: TranscoderConfig
    schemas: dict[str, JsonObject] = field(default_factory=dict)
    _pending: list[str] = field(default_factory=list)

    # Names -------------------------------------------------------------------------------

    def json_name(self, proto: FieldProto) -> str:
        return proto.name if self.config.preserve_proto_field_names else proto.json_name

    # Components --------------------------------------------------------------------------

    def ref(self, type_name: str) -> JsonObject:
        name = type_name.lstrip(".")
        if name not in self.schemas and name not in self._pending:
            self._pending.append(name)
            self.schemas[name] = self._component(name)
            self._pending.remove(name)
        return schema_ref(name)

    def _component(self, name: str) -> JsonObject:
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name in self.index.enums:
            return self._enum_schema(self.index.enums[name])
        return self.message_schema(self.index.message(name))

    def _enum_schema(self, enum: _EnumInfo) -> JsonObject:
        lines = [self.index.comment(enum)] if self.index.comment(enum) else []
        for i, value in enumerate(enum.proto.value):
            note = self.index.comment(enum, 2, i)
            lines.append(f"- `{value.name}`: {note}" if note else f"- `{value.name}`")
        schema: JsonObject = {"description": "\n".join(lines)}
        if self.config.always_print_enums_as_ints:
            schema.update(type="integer", enum=[value.number for value in enum.proto.value])
        else:
            schema.update(type="string", enum=[value.name for value in enum.proto.value])
        return schema

    def message_schema(
        self, message: _MessageInfo, *, exclude: frozenset[str] = frozenset()
    ) -> JsonObject:
        """The message as a JSON object, without the top-level fields in `exclude`."""
        properties: JsonObject = {}
        required: list[str] = []
        oneofs: dict[int, list[str]] = {}
        for i, proto in enumerate(message.proto.field):
            if proto.name in exclude:
                continue
            name = self.json_name(proto)
            behaviors = _behaviors(proto)
            properties[name] = self.field_schema(message, i, proto)
            if _REQUIRED in behaviors or (
                _OUTPUT_ONLY in behaviors
                and self.config.always_print_primitive_fields
                and not _has_presence(proto)
            ):
                required.append(name)
            if _in_real_oneof(proto):
                oneofs.setdefault(proto.oneof_index, []).append(f"`{name}`")
        description = self.index.comment(message)
        for oneof_index, members in sorted(oneofs.items()):
            oneof = message.proto.oneof_decl[oneof_index].name
            note = f"At most one of {', '.join(members)} is set (oneof `{oneof}`)."
            description = f"{description}\n\n{note}" if description else note
        schema: JsonObject = {"type": "object", "properties": properties}
        if description:
            schema["description"] = description
        if required:
            schema["required"] = required
        return schema

    def field_schema(self, message: _MessageInfo, i: int, proto: FieldProto) -> JsonObject:
        if _is_map(self.index, proto):
            entry = self.index.message(proto.type_name).proto
            value = next(f for f in entry.field if f.name == "value")
            schema: JsonObject = {
                "type": "object",
                "additionalProperties": self.value_schema(value),
            }
        elif proto.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": self.value_schema(proto)}
        else:
            schema = self.value_schema(proto)
        schema = dict(schema)
        description = self.index.comment(message, 2, i)
        behaviors = _behaviors(proto)
        if description:
            schema["description"] = description
        if _OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if _INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        if proto.options.deprecated:
            schema["deprecated"] = True
        return schema

    def value_schema(self, proto: FieldProto) -> JsonObject:
        """The schema of one value of the field (an element, for repeated fields)."""
        if proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP, FieldProto.TYPE_ENUM):
            return self.ref(proto.type_name)
        try:
            return dict(_SCALARS[proto.type])
        except KeyError:
            raise OpenApiError(f"field {proto.name}: unsupported type {proto.type}") from None

    # Query parameters ----------------------------------------------------------------------

    def query_parameters(
        self, message: _MessageInfo, bound: frozenset[str], body_field: str
    ) -> list[JsonObject]:
        return list(self._query(message, "", bound, body_field, (message.full_name,)))

    def _query(
        self,
        message: _MessageInfo,
        prefix: str,
        bound: frozenset[str],
        body_field: str,
        seen: tuple[str, ...],
    ) -> Iterator[JsonObject]:
        for i, proto in enumerate(message.proto.field):
            path = prefix + proto.name
            if path in bound or path == body_field:
                continue
            type_name = proto.type_name.lstrip(".")
            if _is_map(self.index, proto):
                continue
            is_message = proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP)
            if is_message and type_name not in _QUERY_WELL_KNOWN:
                if proto.label == FieldProto.LABEL_REPEATED or type_name in _WELL_KNOWN:
                    continue  # no query form: Struct, Any, repeated messages...
                if type_name in seen or len(seen) > _QUERY_DEPTH:
                    continue
                yield from self._query(
                    self.index.message(type_name),
                    f"{path}.",
                    bound,
                    body_field,
                    (*seen, type_name),
                )
                continue
            yield self._query_parameter(message, i, proto, path)

    def _query_parameter(
        self, message: _MessageInfo, i: int, proto: FieldProto, path: str
    ) -> JsonObject:
        type_name = proto.type_name.lstrip(".")
        if proto.type == FieldProto.TYPE_ENUM:
            value = self._enum_schema(self.index.enum(type_name))
            value.pop("description")
        elif type_name in _QUERY_WELL_KNOWN:
            value = dict(_WELL_KNOWN[type_name])
            value.pop("description", None)
            if isinstance(value["type"], list):
                value["type"] = value["type"][0]  # no null in a query string
        else:
            value = dict(_QUERY_SCALARS[proto.type])
        repeated = proto.label == FieldProto.LABEL_REPEATED
        schema = {"type": "array", "items": value} if repeated else value
        parameter: JsonObject = {"name": path, "in": "query", "schema": schema}
        if repeated:
            parameter.update(style="form", explode=True)
        description = self.index.comment(message, 2, i)
        if description:
            parameter["description"] = description
        if _REQUIRED in _behaviors(proto):
            parameter["required"] = True
        if proto.options.deprecated:
            parameter["deprecated"] = True
        return parameter


# --- The document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One REST operation: an HTTP binding of an RPC."""

    service: str
    method: str
    binding: HttpBinding
    path: PathTemplate
    operation_id: str
    server_streaming: bool

    @property
    def grpc_method(self) -> str:
        return f"/{self.service}/{self.method}"


def rest_operations(index: DescriptorIndex, services: Sequence[str]) -> list[Operation]:
    """Every HTTP binding of the given services, in the order of the descriptor set."""
    operations: list[Operation] = []
    for service_name in services:
        if service_name not in index.services:
            raise OpenApiError(f"service {service_name} is not in the descriptor set")
        service = index.services[service_name]
        short = service.proto.name
        for method in service.proto.method:
            for n, binding in enumerate(http_bindings(method)):
                operation_id = f"{short}_{method.name}" + (f"_{n + 1}" if n else "")
                operations.append(
                    Operation(
                        service=service_name,
                        method=method.name,
                        binding=binding,
                        path=parse_path_template(binding.template),
                        operation_id=operation_id,
                        server_streaming=method.server_streaming,
                    )
                )
    return operations


def _method_proto(
    index: DescriptorIndex, operation: Operation
) -> descriptor_pb2.MethodDescriptorProto:
    service = index.services[operation.service]
    return next(m for m in service.proto.method if m.name == operation.method)


def _field_by_path(
    index: DescriptorIndex, message: _MessageInfo, path: str
) -> tuple[_MessageInfo, int, FieldProto]:
    head, _, rest = path.partition(".")
    for i, proto in enumerate(message.proto.field):
        if proto.name == head:
            if not rest:
                return message, i, proto
            return _field_by_path(index, index.message(proto.type_name), rest)
    raise OpenApiError(f"{message.full_name} has no field {path!r}")


class _DocumentBuilder:
    def __init__(self, index: DescriptorIndex, config: TranscoderConfig) -> None:
        self.index = index
        self.config = config
        self.schemas = _Builder(index, config)

    def build(self) -> JsonObject:
        operations = rest_operations(self.index, self.config.services)
        paths: dict[str, JsonObject] = {}
        for operation in operations:
            item = paths.setdefault(operation.path.openapi_path, {})
            if operation.binding.method in item:
                raise OpenApiError(
                    f"{operation.binding.method.upper()} {operation.path.openapi_path} is bound "
                    f"twice ({operation.grpc_method})"
                )
            item[operation.binding.method] = self.operation(operation)
        for name in self._documented_types(operations):
            self.schemas.ref(name)
        self._describe_packed_types(operations)
        return {
            "openapi": OPENAPI_VERSION,
            "info": self.info(),
            "tags": [self.tag(name) for name in self.config.services],
            "paths": paths,
            "components": {
                "schemas": self.schemas.schemas,
                "responses": {"Error": self.error_response()},
                "securitySchemes": {
                    SECURITY_SCHEME: {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "The `access_token` of a Session (AuthService.Login or "
                        "RefreshToken): an EdDSA-signed JWT, sent as "
                        "`Authorization: Bearer <access_token>`.",
                    }
                },
            },
        }

    def _documented_types(self, operations: Sequence[Operation]) -> list[str]:
        """Types that travel inside `Any`: LRO metadata and results, and error details."""
        names: list[str] = []
        for operation in operations:
            info = _method_proto(self.index, operation).options.Extensions[
                operations_proto_pb2.operation_info
            ]
            for type_name in (info.metadata_type, info.response_type):
                full = self._qualify(str(type_name), operation.service)
                if full and full not in names:
                    names.append(full)
        details = sorted(
            name
            for name, message in self.index.messages.items()
            if message.file.name == "google/rpc/error_details.proto"
            and not message.proto.options.map_entry
        )
        return names + [name for name in details if name not in names]

    def _describe_packed_types(self, operations: Sequence[Operation]) -> None:
        """Name, on google.longrunning.Operation, the types its `Any` fields pack here."""
        operation = self.schemas.schemas.get("google.longrunning.Operation")
        if operation is None:
            return
        packed: dict[str, list[str]] = {"metadata": [], "response": []}
        for rest in operations:
            info = _method_proto(self.index, rest).options.Extensions[
                operations_proto_pb2.operation_info
            ]
            for key, type_name in (
                ("metadata", info.metadata_type),
                ("response", info.response_type),
            ):
                full = self._qualify(str(type_name), rest.service)
                if full and full not in packed[key]:
                    packed[key].append(full)
        notes = [
            f"`{key}` packs {' or '.join(f'`{name}`' for name in names)}"
            for key, names in packed.items()
            if names
        ]
        if notes:
            operation["description"] += f"\n\nIn this API, {' and '.join(notes)}."

    def _qualify(self, type_name: str, service: str) -> str:
        if not type_name:
            return ""
        if type_name in self.index.messages:
            return type_name
        package = service.rsplit(".", 1)[0]
        qualified = f"{package}.{type_name}"
        return qualified if qualified in self.index.messages else type_name

    def info(self) -> JsonObject:
        lines = [
            "REST/JSON side of the Formation MCP control plane: Envoy's gRPC-JSON transcoder "
            "in front of the gRPC API (generated from the protos by "
            "`python -m formation_mcp.openapi`).",
            "",
            "Field names are as in the proto (snake_case)"
            + (
                "; every field without presence is printed, zero values included."
                if self.config.always_print_primitive_fields
                else "; fields with default values are omitted."
            ),
            "64-bit integers are strings, bytes are base64, enums are "
            + ("numbers." if self.config.always_print_enums_as_ints else "names."),
            "Unknown paths are 404 (Envoy's text reply), malformed requests 400 (a Status).",
        ]
        if self.config.max_request_body_size:
            lines.append(f"Request bodies over {self.config.max_request_body_size} bytes are 413.")
        if self.config.stream_newline_delimited:
            lines.append(
                "Server streams are newline-delimited JSON, one message per line; an error after "
                "the first message arrives in-band, in the last message."
            )
        lines += ["", _STATUS_CODES]
        return {
            "title": "Formation MCP control plane",
            "version": self._api_version(),
            "description": "\n".join(lines),
        }

    def _api_version(self) -> str:
        packages = {name.rsplit(".", 2)[-2] for name in self.config.services}
        return ",".join(sorted(packages))

    def tag(self, service_name: str) -> JsonObject:
        service = self.index.services[service_name]
        tag: JsonObject = {"name": service.proto.name}
        description = self.index.comment(service)
        if description:
            tag["description"] = description
        return tag

    def error_response(self) -> JsonObject:
        return {
            "description": "The error: the call's google.rpc.Status as JSON. "
            + _STATUS_CODES
            + " Malformed requests Envoy refuses (unknown query parameter, body not JSON or UTF-8) "
            "are 400 with a Status (MALFORMED_REQUEST); unknown paths 404, bodies too large 413.",
            "content": {
                "application/json": {"schema": self.schemas.ref("google.rpc.Status")},
                "text/plain": {"schema": {"type": "string"}},
            },
        }

    def operation(self, operation: Operation) -> JsonObject:
        method = _method_proto(self.index, operation)
        service = self.index.services[operation.service]
        method_index = list(service.proto.method).index(method)
        request = self.index.message(method.input_type)
        description = self.index.comment(service, 2, method_index)
        permission = METHOD_PERMISSIONS.get(operation.grpc_method)
        public = is_public(operation.grpc_method)
        result: JsonObject = {
            "operationId": operation.operation_id,
            "tags": [service.proto.name],
            "x-grpc-method": operation.grpc_method,
            "x-google-http": {
                "method": operation.binding.method,
                "path": operation.binding.template,
                **({"body": operation.binding.body} if operation.binding.body else {}),
                **(
                    {"response_body": operation.binding.response_body}
                    if operation.binding.response_body
                    else {}
                ),
            },
            "security": [] if public else [{SECURITY_SCHEME: []}],
        }
        if description:
            result["summary"] = _summary(description)
            result["description"] = description
        note = ""
        if public:
            note = "Needs no token."
        elif permission:
            result["x-permission"] = permission
            note = f"Needs the `{permission}` permission."
        if note:
            result["description"] = f"{description}\n\n{note}" if description else note
        parameters = self.path_parameters(request, operation.path)
        body = operation.binding.body
        if body != "*":
            parameters += self.schemas.query_parameters(request, operation.path.bound_fields, body)
        if parameters:
            result["parameters"] = parameters
        if body:
            result["requestBody"] = self.request_body(request, operation.path, body)
        info = method.options.Extensions[operations_proto_pb2.operation_info]
        if info.response_type or info.metadata_type:
            result["x-operation-info"] = {
                "metadata_type": self._qualify(str(info.metadata_type), operation.service),
                "response_type": self._qualify(str(info.response_type), operation.service),
            }
        result["responses"] = {
            "200": self.response(method, operation),
            "default": {"$ref": "#/components/responses/Error"},
        }
        return result

    def path_parameters(self, request: _MessageInfo, path: PathTemplate) -> list[JsonObject]:
        parameters: list[JsonObject] = []
        for parameter in path.parameters:
            schema: JsonObject = {
                "type": "string",
                "pattern": _MULTI_SEGMENT_PATTERN if parameter.multi_segment else _SEGMENT_PATTERN,
            }
            notes: list[str] = []
            if parameter.field_path:
                owner, i, proto = _field_by_path(self.index, request, parameter.field_path)
                if parameter.value_template == f"{{{parameter.name}}}":
                    if proto.type != FieldProto.TYPE_STRING:
                        schema = dict(_QUERY_SCALARS.get(proto.type, schema))
                    notes.append(f"The `{parameter.field_path}` field.")
                else:
                    notes.append(f"Sets `{parameter.field_path}` to `{parameter.value_template}`.")
                comment = self.index.comment(owner, 2, i)
                if comment:
                    notes.append(comment)
            entry: JsonObject = {
                "name": parameter.name,
                "in": "path",
                "required": True,
                "schema": schema,
                "description": " ".join(notes) or "A path segment.",
            }
            parameters.append(entry)
        return parameters

    def request_body(self, request: _MessageInfo, path: PathTemplate, body: str) -> JsonObject:
        if body == "*":
            exclude = frozenset(name for name in path.bound_fields if "." not in name)
            schema = self.schemas.message_schema(request, exclude=exclude)
            schema.pop("description", None)
            required = True
        else:
            owner, i, proto = _field_by_path(self.index, request, body)
            schema = self.schemas.field_schema(owner, i, proto)
            required = _REQUIRED in _behaviors(proto)
        content = {"application/json": {"schema": schema}}
        return {"required": required, "content": content}

    def response(
        self, method: descriptor_pb2.MethodDescriptorProto, operation: Operation
    ) -> JsonObject:
        output = self.index.message(method.output_type)
        if operation.binding.response_body:
            owner, i, proto = _field_by_path(self.index, output, operation.binding.response_body)
            schema = self.schemas.field_schema(owner, i, proto)
        else:
            schema = self.schemas.ref(output.full_name)
        if operation.server_streaming and self.config.stream_newline_delimited:
            return {
                "description": f"A stream of {output.full_name}, one JSON object per line "
                "(newline-delimited JSON), each written as it happens.",
                "content": {NDJSON: {"schema": schema}},
            }
        if operation.server_streaming:
            return {
                "description": f"A JSON array of {output.full_name}, written as they happen.",
                "content": {"application/json": {"schema": {"type": "array", "items": schema}}},
            }
        return {
            "description": f"A {output.full_name}.",
            "content": {"application/json": {"schema": schema}},
        }


def generate(index: DescriptorIndex, config: TranscoderConfig) -> JsonObject:
    """The OpenAPI document of the REST API."""
    return _DocumentBuilder(index, config).build()


def render(document: JsonObject) -> str:
    """The document as committed: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_text(descriptor: Path = DESCRIPTOR, envoy_config: Path = TEMPLATE) -> str:
    return render(generate(DescriptorIndex.load(descriptor), load_transcoder_config(envoy_config)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m formation_mcp.openapi",
        description="Write the OpenAPI document of the REST API (Envoy's transcoding of the "
        "gRPC API), or check that the committed one is current.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff when stale")
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR, help="descriptor set")
    parser.add_argument("--envoy-config", type=Path, default=TEMPLATE, help="envoy.yaml")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the document")
    args = parser.parse_args(argv)
    try:
        text = generate_text(args.descriptor, args.envoy_config)
    except (OpenApiError, OSError, DecodeError, yaml.YAMLError) as exc:
        print(f"openapi: {exc}", file=sys.stderr)
        return 2
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current == text:
            return 0
        sys.stderr.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{output} (committed)",
                tofile=f"{output} (generated)",
            )
        )
        print(
            f"{output} is stale: run 'make proto' (or python -m formation_mcp.openapi) and commit",
            file=sys.stderr,
        )
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
