"""Struct conversion: the bounded one used for what callers send."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import struct_pb2
from tests.support.operations import struct

from formation_mcp.errors import InvalidArgument, ResourceExhausted
from formation_mcp.structs import (
    MAX_DEPTH,
    MAX_VALUES,
    StructSize,
    arguments_from_struct,
    struct_to_dict,
)


def nested(levels: int) -> object:
    value: object = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def test_arguments_convert_as_struct_to_dict_does() -> None:
    message = struct({"name": "web", "count": 3, "ratio": 0.5, "on": True, "none": None,
                      "env": {"PORT": 8080}, "steps": [{"run": "make"}, 2.0]})  # fmt: skip

    converted, _ = arguments_from_struct(message)

    assert converted == struct_to_dict(message)
    assert converted["count"] == 3 and isinstance(converted["count"], int)


def test_arguments_conversion_measures_values_and_characters() -> None:
    _, size = arguments_from_struct(struct({"name": "web", "env": {"PORT": "80"}}))

    # values: "web", the env object, "80"; characters: name + web + env + PORT + 80
    assert size == StructSize(values=3, chars=4 + 3 + 3 + 4 + 2)


def test_too_many_values_are_resource_exhausted_naming_the_argument() -> None:
    message = struct({"name": "web", "files": {str(n): "x" for n in range(MAX_VALUES)}})

    with pytest.raises(ResourceExhausted) as caught:
        arguments_from_struct(message)

    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.reason == "ARGUMENTS_TOO_LARGE"
    assert caught.value.metadata["field"] == "arguments.files"
    assert caught.value.message.startswith(f"arguments.files: has more than {MAX_VALUES} values")


def test_exactly_the_most_values_are_accepted() -> None:
    message = struct({"files": {str(n): "x" for n in range(MAX_VALUES - 1)}})

    _, size = arguments_from_struct(message)

    assert size.values == MAX_VALUES


def test_nesting_too_deep_is_invalid_naming_the_path() -> None:
    with pytest.raises(InvalidArgument) as caught:
        arguments_from_struct(struct({"env": {"deep": nested(MAX_DEPTH)}}))

    [violation] = caught.value.field_violations
    assert violation.field == "arguments.env.deep" + "[0]" * (MAX_DEPTH - 1)  # the 33rd level
    assert violation.description == (
        f"is nested too deeply (more than {MAX_DEPTH} objects and lists); flatten it"
    )


def test_the_deepest_nesting_allowed_converts() -> None:
    converted, _ = arguments_from_struct(struct({"deep": nested(MAX_DEPTH - 1)}))

    assert converted == {"deep": nested(MAX_DEPTH - 1)}


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_a_number_that_is_not_finite_is_invalid(number: float) -> None:
    message = struct_pb2.Struct()
    message.fields["count"].number_value = number

    with pytest.raises(InvalidArgument) as caught:
        arguments_from_struct(message)

    assert [(v.field, v.description) for v in caught.value.field_violations] == [
        ("arguments.count", "is not a finite number")
    ]


def test_a_long_key_is_cut_short_in_the_path() -> None:
    key = "k" * 100_000

    with pytest.raises(InvalidArgument) as caught:
        arguments_from_struct(struct({key: nested(MAX_DEPTH + 1)}))

    assert caught.value.field_violations[0].field.startswith("arguments." + "k" * 64 + "[0]")
