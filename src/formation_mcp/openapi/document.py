"""The OpenAPI 3.1 document: info, tags, paths with their operations, and components.

Each operation carries its gRPC method, its `google.api.http` rule, the permission it needs
(`formation_mcp.permissions`: which methods need a bearer token and which permission), its
parameters, body and responses; errors are the call's `google.rpc.Status`. The output is
deterministic (sorted keys, stable order), so a stale committed document can be told.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from google.longrunning import operations_proto_pb2
from google.protobuf import descriptor_pb2

from formation_mcp.envoy import DESCRIPTOR, TEMPLATE
from formation_mcp.openapi.descriptors import (
    REQUIRED,
    DescriptorIndex,
    MessageInfo,
    field_behaviors,
    summary,
)
from formation_mcp.openapi.errors import OpenApiError
from formation_mcp.openapi.http_rules import PathTemplate
from formation_mcp.openapi.json_types import QUERY_SCALARS, FieldProto, JsonObject
from formation_mcp.openapi.operations import (
    Operation,
    field_by_path,
    method_proto,
    rest_operations,
)
from formation_mcp.openapi.schemas import SchemaBuilder
from formation_mcp.openapi.transcoder import TranscoderConfig, load_transcoder_config
from formation_mcp.permissions import METHOD_PERMISSIONS, is_public

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearerAuth"
NDJSON = "application/x-ndjson"
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


class _DocumentBuilder:
    def __init__(self, index: DescriptorIndex, config: TranscoderConfig) -> None:
        self.index = index
        self.config = config
        self.schemas = SchemaBuilder(index, config)

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
            info = method_proto(self.index, operation).options.Extensions[
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
            info = method_proto(self.index, rest).options.Extensions[
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
        method = method_proto(self.index, operation)
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
            result["summary"] = summary(description)
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

    def path_parameters(self, request: MessageInfo, path: PathTemplate) -> list[JsonObject]:
        parameters: list[JsonObject] = []
        for parameter in path.parameters:
            schema: JsonObject = {
                "type": "string",
                "pattern": _MULTI_SEGMENT_PATTERN if parameter.multi_segment else _SEGMENT_PATTERN,
            }
            notes: list[str] = []
            if parameter.field_path:
                owner, i, proto = field_by_path(self.index, request, parameter.field_path)
                if parameter.value_template == f"{{{parameter.name}}}":
                    if proto.type != FieldProto.TYPE_STRING:
                        schema = dict(QUERY_SCALARS.get(proto.type, schema))
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

    def request_body(self, request: MessageInfo, path: PathTemplate, body: str) -> JsonObject:
        if body == "*":
            exclude = frozenset(name for name in path.bound_fields if "." not in name)
            schema = self.schemas.message_schema(request, exclude=exclude)
            schema.pop("description", None)
            required = True
        else:
            owner, i, proto = field_by_path(self.index, request, body)
            schema = self.schemas.field_schema(owner, i, proto)
            required = REQUIRED in field_behaviors(proto)
        content = {"application/json": {"schema": schema}}
        return {"required": required, "content": content}

    def response(
        self, method: descriptor_pb2.MethodDescriptorProto, operation: Operation
    ) -> JsonObject:
        output = self.index.message(method.output_type)
        if operation.binding.response_body:
            owner, i, proto = field_by_path(self.index, output, operation.binding.response_body)
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
