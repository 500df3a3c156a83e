"""The OpenAPI document of the REST API: committed and current, valid, complete, and saying
what Envoy's transcoding really does (proto3 JSON, field names, auth, errors, streams)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from formation.mcp.v1 import accounts_pb2, auth_pb2, events_pb2, operations_pb2, tools_pb2
from google.api import annotations_pb2
from grpc_tools import protoc
from openapi_spec_validator import validate

from formation_mcp import openapi
from formation_mcp.envoy import DESCRIPTOR, REPOSITORY, TEMPLATE
from formation_mcp.openapi import (
    OUTPUT,
    DescriptorIndex,
    OpenApiError,
    TranscoderConfig,
    generate,
    generate_text,
    load_transcoder_config,
    parse_path_template,
)

JsonObject = dict[str, Any]
PROTECTED: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# Every RPC's REST binding, as clients see it: (HTTP method, OpenAPI path).
EXPECTED_OPERATIONS = {
    "AuthService_CreateChallenge": ("post", "/v1/auth/challenge"),
    "AuthService_Login": ("post", "/v1/auth/login"),
    "AuthService_RefreshToken": ("post", "/v1/auth/token:refresh"),
    "AuthService_RevokeToken": ("post", "/v1/auth/token:revoke"),
    "AuthService_GetCurrentAccount": ("get", "/v1/auth/account"),
    "AuthService_GetJwks": ("get", "/v1/auth/jwks"),
    "AuthService_GetAuthorizationRequest": (
        "get",
        "/v1/auth/authorizationRequests/{authorizationRequest}",
    ),
    "AuthService_ApproveAuthorizationRequest": (
        "post",
        "/v1/auth/authorizationRequests/{authorizationRequest}:approve",
    ),
    "AuthService_DenyAuthorizationRequest": (
        "post",
        "/v1/auth/authorizationRequests/{authorizationRequest}:deny",
    ),
    "AuthService_ListGrants": ("get", "/v1/auth/grants"),
    "AuthService_RevokeGrant": ("post", "/v1/auth/grants/{grant}:revoke"),
    "AccountsService_ListAccounts": ("get", "/v1/accounts"),
    "AccountsService_GetAccount": ("get", "/v1/accounts/{account}"),
    "AccountsService_CreateAccount": ("post", "/v1/accounts"),
    "AccountsService_UpdateAccount": ("patch", "/v1/accounts/{account}"),
    "ToolsService_ListTools": ("get", "/v1/tools"),
    "ToolsService_GetTool": ("get", "/v1/tools/{tool}"),
    "ToolsService_CallTool": ("post", "/v1/tools/{tool}:call"),
    "OperationsService_GetOperation": ("get", "/v1/operations/{operation}"),
    "OperationsService_ListOperations": ("get", "/v1/operations"),
    "OperationsService_CancelOperation": ("post", "/v1/operations/{operation}:cancel"),
    "OperationsService_DeleteOperation": ("delete", "/v1/operations/{operation}"),
    "OperationsService_WaitOperation": ("post", "/v1/operations/{operation}:wait"),
    "OperationsService_WatchOperation": ("get", "/v1/operations/{operation}:watch"),
    "EventsService_ListEvents": ("get", "/v1/events"),
    "EventsService_WatchEvents": ("get", "/v1/events:watch"),
}
PUBLIC_OPERATIONS = {
    "AuthService_CreateChallenge",
    "AuthService_Login",
    "AuthService_RefreshToken",
    "AuthService_GetJwks",
    "AuthService_GetAuthorizationRequest",
    "AuthService_ApproveAuthorizationRequest",
    "AuthService_DenyAuthorizationRequest",
}


@pytest.fixture(scope="module")
def document() -> JsonObject:
    loaded: JsonObject = json.loads(OUTPUT.read_text())
    return loaded


def operations_of(document: JsonObject) -> dict[str, tuple[str, str, JsonObject]]:
    found: dict[str, tuple[str, str, JsonObject]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found[operation["operationId"]] = (method, path, operation)
    return found


def schema(document: JsonObject, name: str) -> JsonObject:
    found: JsonObject = document["components"]["schemas"][name]
    return found


def prop(document: JsonObject, message: str, field: str) -> JsonObject:
    found: JsonObject = schema(document, message)["properties"][field]
    return found


def body_schema(operation: JsonObject) -> JsonObject:
    found: JsonObject = operation["requestBody"]["content"]["application/json"]["schema"]
    return found


def response_schema(operation: JsonObject, media_type: str = "application/json") -> JsonObject:
    found: JsonObject = operation["responses"]["200"]["content"][media_type]["schema"]
    return found


# --- The committed document --------------------------------------------------------------


def test_the_committed_document_is_what_the_generator_makes_now() -> None:
    assert OUTPUT.read_text() == generate_text(), (
        "openapi/formation_mcp.openapi.json is stale: run `make proto` and commit"
    )


def test_the_document_is_valid_openapi_3_1(document: JsonObject) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_output_is_deterministic() -> None:
    assert generate_text() == generate_text()
    text = generate_text()
    assert text.endswith("}\n")
    reparsed = json.loads(text)
    assert json.dumps(reparsed, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text


def test_check_passes_when_current_and_fails_with_a_diff_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = tmp_path / "current.json"
    current.write_text(OUTPUT.read_text())
    assert openapi.main(["--check", "--output", str(current)]) == 0

    stale = tmp_path / "stale.json"
    stale.write_text(OUTPUT.read_text().replace('"3.1.0"', '"3.0.3"'))
    assert openapi.main(["--check", "--output", str(stale)]) == 1
    err = capsys.readouterr().err
    assert '-  "openapi": "3.0.3",' in err and '+  "openapi": "3.1.0",' in err
    assert "is stale" in err

    missing = tmp_path / "missing.json"
    assert openapi.main(["--check", "--output", str(missing)]) == 1
    assert not missing.exists()


def test_writing_creates_the_document(tmp_path: Path) -> None:
    output = tmp_path / "out" / "doc.json"
    assert openapi.main(["--output", str(output)]) == 0
    assert output.read_text() == OUTPUT.read_text()


def test_an_unreadable_descriptor_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.binpb"
    assert openapi.main(["--check", "--descriptor", str(missing)]) == 2
    assert "openapi:" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.binpb"
    corrupt.write_bytes(b"\xff\xff\xff")
    assert openapi.main(["--check", "--descriptor", str(corrupt)]) == 2
    assert "openapi:" in capsys.readouterr().err


# --- Completeness ------------------------------------------------------------------------------


def test_every_rpc_with_an_http_binding_has_its_operation(document: JsonObject) -> None:
    found = operations_of(document)
    assert {key: (method, path) for key, (method, path, _) in found.items()} == (
        EXPECTED_OPERATIONS
    )
    # Cross-check against the Python descriptors: every bound RPC of the transcoded services
    # is in the document, with the binding it declares.
    bound = {}
    for module in (accounts_pb2, auth_pb2, events_pb2, operations_pb2, tools_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if options.HasExtension(annotations_pb2.http):
                    bound[f"{service.name}_{method.name}"] = (
                        method,
                        options.Extensions[annotations_pb2.http],
                    )
    assert set(bound) == set(found)
    for key, (method, rule) in bound.items():
        verb, _path, operation = found[key]
        declared = getattr(rule, rule.WhichOneof("pattern"))
        assert verb == rule.WhichOneof("pattern")
        assert operation["x-google-http"]["path"] == declared
        assert operation["x-grpc-method"] == f"/{method.containing_service.full_name}/{method.name}"
        assert ("requestBody" in operation) == bool(rule.body)


def test_the_transcoded_services_are_the_ones_envoy_lists(document: JsonObject) -> None:
    config = load_transcoder_config(TEMPLATE)
    assert config.services == (
        "formation.mcp.v1.AuthService",
        "formation.mcp.v1.AccountsService",
        "formation.mcp.v1.ToolsService",
        "formation.mcp.v1.OperationsService",
        "formation.mcp.v1.EventsService",
    )
    assert config.preserve_proto_field_names and config.always_print_primitive_fields
    assert config.stream_newline_delimited and not config.always_print_enums_as_ints
    assert config.max_request_body_size == 4 * 1024 * 1024
    assert [tag["name"] for tag in document["tags"]] == [
        "AuthService",
        "AccountsService",
        "ToolsService",
        "OperationsService",
        "EventsService",
    ]


def test_operations_carry_the_proto_comments(document: JsonObject) -> None:
    _, _, get_tool = operations_of(document)["ToolsService_GetTool"]
    assert get_tool["summary"] == "Returns one tool, by name or alias (`tools/vm.create`)."
    assert "Needs the `tools.read` permission." in get_tool["description"]
    assert get_tool["x-permission"] == "tools.read"
    assert prop(document, "formation.mcp.v1.Tool", "category")["description"] == (
        "Category, e.g. `vm`, `pack`."
    )
    tags = {tag["name"]: tag for tag in document["tags"]}
    assert tags["ToolsService"]["description"].startswith("Discovers and calls tools.")


# --- proto3 JSON mapping -----------------------------------------------------------------------


def test_field_names_are_the_proto_names(document: JsonObject) -> None:
    metadata = schema(document, "formation.mcp.v1.OperationMetadata")["properties"]
    assert {"progress_percent", "status_message", "create_time", "cancel_requested"} <= set(
        metadata
    )
    assert "progressPercent" not in metadata


def test_int64_is_a_string(document: JsonObject) -> None:
    sequence = prop(document, "formation.mcp.v1.OperationMetadata", "sequence")
    assert sequence["type"] == "string" and sequence["format"] == "int64"
    assert sequence["pattern"] == "^-?[0-9]+$"
    _, _, watch = operations_of(document)["OperationsService_WatchOperation"]
    after = next(p for p in watch["parameters"] if p["name"] == "after_sequence")
    assert after["in"] == "query" and after["schema"]["type"] == "string"
    # int32 stays a number, with its range.
    progress = prop(document, "formation.mcp.v1.OperationMetadata", "progress_percent")
    assert progress["type"] == "integer" and progress["maximum"] == 2**31 - 1


def test_bytes_are_base64_strings(document: JsonObject) -> None:
    for message, field in [
        ("formation.mcp.v1.Account", "public_key"),
        ("formation.mcp.v1.Challenge", "message"),
    ]:
        bytes_field = prop(document, message, field)
        assert bytes_field["type"] == "string"
        assert bytes_field["format"] == "byte" and bytes_field["contentEncoding"] == "base64"


def test_enums_are_their_value_names(document: JsonObject) -> None:
    state = schema(document, "formation.mcp.v1.OperationMetadata.State")
    assert state["type"] == "string"
    assert state["enum"] == [
        "STATE_UNSPECIFIED",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    ]
    assert "- `RUNNING`: A worker is running it." in state["description"]
    assert prop(document, "formation.mcp.v1.OperationMetadata", "state")["$ref"] == (
        "#/components/schemas/formation.mcp.v1.OperationMetadata.State"
    )


def test_output_only_is_read_only_and_always_printed_ones_are_required(
    document: JsonObject,
) -> None:
    account = schema(document, "formation.mcp.v1.Account")
    assert account["properties"]["key_id"]["readOnly"] is True
    assert account["properties"]["create_time"]["readOnly"] is True
    assert "readOnly" not in account["properties"]["roles"]  # OPTIONAL
    assert "readOnly" not in account["properties"]["public_key"]  # IMMUTABLE
    # Envoy prints every field without presence (always_print_primitive_fields): such
    # OUTPUT_ONLY fields are required (in responses only, being readOnly); a message field
    # (create_time) is printed only when set.
    assert account["required"] == ["key_id"]
    metadata = schema(document, "formation.mcp.v1.OperationMetadata")
    assert "logs" in metadata["required"] and "end_time" not in metadata["required"]


def test_well_known_types(document: JsonObject) -> None:
    timestamp = schema(document, "google.protobuf.Timestamp")
    assert (timestamp["type"], timestamp["format"]) == ("string", "date-time")
    duration = schema(document, "google.protobuf.Duration")
    assert duration["type"] == "string" and duration["pattern"].endswith("s$")
    struct = schema(document, "google.protobuf.Struct")
    assert struct["type"] == "object" and struct["additionalProperties"] is True
    any_schema = schema(document, "google.protobuf.Any")
    assert any_schema["required"] == ["@type"] and any_schema["additionalProperties"] is True
    assert schema(document, "google.protobuf.Empty")["additionalProperties"] is False
    assert prop(document, "formation.mcp.v1.Tool", "input_schema")["$ref"].endswith(".Struct")


def test_operations_are_google_longrunning_with_any_metadata_and_response(
    document: JsonObject,
) -> None:
    operation = schema(document, "google.longrunning.Operation")
    assert operation["properties"]["metadata"]["$ref"].endswith("/google.protobuf.Any")
    assert operation["properties"]["response"]["$ref"].endswith("/google.protobuf.Any")
    assert operation["properties"]["error"]["$ref"].endswith("/google.rpc.Status")
    assert "`metadata` packs `formation.mcp.v1.OperationMetadata`" in operation["description"]
    assert "`response` packs `formation.mcp.v1.ToolResult`" in operation["description"]
    assert "At most one of `error`, `response` is set" in operation["description"]
    # The packed types are documented although only `Any` refers to them.
    assert "formation.mcp.v1.ToolResult" in document["components"]["schemas"]
    _, _, call = operations_of(document)["ToolsService_CallTool"]
    assert call["x-operation-info"] == {
        "metadata_type": "formation.mcp.v1.OperationMetadata",
        "response_type": "formation.mcp.v1.ToolResult",
    }
    assert response_schema(call)["$ref"].endswith("/google.longrunning.Operation")


# --- Requests ------------------------------------------------------------------------------------


def test_path_templates_become_segment_parameters_with_a_pattern(document: JsonObject) -> None:
    _, _, get = operations_of(document)["OperationsService_GetOperation"]
    (parameter,) = get["parameters"]
    assert parameter["name"] == "operation" and parameter["in"] == "path"
    assert parameter["required"] is True
    assert parameter["schema"] == {"type": "string", "pattern": "^[^/]+$"}
    assert parameter["description"].startswith("Sets `name` to `operations/{operation}`.")


def test_get_and_delete_take_unbound_fields_as_query_parameters(document: JsonObject) -> None:
    found = operations_of(document)
    _, _, list_operations = found["OperationsService_ListOperations"]
    query = {p["name"]: p for p in list_operations["parameters"]}
    assert list(query) == ["filter", "page_size", "page_token"]
    assert all(p["in"] == "query" and "required" not in p for p in query.values())
    assert query["page_size"]["schema"]["type"] == "integer"
    assert "AIP-160 subset" in query["filter"]["description"]
    _, _, delete = found["OperationsService_DeleteOperation"]
    assert [p["in"] for p in delete["parameters"]] == ["path"]
    assert "requestBody" not in delete


def test_body_star_is_the_request_without_path_fields(document: JsonObject) -> None:
    found = operations_of(document)
    wait = body_schema(found["OperationsService_WaitOperation"][2])
    assert list(wait["properties"]) == ["timeout"]  # `name` is in the path
    assert wait["properties"]["timeout"]["$ref"].endswith("/google.protobuf.Duration")
    call = body_schema(found["ToolsService_CallTool"][2])
    assert set(call["properties"]) == {"arguments", "request_id", "validate_only", "wait"}


def test_required_request_fields(document: JsonObject) -> None:
    found = operations_of(document)
    login = found["AuthService_Login"][2]
    assert login["requestBody"]["required"] is True
    assert body_schema(login)["required"] == ["challenge_id", "public_key", "signature"]
    assert "required" not in body_schema(found["OperationsService_WaitOperation"][2])


def test_body_field_is_that_field_and_the_rest_are_query_parameters(document: JsonObject) -> None:
    found = operations_of(document)
    _, _, update = found["AccountsService_UpdateAccount"]
    assert update["requestBody"]["required"] is True  # `account` is REQUIRED
    assert body_schema(update)["$ref"].endswith("/formation.mcp.v1.Account")
    parameters = {p["name"]: p["in"] for p in update["parameters"]}
    assert parameters == {"account": "path", "update_mask": "query"}


# --- Responses, errors, auth ---------------------------------------------------------------------


def test_errors_are_google_rpc_status(document: JsonObject) -> None:
    error = document["components"]["responses"]["Error"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/google.rpc.Status")
    assert error["content"]["text/plain"]["schema"] == {"type": "string"}
    status = schema(document, "google.rpc.Status")
    assert set(status["properties"]) == {"code", "message", "details"}
    assert status["properties"]["details"]["items"]["$ref"].endswith("/google.protobuf.Any")
    assert "UNAUTHENTICATED 401" in error["description"]
    assert "google.rpc.ErrorInfo" in document["components"]["schemas"]
    for _, _, operation in operations_of(document).values():
        assert operation["responses"]["default"] == {"$ref": "#/components/responses/Error"}


def test_watch_is_ndjson_of_operations(document: JsonObject) -> None:
    _, _, watch = operations_of(document)["OperationsService_WatchOperation"]
    content = watch["responses"]["200"]["content"]
    assert list(content) == ["application/x-ndjson"]
    assert content["application/x-ndjson"]["schema"]["$ref"].endswith(
        "/google.longrunning.Operation"
    )


def test_bearer_auth_on_every_operation_but_the_public_ones(document: JsonObject) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "security" not in document  # each operation says
    for key, (_, _, operation) in operations_of(document).items():
        expected = [] if key in PUBLIC_OPERATIONS else PROTECTED
        assert operation["security"] == expected, key
    login = operations_of(document)["AuthService_Login"][2]
    assert login["security"] == [] and "x-permission" not in login
    assert login["description"].endswith("Needs no token.")


def test_empty_responses_are_empty_objects(document: JsonObject) -> None:
    _, _, delete = operations_of(document)["OperationsService_DeleteOperation"]
    assert response_schema(delete)["$ref"].endswith("/google.protobuf.Empty")


# --- Path templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "parameters"),
    [
        ("/v1/accounts", "/v1/accounts", []),
        ("/v1/auth/token:refresh", "/v1/auth/token:refresh", []),
        (
            "/v1/{name=operations/*}:cancel",
            "/v1/operations/{operation}:cancel",
            [("operation", "name", "operations/{operation}", False)],
        ),
        (
            "/v1/{account.name=accounts/*}",
            "/v1/accounts/{account}",
            [("account", "account.name", "accounts/{account}", False)],
        ),
        ("/v1/things/{id}", "/v1/things/{id}", [("id", "id", "{id}", False)]),
        (
            "/v1/{parent=projects/*/locations/*}/queries",
            "/v1/projects/{project}/locations/{location}/queries",
            [
                ("project", "parent", "projects/{project}/locations/{location}", False),
                ("location", "parent", "projects/{project}/locations/{location}", False),
            ],
        ),
        (
            "/v1/{name=policies/*/addresses/*/data/*}",
            "/v1/policies/{policy}/addresses/{address}/data/{data_id}",
            [
                ("policy", "name", "policies/{policy}/addresses/{address}/data/{data_id}", False),
                ("address", "name", "policies/{policy}/addresses/{address}/data/{data_id}", False),
                ("data_id", "name", "policies/{policy}/addresses/{address}/data/{data_id}", False),
            ],
        ),
        (
            "/v1/{name=files/**}",
            "/v1/files/{file}",
            [("file", "name", "files/{file}", True)],
        ),
        (
            "/v1/{a=*}/{b=categories/*}/x/{c=categories/*}",
            "/v1/{a}/categories/{category}/x/categories/{category_2}",
            [
                ("a", "a", "{a}", False),
                ("category", "b", "categories/{category}", False),
                ("category_2", "c", "categories/{category_2}", False),
            ],
        ),
    ],
)
def test_path_templates(
    template: str, path: str, parameters: list[tuple[str, str, str, bool]]
) -> None:
    parsed = parse_path_template(template)
    assert parsed.openapi_path == path
    assert [
        (p.name, p.field_path, p.value_template, p.multi_segment) for p in parsed.parameters
    ] == parameters
    assert parsed.bound_fields == {p[1] for p in parameters}


@pytest.mark.parametrize(
    "template", ["v1/x", "/v1/{name=a/**/b}", "/v1/{name", "/v1/name}", "/v1//x"]
)
def test_bad_path_templates_are_refused(template: str) -> None:
    with pytest.raises(OpenApiError):
        parse_path_template(template)


# --- Mappings our protos do not use yet (a proto of the test's own) ---------------------------

SAMPLE_PROTO = """
syntax = "proto3";
package sample.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// Things.
service ThingService {
  // Gets a thing.
  rpc GetThing(GetThingRequest) returns (Thing) {
    option (google.api.http) = {
      get: "/v1/{name=boxes/*/things/*}"
      additional_bindings { get: "/v1/things/{name}" }
    };
  }
  // Lists things.
  rpc ListThings(ListThingsRequest) returns (stream Thing) {
    option (google.api.http) = {get: "/v1/things"};
  }
  // Renames a thing.
  rpc RenameThing(RenameThingRequest) returns (Thing) {
    option (google.api.http) = {
      custom: {kind: "PUT" path: "/v1/{name=things/*}:rename"}
      body: "new_name"
      response_body: "labels"
    };
  }
  // Not on REST.
  rpc Hidden(GetThingRequest) returns (Thing);
}

// A thing.
message Thing {
  // Colours.
  enum Colour {
    // None.
    COLOUR_UNSPECIFIED = 0;
    // Red.
    RED = 1;
  }
  string name = 1 [(google.api.field_behavior) = IDENTIFIER];
  map<string, int64> counts = 2 [(google.api.field_behavior) = OUTPUT_ONLY];
  google.protobuf.Int32Value size = 3;
  google.protobuf.StringValue nickname = 4;
  double weight = 5;
  uint64 big = 6;
  oneof shape {
    // Round.
    float radius = 7;
    // Square.
    uint32 side = 8;
  }
  repeated Colour colours = 9;
  string secret = 10 [(google.api.field_behavior) = INPUT_ONLY];
  string old = 11 [deprecated = true];
  optional int32 maybe = 12 [(google.api.field_behavior) = OUTPUT_ONLY];
  repeated string labels = 13;
  google.protobuf.Value anything = 14;
  google.protobuf.ListValue list = 15;
  bytes blob = 16;
  string display_name = 17;
}

message GetThingRequest {
  string name = 1 [(google.api.field_behavior) = REQUIRED];
}

message Page {
  int32 size = 1;
  Page next = 2;
}

message ListThingsRequest {
  // Filter by colour.
  repeated Thing.Colour colours = 1;
  Page page = 2;
  google.protobuf.Timestamp since = 3 [(google.api.field_behavior) = REQUIRED];
  google.protobuf.BoolValue flag = 4;
  google.protobuf.Struct ignored = 5;
  map<string, string> also_ignored = 6;
  repeated Page pages = 7;
  double ratio = 8;
}

message RenameThingRequest {
  string name = 1 [(google.api.field_behavior) = REQUIRED];
  string new_name = 2 [(google.api.field_behavior) = REQUIRED];
  bool validate_only = 3;
}
"""


@pytest.fixture(scope="module")
def sample_descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAMPLE_PROTO compiled the way `make proto` compiles ours."""
    directory = tmp_path_factory.mktemp("sample")
    (directory / "sample.proto").write_text(SAMPLE_PROTO)
    output = directory / "sample.binpb"
    well_known = resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{directory}",
            f"-I{REPOSITORY / 'proto'}",
            f"-I{well_known}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={output}",
            str(directory / "sample.proto"),
            "google/rpc/status.proto",  # as `make proto` does: Envoy renders errors with it
        ]
    )
    assert status == 0
    return output


@pytest.fixture(scope="module")
def sample(sample_descriptor: Path) -> JsonObject:
    config = TranscoderConfig(services=("sample.v1.ThingService",))
    document = generate(DescriptorIndex.load(sample_descriptor), config)
    validate(document)
    return document


def test_sample_additional_bindings_and_custom_methods(sample: JsonObject) -> None:
    found = operations_of(sample)
    assert {key: (method, path) for key, (method, path, _) in found.items()} == {
        "ThingService_GetThing": ("get", "/v1/boxes/{box}/things/{thing}"),
        "ThingService_GetThing_2": ("get", "/v1/things/{name}"),
        "ThingService_ListThings": ("get", "/v1/things"),
        "ThingService_RenameThing": ("put", "/v1/things/{thing}:rename"),
    }
    _, _, rename = found["ThingService_RenameThing"]
    assert body_schema(rename) == {"type": "string"}
    assert rename["requestBody"]["required"] is True
    assert [p["name"] for p in rename["parameters"]] == ["thing", "validate_only"]
    assert rename["x-google-http"] == {
        "method": "put",
        "path": "/v1/{name=things/*}:rename",
        "body": "new_name",
        "response_body": "labels",
    }
    labels = response_schema(rename)
    assert labels["type"] == "array" and labels["items"] == {"type": "string"}
    # Not in formation_mcp.permissions: protected.
    assert rename["security"] == PROTECTED


def test_sample_scalars_maps_wrappers_and_oneofs(sample: JsonObject) -> None:
    thing = schema(sample, "sample.v1.Thing")
    properties = thing["properties"]
    assert properties["counts"]["type"] == "object"
    assert properties["counts"]["additionalProperties"]["type"] == "string"  # int64 values
    assert properties["counts"]["readOnly"] is True
    assert properties["size"]["$ref"].endswith("/google.protobuf.Int32Value")
    assert schema(sample, "google.protobuf.Int32Value")["type"] == ["integer", "null"]
    assert schema(sample, "google.protobuf.StringValue")["type"] == ["string", "null"]
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]} in properties["weight"][
        "anyOf"
    ]
    assert properties["big"]["format"] == "uint64" and properties["big"]["type"] == "string"
    assert properties["side"]["maximum"] == 2**32 - 1
    assert properties["colours"]["items"]["$ref"].endswith("/sample.v1.Thing.Colour")
    assert properties["secret"]["writeOnly"] is True
    assert properties["old"]["deprecated"] is True
    assert properties["radius"]["description"] == "Round."
    assert schema(sample, "google.protobuf.Value") == {"description": "Any JSON value."}
    assert schema(sample, "google.protobuf.ListValue")["type"] == "array"
    assert "At most one of `radius`, `side` is set (oneof `shape`)." in thing["description"]
    # Printed always: the OUTPUT_ONLY map; not the proto3 `optional` one.
    assert thing["required"] == ["counts"]
    assert "ThingService_Hidden" not in operations_of(sample)


def test_sample_query_parameters(sample: JsonObject) -> None:
    _, _, list_things = operations_of(sample)["ThingService_ListThings"]
    query = {p["name"]: p for p in list_things["parameters"]}
    # Struct, maps and repeated messages have no query form; `page.next` would recurse.
    assert list(query) == ["colours", "page.size", "since", "flag", "ratio"]
    colours = query["colours"]
    assert colours["schema"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["COLOUR_UNSPECIFIED", "RED"]},
    }
    assert (colours["style"], colours["explode"]) == ("form", True)
    assert colours["description"] == "Filter by colour."
    assert query["since"]["required"] is True
    assert query["since"]["schema"] == {"type": "string", "format": "date-time"}
    assert query["flag"]["schema"] == {"type": "boolean"}
    assert query["ratio"]["schema"] == {"type": "number", "format": "double"}
    assert query["page.size"]["schema"]["type"] == "integer"


def test_sample_server_stream_is_ndjson(sample: JsonObject) -> None:
    _, _, list_things = operations_of(sample)["ThingService_ListThings"]
    assert list(list_things["responses"]["200"]["content"]) == ["application/x-ndjson"]


def test_sample_with_other_print_options(sample_descriptor: Path) -> None:
    config = TranscoderConfig(
        services=("sample.v1.ThingService",),
        preserve_proto_field_names=False,
        always_print_primitive_fields=False,
        always_print_enums_as_ints=True,
        stream_newline_delimited=False,
    )
    document = generate(DescriptorIndex.load(sample_descriptor), config)
    validate(document)
    thing = schema(document, "sample.v1.Thing")
    assert "displayName" in thing["properties"] and "display_name" not in thing["properties"]
    assert "required" not in thing
    assert schema(document, "sample.v1.Thing.Colour")["enum"] == [0, 1]
    _, _, list_things = operations_of(document)["ThingService_ListThings"]
    assert response_schema(list_things)["type"] == "array"


def test_unknown_service_is_an_error() -> None:
    index = DescriptorIndex.load(DESCRIPTOR)
    with pytest.raises(OpenApiError, match="not in the descriptor set"):
        generate(index, TranscoderConfig(services=("formation.mcp.v1.NoSuchService",)))


def test_envoy_config_without_the_transcoder_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text("static_resources: {listeners: []}\n")
    with pytest.raises(OpenApiError, match=r"no envoy\.filters\.http\.grpc_json_transcoder"):
        load_transcoder_config(config)


def test_watch_events_is_ndjson_of_events(document: JsonObject) -> None:
    _, _, watch = operations_of(document)["EventsService_WatchEvents"]
    content = watch["responses"]["200"]["content"]
    assert list(content) == ["application/x-ndjson"]
    assert content["application/x-ndjson"]["schema"]["$ref"].endswith("/formation.mcp.v1.Event")
