"""The REST operations: every HTTP binding of the transcoded services' RPCs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from formation_mcp.openapi.descriptors import DescriptorIndex, MessageInfo
from formation_mcp.openapi.errors import OpenApiError
from formation_mcp.openapi.http_rules import (
    HttpBinding,
    PathTemplate,
    http_bindings,
    parse_path_template,
)
from formation_mcp.openapi.json_types import FieldProto


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


def method_proto(
    index: DescriptorIndex, operation: Operation
) -> descriptor_pb2.MethodDescriptorProto:
    service = index.services[operation.service]
    return next(m for m in service.proto.method if m.name == operation.method)


def field_by_path(
    index: DescriptorIndex, message: MessageInfo, path: str
) -> tuple[MessageInfo, int, FieldProto]:
    head, _, rest = path.partition(".")
    for i, proto in enumerate(message.proto.field):
        if proto.name == head:
            if not rest:
                return message, i, proto
            return field_by_path(index, index.message(proto.type_name), rest)
    raise OpenApiError(f"{message.full_name} has no field {path!r}")
