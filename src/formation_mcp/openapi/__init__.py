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

The modules: `transcoder` (Envoy's configuration), `descriptors` (the descriptor set),
`http_rules` (`google.api.http` bindings and path templates), `operations` (the REST
operations), `json_types` (proto3 JSON of scalars and well-known types), `schemas` (message,
enum and query parameter schemas), `document` (the whole document) and `cli` (the command).
"""

from formation_mcp.openapi.cli import OUTPUT, main
from formation_mcp.openapi.descriptors import DescriptorIndex
from formation_mcp.openapi.document import (
    NDJSON,
    OPENAPI_VERSION,
    SECURITY_SCHEME,
    generate,
    generate_text,
    render,
)
from formation_mcp.openapi.errors import OpenApiError
from formation_mcp.openapi.http_rules import (
    HttpBinding,
    PathParameter,
    PathTemplate,
    http_bindings,
    parse_path_template,
)
from formation_mcp.openapi.json_types import FieldProto, JsonObject
from formation_mcp.openapi.operations import Operation, rest_operations
from formation_mcp.openapi.schemas import schema_ref
from formation_mcp.openapi.transcoder import (
    TRANSCODER,
    TranscoderConfig,
    load_transcoder_config,
)

__all__ = [
    "NDJSON",
    "OPENAPI_VERSION",
    "OUTPUT",
    "SECURITY_SCHEME",
    "TRANSCODER",
    "DescriptorIndex",
    "FieldProto",
    "HttpBinding",
    "JsonObject",
    "OpenApiError",
    "Operation",
    "PathParameter",
    "PathTemplate",
    "TranscoderConfig",
    "generate",
    "generate_text",
    "http_bindings",
    "load_transcoder_config",
    "main",
    "parse_path_template",
    "render",
    "rest_operations",
    "schema_ref",
]
