"""JSON Schemas of messages and enums (components), and of query parameters.

Each message or enum a document uses becomes one component, built once and referenced
(`schema_ref`); request fields not bound by the path or the body become query parameters
(nested messages as dotted paths, a few levels deep; maps, repeated messages and free-form
JSON have no query form).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from formation_mcp.openapi.descriptors import (
    INPUT_ONLY,
    OUTPUT_ONLY,
    REQUIRED,
    DescriptorIndex,
    EnumInfo,
    MessageInfo,
    field_behaviors,
    has_presence,
    in_real_oneof,
    is_map,
)
from formation_mcp.openapi.errors import OpenApiError
from formation_mcp.openapi.json_types import (
    QUERY_SCALARS,
    QUERY_WELL_KNOWN,
    SCALARS,
    WELL_KNOWN,
    FieldProto,
    JsonObject,
)
from formation_mcp.openapi.transcoder import TranscoderConfig

_QUERY_DEPTH = 4


def schema_ref(full_name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{full_name}"}


@dataclass
class SchemaBuilder:
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
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name in self.index.enums:
            return self._enum_schema(self.index.enums[name])
        return self.message_schema(self.index.message(name))

    def _enum_schema(self, enum: EnumInfo) -> JsonObject:
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
        self, message: MessageInfo, *, exclude: frozenset[str] = frozenset()
    ) -> JsonObject:
        """The message as a JSON object, without the top-level fields in `exclude`."""
        properties: JsonObject = {}
        required: list[str] = []
        oneofs: dict[int, list[str]] = {}
        for i, proto in enumerate(message.proto.field):
            if proto.name in exclude:
                continue
            name = self.json_name(proto)
            behaviors = field_behaviors(proto)
            properties[name] = self.field_schema(message, i, proto)
            if REQUIRED in behaviors or (
                OUTPUT_ONLY in behaviors
                and self.config.always_print_primitive_fields
                and not has_presence(proto)
            ):
                required.append(name)
            if in_real_oneof(proto):
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

    def field_schema(self, message: MessageInfo, i: int, proto: FieldProto) -> JsonObject:
        if is_map(self.index, proto):
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
        behaviors = field_behaviors(proto)
        if description:
            schema["description"] = description
        if OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        if proto.options.deprecated:
            schema["deprecated"] = True
        return schema

    def value_schema(self, proto: FieldProto) -> JsonObject:
        """The schema of one value of the field (an element, for repeated fields)."""
        if proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP, FieldProto.TYPE_ENUM):
            return self.ref(proto.type_name)
        try:
            return dict(SCALARS[proto.type])
        except KeyError:
            raise OpenApiError(f"field {proto.name}: unsupported type {proto.type}") from None

    # Query parameters ----------------------------------------------------------------------

    def query_parameters(
        self, message: MessageInfo, bound: frozenset[str], body_field: str
    ) -> list[JsonObject]:
        return list(self._query(message, "", bound, body_field, (message.full_name,)))

    def _query(
        self,
        message: MessageInfo,
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
            if is_map(self.index, proto):
                continue
            is_message = proto.type in (FieldProto.TYPE_MESSAGE, FieldProto.TYPE_GROUP)
            if is_message and type_name not in QUERY_WELL_KNOWN:
                if proto.label == FieldProto.LABEL_REPEATED or type_name in WELL_KNOWN:
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
        self, message: MessageInfo, i: int, proto: FieldProto, path: str
    ) -> JsonObject:
        type_name = proto.type_name.lstrip(".")
        if proto.type == FieldProto.TYPE_ENUM:
            value = self._enum_schema(self.index.enum(type_name))
            value.pop("description")
        elif type_name in QUERY_WELL_KNOWN:
            value = dict(WELL_KNOWN[type_name])
            value.pop("description", None)
            if isinstance(value["type"], list):
                value["type"] = value["type"][0]  # no null in a query string
        else:
            value = dict(QUERY_SCALARS[proto.type])
        repeated = proto.label == FieldProto.LABEL_REPEATED
        schema = {"type": "array", "items": value} if repeated else value
        parameter: JsonObject = {"name": path, "in": "query", "schema": schema}
        if repeated:
            parameter.update(style="form", explode=True)
        description = self.index.comment(message, 2, i)
        if description:
            parameter["description"] = description
        if REQUIRED in field_behaviors(proto):
            parameter["required"] = True
        if proto.options.deprecated:
            parameter["deprecated"] = True
        return parameter
