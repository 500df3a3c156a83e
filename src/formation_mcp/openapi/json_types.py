"""Proto3 JSON as JSON Schema: the scalar types and the well-known types.

The schemas follow the proto3 JSON mapping (https://protobuf.dev/programming-guides/json/):
64-bit integers are strings, bytes base64, floats may be NaN or (-)Infinity as strings, and
the well-known types have JSON forms of their own (the wrappers are nullable). Query
parameters carry text, so they have variants of their own.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

JsonObject = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

_INT32_RANGE = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32_RANGE = {"minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$"}
_BYTES = {"type": "string", "format": "byte", "contentEncoding": "base64"}
_FLOAT_SPECIALS = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}

# proto3 JSON of the scalar types (https://protobuf.dev/programming-guides/json/).
SCALARS: dict[int, JsonObject] = {
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
QUERY_SCALARS: dict[int, JsonObject] = {
    **SCALARS,
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
}


def _nullable(schema: JsonObject) -> JsonObject:
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


# Well-known types with a JSON mapping of their own; the wrappers are nullable.
WELL_KNOWN: dict[str, JsonObject] = {
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
QUERY_WELL_KNOWN = {
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
