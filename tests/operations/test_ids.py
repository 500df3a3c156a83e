"""Operation ids (time-ordered, 32 lowercase hex) and `operations/{id}` names."""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from formation_mcp.errors import InvalidArgument
from formation_mcp.operations import ids
from formation_mcp.operations.ids import (
    NAME_PREFIX,
    _IdGenerator,
    new_operation_id,
    operation_name,
    parse_operation_name,
)

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
SAMPLE_ID = "0190f5a0c1e27b3c8d4e5f6a7b8c9d0e"
FROZEN_NS = 1_700_000_000_123_456_789


def _millis(operation_id: str) -> int:
    return int(operation_id, 16) >> 80


def _counter(operation_id: str) -> int:
    return (int(operation_id, 16) >> 68) & 0xFFF


def _strictly_increasing(values: list[str]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def _fake_clock(monkeypatch: pytest.MonkeyPatch, readings: Iterator[int]) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: next(readings)))


# --------------------------------------------------------------------------- new ids


def test_new_id_is_32_lowercase_hex() -> None:
    assert ID_PATTERN.fullmatch(new_operation_id())


def test_new_ids_are_strictly_increasing_across_many_quick_calls() -> None:
    generated = [new_operation_id() for _ in range(20_000)]
    assert _strictly_increasing(generated)


def test_new_ids_are_unique() -> None:
    generated = [new_operation_id() for _ in range(20_000)]
    assert len(set(generated)) == len(generated)


def test_sorting_ids_restores_creation_order() -> None:
    generated = [new_operation_id() for _ in range(1_000)]
    shuffled = random.Random(7).sample(generated, len(generated))
    assert sorted(shuffled) == generated


def test_new_id_leads_with_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    operation_id = _IdGenerator().new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _millis(operation_id) <= after


def test_ids_within_one_millisecond_count_up(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_clock(monkeypatch, itertools.repeat(FROZEN_NS))
    generator = _IdGenerator()
    generated = [generator.new_id() for _ in range(3)]
    assert [(_millis(i), _counter(i)) for i in generated] == [
        (FROZEN_NS // 1_000_000, 0),
        (FROZEN_NS // 1_000_000, 1),
        (FROZEN_NS // 1_000_000, 2),
    ]


def test_counter_overflow_borrows_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_clock(monkeypatch, itertools.repeat(FROZEN_NS))
    generator = _IdGenerator()
    generated = [generator.new_id() for _ in range(0x1000 + 2)]
    assert _strictly_increasing(generated)
    assert (_millis(generated[-2]), _counter(generated[-2])) == (FROZEN_NS // 1_000_000 + 1, 0)


def test_ids_keep_increasing_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = [FROZEN_NS, FROZEN_NS - 5_000_000_000, FROZEN_NS - 10_000_000_000, FROZEN_NS]
    _fake_clock(monkeypatch, iter(readings))
    generator = _IdGenerator()
    generated = [generator.new_id() for _ in readings]
    assert _strictly_increasing(generated)


def test_ids_follow_the_clock_when_it_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_clock(monkeypatch, iter([FROZEN_NS, FROZEN_NS + 3_000_000]))
    generator = _IdGenerator()
    first, second = generator.new_id(), generator.new_id()
    assert _millis(second) - _millis(first) == 3
    assert _counter(second) == 0


# --------------------------------------------------------------------------- names


def test_operation_name_prefixes_the_id() -> None:
    assert operation_name(SAMPLE_ID) == f"operations/{SAMPLE_ID}"
    assert NAME_PREFIX == "operations/"


def test_parse_operation_name_returns_the_id() -> None:
    assert parse_operation_name(f"operations/{SAMPLE_ID}") == SAMPLE_ID


def test_parse_operation_name_round_trips_new_ids() -> None:
    operation_id = new_operation_id()
    assert parse_operation_name(operation_name(operation_id)) == operation_id


@pytest.mark.parametrize("field", ["name", "operation"])
def test_empty_name_is_invalid_argument_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_operation_name("", field)
    assert [v.field for v in info.value.field_violations] == [field]
    assert "required" in info.value.message


def test_parse_operation_name_defaults_to_field_name() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_operation_name("")
    assert [v.field for v in info.value.field_violations] == ["name"]


@pytest.mark.parametrize(
    "name",
    [
        "operations/",
        SAMPLE_ID,
        f"ops/{SAMPLE_ID}",
        f"Operations/{SAMPLE_ID}",
        f"operations/{SAMPLE_ID.upper()}",
        f"operations/{SAMPLE_ID[:-1]}",
        f"operations/{SAMPLE_ID}0",
        f"operations/{'g' * 32}",
        f"operations/operations/{SAMPLE_ID}",
        f" operations/{SAMPLE_ID}",
        f"operations/{SAMPLE_ID} ",
        f"operations/{SAMPLE_ID}/",
        f"operations/{SAMPLE_ID[:8]}-{SAMPLE_ID[8:12]}-{SAMPLE_ID[12:16]}",
        "operations/*",
    ],
)
@pytest.mark.parametrize("field", ["name", "operation"])
def test_malformed_name_is_invalid_argument_naming_the_field(name: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_operation_name(name, field)
    assert [v.field for v in info.value.field_violations] == [field]
    assert info.value.message.startswith(f"{field}: ")


def test_malformed_name_message_quotes_the_name() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_operation_name("operations/nope")
    assert "'operations/nope'" in info.value.message


def test_name_with_trailing_newline_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        parse_operation_name(f"operations/{SAMPLE_ID}\n")
