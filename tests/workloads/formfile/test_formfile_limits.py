"""The Formfile's limits."""

from __future__ import annotations

import json

import pytest
from tests.support.formfiles import (
    document_problems,
    text_of,
    text_problems,
    with_name,
)

from formation_mcp.workloads.formfile import (
    MAX_ITEMS,
    MAX_LINES,
    MAX_PROBLEMS,
    MAX_STEPS,
    MAX_STRING_BYTES,
    MAX_TEXT_BYTES,
    Formfile,
    FormfileError,
    RunStep,
    parse_formfile,
    parse_formfile_text,
)


def test_limit_text_size() -> None:
    text = text_of("RUN " + "x" * 4000) * 17

    with pytest.raises(FormfileError) as caught:
        parse_formfile(text)

    size = len(text.encode())
    assert size > MAX_TEXT_BYTES
    assert [str(p) for p in caught.value.problems] == [
        f"is {size} bytes; a Formfile may have at most 65536 bytes"
    ]


def test_limit_json_text_size() -> None:
    text = json.dumps(with_name(description="x" * 70_000))

    with pytest.raises(FormfileError, match="a Formfile may have at most 65536 bytes"):
        parse_formfile(text)


def test_limit_line_count() -> None:
    text = "NAME web\n" + "#\n" * MAX_LINES

    with pytest.raises(FormfileError) as caught:
        parse_formfile_text(text)

    assert [str(p) for p in caught.value.problems] == [
        "has 1001 lines; a Formfile may have at most 1000 lines"
    ]


def test_limit_line_count_allows_exactly_the_maximum() -> None:
    text = "NAME web\n" + "#\n" * (MAX_LINES - 1)

    assert parse_formfile_text(text) == Formfile(name="web")


def test_limit_string_length_in_the_text_form() -> None:
    assert text_problems(text_of("RUN " + "x" * (MAX_STRING_BYTES + 1))) == [
        "line 2: RUN is too long (4097 bytes); use at most 4096 bytes"
    ]


def test_limit_string_length_counts_bytes() -> None:
    assert text_problems(text_of("DESCRIPTION " + "é" * 2049)) == [
        "line 2: DESCRIPTION is too long (4098 bytes); use at most 4096 bytes"
    ]


def test_limit_string_length_in_the_document_form() -> None:
    assert document_problems(with_name(run=["x" * (MAX_STRING_BYTES + 1)])) == [
        "run[0]: is too long (4097 bytes); use at most 4096 bytes"
    ]


def test_limit_string_length_allows_exactly_the_maximum() -> None:
    command = "x" * MAX_STRING_BYTES

    assert parse_formfile_text(text_of("RUN " + command)).steps == (RunStep(command),)


def test_limit_step_count() -> None:
    text = text_of(*(f"RUN step {i}" for i in range(MAX_STEPS + 1)))

    assert text_problems(text) == [
        "has 257 build steps (RUN, COPY, INSTALL, ENV, USER); use at most 256"
    ]


def test_limit_step_count_allows_exactly_the_maximum() -> None:
    text = text_of(*(f"RUN step {i}" for i in range(MAX_STEPS)))

    assert len(parse_formfile_text(text).steps) == MAX_STEPS


def test_limit_step_count_in_the_document_form() -> None:
    document = with_name(
        run=[f"r{i}" for i in range(200)], install=["a"], copy=[{"from": "a", "to": "b"}] * 56
    )

    assert document_problems(document) == [
        "has 257 build steps (RUN, COPY, INSTALL, ENV, USER); use at most 256"
    ]


def test_limit_list_entries_in_the_document_form() -> None:
    assert document_problems(with_name(include=["a"] * (MAX_ITEMS + 1))) == [
        "include: has 257 entries; use at most 256"
    ]


def test_limit_model_must_fit_when_written_out() -> None:
    document = with_name(run=["x" * 4000] * 20)

    problems = document_problems(document)

    assert len(problems) == 1
    assert problems[0].startswith("is ")
    assert problems[0].endswith(" bytes when written out; keep it within 65536 bytes")


def test_limit_problem_count() -> None:
    text = "NAME web\n" + "VCPU 0\n" * 150

    with pytest.raises(FormfileError) as caught:
        parse_formfile_text(text)

    assert len(caught.value.problems) == MAX_PROBLEMS
