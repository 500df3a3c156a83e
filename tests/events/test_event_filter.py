"""The events filter: what it accepts, what it refuses (naming the field), and that its SQL
and its predicate agree."""

from __future__ import annotations

import pytest

from formation_mcp.errors import InvalidArgument
from formation_mcp.events.filtering import parse_filter
from formation_mcp.events.model import EventRecord, Severity, next_event_id


def an_event(**changes: object) -> EventRecord:
    values: dict[str, object] = {
        "id": "0" * 16,
        "type": "instance.failed",
        "resource": "instances/abc",
        "owner": "accounts/a",
        "time": 1_700_000_000_000_000,
        "severity": Severity.ERROR,
        "message": "m",
        "data": {},
        "node": "n",
        **changes,
    }
    return EventRecord(**values)  # type: ignore[arg-type]


def test_an_empty_filter_matches_everything() -> None:
    assert parse_filter("   ").matches(an_event())


def test_a_type_prefix_matches_types_that_start_with_it() -> None:
    parsed = parse_filter('type = "instance.*"')
    assert parsed.matches(an_event(type="instance.running"))
    assert not parsed.matches(an_event(type="pack.built"))


def test_terms_joined_by_and_must_all_hold() -> None:
    parsed = parse_filter(
        'resource = "instances/abc" AND severity != INFO AND time >= "2023-11-14T00:00:00Z"'
    )
    assert parsed.matches(an_event())
    assert not parsed.matches(an_event(severity=Severity.INFO))
    assert not parsed.matches(an_event(resource="instances/other"))
    assert not parsed.matches(an_event(time=1_600_000_000_000_000))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("colour = red", "unknown field 'colour'"),
        ("severity = LOUD", "severity 'LOUD' is not one of INFO, WARNING, ERROR"),
        ('type != "instance.*"', 'a "*" may only end a type compared with ='),
        ('resource = "instances/*"', 'a "*" may only end a type'),
        ("type > x", "operator > is not allowed for type"),
        ("time >= yesterday", "is not an RFC 3339 timestamp"),
        ("time >= 2026-12-04T10:00:00", "is not an RFC 3339 timestamp with a zone"),
        ("type = a OR type = b", "expected AND at position"),
        ("= a", "expected FIELD OP VALUE at position 0"),
    ],
)
def test_a_bad_filter_is_invalid_argument_naming_the_field(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text)
    assert info.value.field_violations[0].field == "filter"
    assert says in info.value.message


def test_ids_keep_increasing_when_the_clock_stands_still_or_goes_back() -> None:
    first = next_event_id(None, 1_000)
    same = next_event_id(first, 1_000)
    back = next_event_id(same, 500)
    later = next_event_id(back, 2_000)
    assert first < same < back < later
    assert all(len(event) == 16 for event in (first, same, back, later))
