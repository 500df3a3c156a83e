"""Operation filters the parser accepts, and what each means."""

from datetime import UTC, datetime

import pytest

from formation_mcp.operations.filtering import (
    MAX_FILTER_LENGTH,
    MAX_TERMS,
    Comparison,
    FilterError,
    parse_filter,
)

# --------------------------------------------------------------------------- valid filters


def test_empty_filter_means_no_filter() -> None:
    assert parse_filter("") == ()


def test_whitespace_only_filter_means_no_filter() -> None:
    assert parse_filter("  \t\n ") == ()


def test_state_equals_bare() -> None:
    assert parse_filter("state=RUNNING") == (Comparison("state", "=", "RUNNING"),)


def test_state_not_equals_quoted() -> None:
    assert parse_filter('state != "FAILED"') == (Comparison("state", "!=", "FAILED"),)


@pytest.mark.parametrize("name", ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
def test_every_state_name_is_accepted(name: str) -> None:
    assert parse_filter(f"state={name}") == (Comparison("state", "=", name),)


def test_tool_equals_bare_with_allowed_characters() -> None:
    assert parse_filter("tool=deploy.v2_beta-1") == (Comparison("tool", "=", "deploy.v2_beta-1"),)


def test_tool_not_equals_quoted() -> None:
    assert parse_filter('tool!="my tool"') == (Comparison("tool", "!=", "my tool"),)


def test_tool_quoted_value_decodes_escapes() -> None:
    assert parse_filter(r'tool="a\"b\\c"') == (Comparison("tool", "=", 'a"b\\c'),)


def test_tool_quoted_value_may_contain_characters_not_allowed_bare() -> None:
    assert parse_filter('tool="a:b+c (d)"') == (Comparison("tool", "=", "a:b+c (d)"),)


def test_tool_empty_quoted_value() -> None:
    assert parse_filter('tool=""') == (Comparison("tool", "=", ""),)


def test_tool_bare_trailing_wildcard_is_prefix_match() -> None:
    assert parse_filter("tool=deploy_*") == (Comparison("tool", "=", "deploy_", prefix=True),)


def test_tool_quoted_trailing_wildcard_is_prefix_match() -> None:
    assert parse_filter('tool = "deploy *"') == (Comparison("tool", "=", "deploy ", prefix=True),)


def test_tool_lone_wildcard_is_empty_prefix() -> None:
    assert parse_filter("tool=*") == (Comparison("tool", "=", "", prefix=True),)


def test_done_true() -> None:
    assert parse_filter("done=true") == (Comparison("done", "=", True),)


def test_done_not_equals_false() -> None:
    assert parse_filter("done != false") == (Comparison("done", "!=", False),)


@pytest.mark.parametrize("op", ["=", "!=", "<", ">", "<=", ">="])
def test_create_time_accepts_every_operator(op: str) -> None:
    expected = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert parse_filter(f"create_time{op}2026-11-23T10:00:00Z") == (
        Comparison("create_time", op, expected),
    )


def test_create_time_quoted() -> None:
    expected = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert parse_filter('create_time > "2026-11-23T10:00:00Z"') == (
        Comparison("create_time", ">", expected),
    )


def test_create_time_offset_is_converted_to_utc() -> None:
    (comparison,) = parse_filter("create_time>=2026-11-23T10:00:00.123456+02:00")
    assert comparison.value == datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    assert isinstance(comparison.value, datetime)
    assert comparison.value.utcoffset() is not None
    assert comparison.value.tzinfo is UTC


def test_create_time_negative_offset_crosses_midnight() -> None:
    (comparison,) = parse_filter("create_time<2026-11-23T22:30:00-05:00")
    assert comparison.value == datetime(2026, 11, 24, 3, 30, 0, tzinfo=UTC)


def test_create_time_short_fraction_is_padded() -> None:
    (comparison,) = parse_filter("create_time<2026-11-23T10:00:00.5Z")
    assert comparison.value == datetime(2026, 11, 23, 10, 0, 0, 500000, tzinfo=UTC)


def test_create_time_nanosecond_fraction_is_truncated_to_microseconds() -> None:
    (comparison,) = parse_filter("create_time<2026-11-23T10:00:00.123456789Z")
    assert comparison.value == datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)


def test_create_time_lowercase_t_and_z_are_accepted() -> None:
    (comparison,) = parse_filter("create_time<2026-11-23t10:00:00z")
    assert comparison.value == datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("alias", "field"),
    [
        ("metadata.state", "state"),
        ("metadata.tool", "tool"),
        ("metadata.create_time", "create_time"),
    ],
)
def test_metadata_aliases_normalize_to_bare_field(alias: str, field: str) -> None:
    value = {"state": "RUNNING", "tool": "x", "create_time": "2026-11-23T10:00:00Z"}[field]
    (comparison,) = parse_filter(f"{alias}={value}")
    assert comparison.field == field


@pytest.mark.parametrize(
    "text",
    ["state=RUNNING", "state = RUNNING", "state= RUNNING", "state =RUNNING", "  state=RUNNING  "],
)
def test_spacing_around_operator_is_optional(text: str) -> None:
    assert parse_filter(text) == (Comparison("state", "=", "RUNNING"),)


def test_two_character_operators_without_spaces() -> None:
    assert parse_filter("create_time<=2026-11-23T10:00:00Z")[0].op == "<="


def test_and_chain_keeps_order() -> None:
    text = 'state=RUNNING AND tool="deploy*" AND done=false AND create_time>2026-01-01T00:00:00Z'
    assert parse_filter(text) == (
        Comparison("state", "=", "RUNNING"),
        Comparison("tool", "=", "deploy", prefix=True),
        Comparison("done", "=", False),
        Comparison("create_time", ">", datetime(2026, 1, 1, tzinfo=UTC)),
    )


def test_and_chain_with_newlines_and_tabs() -> None:
    assert len(parse_filter("state=RUNNING\nAND\tdone=true")) == 2


def test_same_field_may_repeat() -> None:
    text = "create_time>=2026-01-01T00:00:00Z AND create_time<2026-02-01T00:00:00Z"
    assert [c.op for c in parse_filter(text)] == [">=", "<"]


def test_exactly_max_terms_is_accepted() -> None:
    assert len(parse_filter(" AND ".join(["done=true"] * MAX_TERMS))) == MAX_TERMS


def test_filter_of_exactly_max_length_is_accepted() -> None:
    text = "tool=" + "a" * (MAX_FILTER_LENGTH - len("tool="))
    assert len(text) == MAX_FILTER_LENGTH
    assert parse_filter(text)[0].value == "a" * (MAX_FILTER_LENGTH - 5)


def test_comparison_is_frozen() -> None:
    comparison = Comparison("done", "=", True)
    with pytest.raises(AttributeError):
        comparison.op = "!="  # type: ignore[misc]  # the point: a frozen field refuses it


def test_filter_error_is_a_value_error_with_message_and_position() -> None:
    error = FilterError("boom", 3)
    assert isinstance(error, ValueError)
    assert (error.message, error.position, str(error)) == ("boom", 3, "boom")


def test_filter_error_position_defaults_to_none() -> None:
    assert FilterError("boom").position is None
