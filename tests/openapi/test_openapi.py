"""The OpenAPI document of the REST API: committed and current, valid, complete, and saying
what Envoy's transcoding really does (proto3 JSON, field names, auth, errors, streams)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from formation.mcp.v1 import (
    accounts_pb2,
    auth_pb2,
    events_pb2,
    operations_pb2,
    policies_pb2,
    tools_pb2,
)
from google.api import annotations_pb2
from openapi_spec_validator import validate
from tests.support.openapi_documents import (
    EXPECTED_OPERATIONS,
    PROTECTED,
    PUBLIC_OPERATIONS,
    JsonObject,
    body_schema,
    operations_of,
    prop,
    response_schema,
    schema,
)

from formation_mcp import openapi
from formation_mcp.envoy import TEMPLATE
from formation_mcp.openapi import (
    OUTPUT,
    OpenApiError,
    generate_text,
    load_transcoder_config,
    parse_path_template,
)

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
    for module in (accounts_pb2, auth_pb2, events_pb2, operations_pb2, policies_pb2, tools_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if options.HasExtension(annotations_pb2.http):
                    rule = options.Extensions[annotations_pb2.http]
                    bound[f"{service.name}_{method.name}"] = (method, rule)
                    for number, extra in enumerate(rule.additional_bindings, start=2):
                        bound[f"{service.name}_{method.name}_{number}"] = (method, extra)
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
        "formation.mcp.v1.PoliciesService",
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
        "PoliciesService",
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
        "AWAITING_APPROVAL",
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
    assert set(call["properties"]) == {
        "arguments",
        "request_id",
        "validate_only",
        "wait",
        "reason",
    }


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


def test_watch_events_is_ndjson_of_events(document: JsonObject) -> None:
    _, _, watch = operations_of(document)["EventsService_WatchEvents"]
    content = watch["responses"]["200"]["content"]
    assert list(content) == ["application/x-ndjson"]
    assert content["application/x-ndjson"]["schema"]["$ref"].endswith("/formation.mcp.v1.Event")
