"""Filters the parser refuses: each error says where and what to fix."""

import pytest

from formation_mcp.operations.filtering import (
    MAX_FILTER_LENGTH,
    MAX_TERMS,
    FilterError,
    parse_filter,
)


def _error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    return info.value


# --------------------------------------------------------------------------- field errors


def test_unknown_field() -> None:
    error = _error("owner=alice")
    assert error.position == 0
    assert error.message == (
        'unknown field "owner" at position 0; supported fields: state, tool, done, create_time'
    )


def test_unknown_field_after_and_reports_its_position() -> None:
    error = _error("done=true AND name=x")
    assert error.position == 14
    assert 'unknown field "name" at position 14' in error.message


def test_metadata_done_is_not_an_alias() -> None:
    error = _error("metadata.done=true")
    assert 'unknown field "metadata.done"' in error.message


def test_field_names_are_case_sensitive() -> None:
    assert 'unknown field "State"' in _error("State=RUNNING").message


def test_missing_field() -> None:
    error = _error("=RUNNING")
    assert error.position == 0
    assert 'expected a field name at position 0, got operator "="' in error.message
    assert "supported fields: state, tool, done, create_time" in error.message


def test_quoted_field_is_rejected() -> None:
    error = _error('"state"=RUNNING')
    assert error.position == 0
    assert 'expected a field name at position 0, got string "state"' in error.message


# --------------------------------------------------------------------------- operator errors


@pytest.mark.parametrize("op", ["<", ">", "<=", ">="])
@pytest.mark.parametrize(
    ("field", "value"), [("state", "RUNNING"), ("tool", "x"), ("done", "true")]
)
def test_ordering_operators_rejected_for_equality_fields(field: str, value: str, op: str) -> None:
    error = _error(f"{field} {op} {value}")
    position = len(field) + 1
    assert error.position == position
    assert error.message == (
        f'operator "{op}" is not allowed for field "{field}" at position {position} (use = or !=)'
    )


def test_disallowed_operator_names_the_alias_as_written() -> None:
    error = _error("metadata.state<RUNNING")
    assert 'for field "metadata.state"' in error.message


def test_missing_operator() -> None:
    error = _error("state RUNNING")
    assert error.position == 6
    assert 'expected an operator after field "state" at position 6, got "RUNNING"' in error.message
    assert "supported operators: =, !=, <, >, <=, >=" in error.message


def test_missing_operator_at_end() -> None:
    error = _error("state")
    assert error.position == 5
    assert "got the end of the filter" in error.message


def test_lone_exclamation_mark_is_not_an_operator() -> None:
    error = _error("done!true")
    assert error.position == 4
    assert 'expected an operator after field "done" at position 4, got "!"' in error.message


def test_double_equals_is_rejected() -> None:
    error = _error("state==RUNNING")
    assert error.position == 6
    assert error.message == 'expected a value after "=" at position 6, got operator "="'


# --------------------------------------------------------------------------- value errors


def test_missing_value_at_end() -> None:
    error = _error("state = ")
    assert error.position == 8
    assert error.message == 'expected a value after "=" at position 8'


def test_missing_value_before_and() -> None:
    error = _error("tool!= AND done=true")
    assert error.position == 7
    assert error.message == 'expected a value after "!=" at position 7, got "AND"'


def test_unknown_state_name_lists_valid_names() -> None:
    error = _error("state=DONE")
    assert error.position == 6
    assert error.message == (
        'invalid value "DONE" for field "state" at position 6; '
        "expected one of: PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, AWAITING_APPROVAL"
    )


def test_state_names_are_case_sensitive() -> None:
    error = _error('state="running"')
    assert error.position == 6
    assert 'invalid value "running" for field "state"' in error.message
    assert "case-sensitive" in error.message


def test_state_wildcard_is_not_a_prefix_match() -> None:
    assert 'invalid value "RUN*"' in _error("state=RUN*").message


@pytest.mark.parametrize("value", ["TRUE", "False", "1", "yes"])
def test_bad_bool_value(value: str) -> None:
    error = _error(f"done={value}")
    assert error.position == 5
    assert error.message == (
        f'invalid value "{value}" for field "done" at position 5; '
        "expected true or false (lowercase, unquoted)"
    )


def test_quoted_bool_value_is_rejected() -> None:
    error = _error('done="true"')
    assert error.position == 5
    assert 'invalid value "true" for field "done"' in error.message


def test_bare_tool_value_with_invalid_character() -> None:
    error = _error("tool=a:b")
    assert error.position == 6
    assert 'invalid character ":" at position 6 in unquoted tool value' in error.message
    assert "double-quote the value" in error.message


def test_naive_timestamp_is_rejected() -> None:
    error = _error("create_time>2026-11-23T10:00:00")
    assert error.position == 12
    assert error.message == (
        'timestamp "2026-11-23T10:00:00" at position 12 has no timezone; '
        'append "Z" or an offset such as "+02:00"'
    )


def test_quoted_naive_timestamp_is_rejected() -> None:
    error = _error('create_time > "2026-11-23T10:00:00.5"')
    assert error.position == 14
    assert "has no timezone" in error.message


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23",
        "2026-11-23 10:00:00Z",
        "2026-11-23T10:00Z",
        "26-11-23T10:00:00Z",
        "2026-11-23T10:00:00+0200",
        "2026-11-23T10:00:00.Z",
        "yesterday",
    ],
)
def test_malformed_timestamp_is_rejected(value: str) -> None:
    error = _error(f'create_time<"{value}"')
    assert error.position == 12
    assert error.message.startswith(
        f'invalid timestamp "{value}" for field "create_time" at position 12; '
        "expected RFC 3339 such as 2026-11-23T10:00:00Z"
    )


def test_impossible_date_is_rejected() -> None:
    error = _error("create_time<2026-02-30T10:00:00Z")
    assert error.position == 12
    assert 'invalid timestamp "2026-02-30T10:00:00Z"' in error.message
    assert "day is out of range" in error.message


def test_out_of_range_offset_is_rejected() -> None:
    error = _error("create_time<2026-11-23T10:00:00+24:00")
    assert error.position == 12
    assert "timezone offset +24:00 is out of range" in error.message


def test_timestamp_that_overflows_when_converted_to_utc_is_rejected() -> None:
    error = _error("create_time<0001-01-01T00:00:00+01:00")
    assert error.position == 12
    assert 'invalid timestamp "0001-01-01T00:00:00+01:00"' in error.message


# --------------------------------------------------------------------------- wildcard errors


def test_wildcard_in_the_middle_of_bare_tool() -> None:
    error = _error("tool=de*ploy")
    assert error.position == 7
    assert error.message.startswith(
        'wildcard "*" at position 7 must be the last character of the tool value'
    )


def test_wildcard_in_the_middle_of_quoted_tool_reports_source_position() -> None:
    error = _error(r'tool="a\"*b"')
    assert error.position == 9
    assert 'wildcard "*" at position 9 must be the last character' in error.message


def test_double_trailing_wildcard_is_misplaced() -> None:
    error = _error("tool=ab**")
    assert error.position == 7
    assert "must be the last character" in error.message


def test_wildcard_with_not_equals_is_rejected() -> None:
    error = _error("tool!=deploy*")
    assert error.position == 12
    assert error.message == (
        'wildcard "*" at position 12 is only allowed with "=" (prefix match), not with "!="'
    )


# --------------------------------------------------------------------------- structure errors


def test_trailing_garbage_after_comparison() -> None:
    error = _error("state=RUNNING foo")
    assert error.position == 14
    assert error.message == (
        'unexpected "foo" at position 14; expected "AND" or the end of the filter'
    )


def test_implicit_and_is_rejected() -> None:
    error = _error("state=RUNNING done=true")
    assert error.position == 14
    assert 'unexpected "done" at position 14; expected "AND"' in error.message


def test_trailing_string_after_comparison() -> None:
    error = _error('done=true "x"')
    assert error.position == 10
    assert 'unexpected string "x" at position 10' in error.message


def test_lowercase_and_is_rejected_with_hint() -> None:
    error = _error("state=RUNNING and done=true")
    assert error.position == 14
    assert error.message == '"and" at position 14 must be written in uppercase: AND'


def test_dangling_and() -> None:
    error = _error("state=RUNNING AND ")
    assert error.position == 18
    assert error.message == 'expected a comparison after "AND" at position 18'


def test_leading_and() -> None:
    error = _error("AND state=RUNNING")
    assert error.position == 0
    assert 'expected a field name at position 0, got "AND"' in error.message


def test_double_and() -> None:
    error = _error("done=true AND AND done=false")
    assert error.position == 14
    assert 'expected a field name at position 14, got "AND"' in error.message


def test_unexpected_character() -> None:
    error = _error("tool=~x")
    assert error.position == 5
    assert error.message == 'unexpected character "~" at position 5'


def test_single_quotes_get_a_hint() -> None:
    error = _error("tool='x'")
    assert error.position == 5
    assert "use double quotes for strings" in error.message


def test_unterminated_quote() -> None:
    error = _error('state=RUNNING AND tool="deploy')
    assert error.position == 23
    assert error.message.startswith("unterminated quoted string starting at position 23")


def test_escaped_closing_quote_leaves_string_unterminated() -> None:
    error = _error('tool="abc\\"')
    assert error.position == 5
    assert "unterminated quoted string" in error.message


def test_backslash_at_end_leaves_string_unterminated() -> None:
    error = _error('tool="abc\\')
    assert error.position == 5
    assert "unterminated quoted string" in error.message


def test_invalid_escape() -> None:
    error = _error(r'tool="a\nb"')
    assert error.position == 7
    assert error.message == (
        'invalid escape "\\n" at position 7 in quoted string; only \\" and \\\\ are supported'
    )


# --------------------------------------------------------------------------- unsupported syntax


def _assert_lists_supported_syntax(message: str) -> None:
    assert "supported: comparisons FIELD OP VALUE joined by AND" in message
    assert "fields state, tool, done, create_time" in message
    assert "operators =, !=, <, >, <=, >=" in message


def test_or_is_not_supported() -> None:
    error = _error("state=RUNNING OR state=FAILED")
    assert error.position == 14
    assert error.message.startswith(
        '"OR" at position 14 is not supported; combine comparisons with AND'
    )
    _assert_lists_supported_syntax(error.message)


def test_not_is_not_supported() -> None:
    error = _error("NOT state=RUNNING")
    assert error.position == 0
    assert error.message.startswith('"NOT" at position 0 is not supported; use !=')
    _assert_lists_supported_syntax(error.message)


def test_not_after_and_is_not_supported() -> None:
    error = _error("done=true AND NOT state=RUNNING")
    assert error.position == 14
    assert '"NOT" at position 14 is not supported' in error.message


def test_minus_negation_is_not_supported() -> None:
    error = _error("done=true AND -state=RUNNING")
    assert error.position == 14
    assert error.message.startswith('negation "-" at position 14 is not supported')
    _assert_lists_supported_syntax(error.message)


def test_opening_parenthesis_is_not_supported() -> None:
    error = _error("(state=RUNNING)")
    assert error.position == 0
    assert error.message.startswith('parenthesis "(" at position 0 is not supported')
    _assert_lists_supported_syntax(error.message)


def test_parenthesis_after_and_is_not_supported() -> None:
    error = _error("done=true AND (state=RUNNING)")
    assert error.position == 14
    assert 'parenthesis "(" at position 14 is not supported' in error.message


def test_closing_parenthesis_is_not_supported() -> None:
    error = _error("state=RUNNING)")
    assert error.position == 13
    assert 'parenthesis ")" at position 13 is not supported' in error.message


def test_parenthesis_as_value_is_not_supported() -> None:
    error = _error("state=(RUNNING)")
    assert error.position == 6
    assert 'parenthesis "(" at position 6 is not supported' in error.message


def test_has_operator_attached_is_not_supported() -> None:
    error = _error("tool:deploy")
    assert error.position == 4
    assert error.message.startswith('has operator ":" at position 4 is not supported')
    _assert_lists_supported_syntax(error.message)


def test_has_operator_spaced_is_not_supported() -> None:
    error = _error("state : RUNNING")
    assert error.position == 6
    assert 'has operator ":" at position 6 is not supported' in error.message


def test_function_call_as_term_is_not_supported() -> None:
    error = _error("exists(tool)")
    assert error.position == 0
    assert error.message.startswith('function call "exists(...)" at position 0 is not supported')
    _assert_lists_supported_syntax(error.message)


def test_function_call_as_value_is_not_supported() -> None:
    error = _error('create_time > timestamp("2026-11-23T10:00:00Z")')
    assert error.position == 14
    assert 'function call "timestamp(...)" at position 14 is not supported' in error.message


def test_or_as_value_is_not_supported() -> None:
    error = _error("state = OR")
    assert error.position == 8
    assert '"OR" at position 8 is not supported' in error.message


# --------------------------------------------------------------------------- limits


def test_filter_too_long() -> None:
    error = _error("tool=" + "a" * MAX_FILTER_LENGTH)
    assert error.position == MAX_FILTER_LENGTH
    assert error.message.startswith(
        f"filter is too long: {MAX_FILTER_LENGTH + 5} characters, "
        f"the maximum is {MAX_FILTER_LENGTH}"
    )


def test_too_long_filter_is_rejected_before_parsing() -> None:
    error = _error("(" * (MAX_FILTER_LENGTH + 1))
    assert error.message.startswith("filter is too long")


def test_too_many_terms() -> None:
    text = " AND ".join(["done=true"] * (MAX_TERMS + 1))
    error = _error(text)
    position = MAX_TERMS * len("done=true AND ")
    assert error.position == position
    assert error.message == (
        f"too many comparisons: at most {MAX_TERMS} are allowed "
        f"(comparison {MAX_TERMS + 1} starts at position {position})"
    )
