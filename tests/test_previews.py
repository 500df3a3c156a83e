"""Previews of values for error messages: JSON-like, and never longer (or costlier) than
their limit, whatever the value."""

from __future__ import annotations

import datetime

import pytest

from formation_mcp.previews import preview


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("web", '"web"'),
        (8080, "8080"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        (["a", 1], '["a", 1]'),
        ({"a": [1, {"b": None}]}, '{"a": [1, {"b": null}]}'),
        ({1: "x"}, '{"1": "x"}'),
        ("é\n", '"é\\n"'),
        (datetime.date(2024, 2, 29), '"2024-02-29"'),
        (b"\x00\x01", "<2 bytes>"),
    ],
)
def test_preview_writes_small_values_as_json(value: object, shown: str) -> None:
    assert preview(value) == shown


def test_preview_cuts_a_long_value_to_its_limit() -> None:
    shown = preview(list(range(1000)), limit=20)

    assert shown == "[0, 1, 2, 3, 4, 5..."


def test_preview_of_a_huge_string_is_cut_before_it_is_quoted() -> None:
    shown = preview("x" * 10_000_000)

    assert shown == '"' + "x" * 56 + "..."


def test_preview_of_an_alias_expanded_value_writes_only_its_limit() -> None:
    """Nine levels of nine shared references: 9**9 leaves if written out in full."""
    value: object = "x"
    for _ in range(9):
        value = [value] * 9

    shown = preview(value, limit=40)

    assert shown == '[[[[[[[[["x", "x", "x", "x", "x", "x"...'


def test_preview_of_a_self_referencing_list_ends() -> None:
    looped: list[object] = []
    looped.append(looped)

    assert preview(looped, limit=10) == "[[[[[[[..."


def test_preview_of_a_deeply_nested_list_does_not_recurse() -> None:
    value: object = []
    for _ in range(100_000):
        value = [value]

    assert preview(value, limit=8) == "[[[[[..."


def test_preview_describes_a_huge_number_instead_of_writing_it() -> None:
    assert preview(10**5000) == "<a number of 16610 bits>"
