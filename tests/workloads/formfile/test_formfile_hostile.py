"""Hostile Formfile documents: bounded work (test_documents.py has the loader's own rules)."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    document_problems,
    text_of,
    text_problems,
    with_name,
)
from tests.support.hostile_formfiles import billion_laughs, nested_alias_bomb

from formation_mcp.workloads.formfile import (
    FormfileError,
    parse_formfile,
)


def test_a_nested_alias_bomb_is_refused_at_its_line() -> None:
    pytest.importorskip("yaml")
    with pytest.raises(FormfileError) as caught:
        parse_formfile(nested_alias_bomb())

    [problem] = caught.value.problems
    assert problem.line == 6
    assert problem.message.startswith("the YAML has more than 10000 values")


def test_billion_laughs_is_refused_at_its_line() -> None:
    pytest.importorskip("yaml")
    with pytest.raises(FormfileError) as caught:
        parse_formfile(billion_laughs(levels=7))

    assert [problem.line for problem in caught.value.problems] == [6]


def test_a_deeply_nested_value_is_refused_naming_its_field() -> None:
    text = '{"name": "web", "resources": {"vcpus": ' + "[" * 500 + "]" * 500 + "}}"

    with pytest.raises(FormfileError) as caught:
        parse_formfile(text)

    assert [str(p) for p in caught.value.problems] == [
        "resources: the JSON is nested too deeply (more than 32 levels); flatten it"
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "web", "resources": {"vcpus": ' + "9" * 5000 + "}}",
        "name: web\nresources:\n  vcpus: " + "9" * 5000 + "\n",
    ],
    ids=["json", "yaml"],
)
def test_a_number_too_long_to_read_is_a_problem(text: str) -> None:
    pytest.importorskip("yaml")
    with pytest.raises(FormfileError, match="has a number with more than 4300 digits"):
        parse_formfile(text)


def test_a_text_entrypoint_with_a_number_too_long_to_read_is_a_problem() -> None:
    assert text_problems(text_of("ENTRYPOINT [" + "9" * 5000 + "]")) == [
        "line 2: ENTRYPOINT is not a valid JSON array (a number in it is too long)"
    ]


def test_a_huge_value_in_a_message_is_cut_short() -> None:
    problems = document_problems(with_name(resources={"vcpus": "9x" * 30_000}))

    shown = '"' + "9x" * 28 + "..."
    assert problems == [f"resources.vcpus: {shown} is not a whole number; use 1 to 128"]
