"""OpenAPI mappings our protos do not use yet, on a proto of the test's own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from grpc_tools import protoc
from openapi_spec_validator import validate
from tests.support.openapi_documents import (
    PROTECTED,
    JsonObject,
    body_schema,
    operations_of,
    response_schema,
    schema,
)

from formation_mcp.envoy import DESCRIPTOR, REPOSITORY
from formation_mcp.openapi import (
    DescriptorIndex,
    OpenApiError,
    TranscoderConfig,
    generate,
    load_transcoder_config,
)

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
