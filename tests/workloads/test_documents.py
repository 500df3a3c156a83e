"""Bounded loading of Formfile documents: YAML aliases, depth and size are checked before
anything is built, JSON's depth and size after decoding; what cannot be read is a problem
with its line, never a crash."""

from __future__ import annotations

import pytest
from tests.support.hostile_formfiles import billion_laughs, nested_alias_bomb

from formation_mcp.workloads.documents import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_PROBLEMS,
    MAX_VALUES,
    DocumentError,
    DocumentProblem,
    load_json,
    load_yaml,
)

pytest.importorskip("yaml")


def problems(caught: pytest.ExceptionInfo[DocumentError]) -> list[DocumentProblem]:
    return list(caught.value.problems)


def test_a_short_nested_alias_bomb_is_refused_at_the_line_that_passes_the_limit() -> None:
    text = nested_alias_bomb()
    assert len(text) < 400

    with pytest.raises(DocumentError) as caught:
        load_yaml(text)

    [problem] = problems(caught)
    assert problem.line == 6  # e: 9**5 values, the first anchor past the limit
    assert problem.message == (
        f"the YAML has more than {MAX_VALUES} values (an alias counts as every value it"
        " repeats); a Formfile needs far fewer"
    )


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        load_yaml(billion_laughs())

    [problem] = problems(caught)
    assert problem.line == 6  # lol4: 10**4 values
    assert "more than 10000 values" in problem.message


def test_too_many_aliases_are_refused() -> None:
    aliases = ", ".join(["*a"] * (MAX_ALIASES + 1))
    text = f"name: x\nx-a: &a 1\nmetadata: [{aliases}]\n"

    with pytest.raises(DocumentError) as caught:
        load_yaml(text)

    assert [p.message for p in problems(caught)] == [
        f"the YAML has more than {MAX_ALIASES} aliases; write the values out"
    ]


def test_an_alias_inside_the_collection_it_names_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        load_yaml("name: x\nsteps: &s\n  - run: make\n  - *s\n")

    [problem] = problems(caught)
    assert problem.line == 4
    assert problem.message.startswith("the alias *s is inside the collection it names")


def test_aliases_within_the_limits_load_as_shared_values() -> None:
    text = "name: x\nx-env: &env {MODE: prod}\nenv: *env\nmetadata: *env\n"

    assert load_yaml(text) == {
        "name": "x",
        "x-env": {"MODE": "prod"},
        "env": {"MODE": "prod"},
        "metadata": {"MODE": "prod"},
    }


def test_deeply_nested_yaml_is_refused_with_its_line() -> None:
    text = "name: x\nresources:\n  vcpus: " + "[" * 900 + "]" * 900 + "\n"

    with pytest.raises(DocumentError) as caught:
        load_yaml(text)

    assert [(p.line, p.message) for p in problems(caught)] == [
        (3, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels); flatten it")
    ]


def test_depth_counts_what_an_alias_repeats() -> None:
    """Each anchor one level deeper than the one it repeats: shallow as written, deep as
    built."""
    lines = ["name: x", "x-0: &d0 [x]"]
    lines += [f"x-{n}: &d{n} [*d{n - 1}]" for n in range(1, MAX_DEPTH + 1)]

    with pytest.raises(DocumentError) as caught:
        load_yaml("\n".join(lines) + "\n")

    [problem] = problems(caught)
    assert problem.line == MAX_DEPTH + 1  # x-31: 32 levels inside the top-level mapping
    assert "nested too deeply" in problem.message


def test_deeply_nested_json_is_refused_naming_its_key() -> None:
    text = '{"name": "x", "resources": {"vcpus": ' + "[" * 500 + "]" * 500 + "}}"

    with pytest.raises(DocumentError) as caught:
        load_json(text)

    assert [(p.path, p.message) for p in problems(caught)] == [
        ("resources", f"the JSON is nested too deeply (more than {MAX_DEPTH} levels); flatten it")
    ]


def test_json_with_too_many_values_is_refused() -> None:
    text = '{"name": "x", "metadata": [' + ",".join(["1"] * MAX_VALUES) + "]}"

    with pytest.raises(DocumentError) as caught:
        load_json(text)

    [problem] = problems(caught)
    assert problem.path == "metadata"
    assert problem.message.startswith(f"the JSON has more than {MAX_VALUES} values")


@pytest.mark.parametrize(
    ("load", "text", "form"),
    [
        (load_json, '{"name": "x", "resources": {"vcpus": ' + "1" * 5000 + "}}", "JSON"),
        (load_yaml, "name: x\nresources:\n  vcpus: " + "1" * 5000 + "\n", "YAML"),
    ],
)
def test_a_number_too_long_to_read_is_a_problem(load: object, text: str, form: str) -> None:
    assert callable(load)
    with pytest.raises(DocumentError) as caught:
        load(text)

    assert [p.message for p in problems(caught)] == [
        f"the {form} has a number with more than 4300 digits; shorten it"
    ]


def test_a_date_that_does_not_exist_is_a_problem() -> None:
    with pytest.raises(DocumentError) as caught:
        load_yaml("name: x\nmetadata:\n  built: 2025-02-30\n")

    assert [p.message for p in problems(caught)] == [
        "the YAML has a value that cannot be read: day is out of range for month"
    ]


def test_a_long_yaml_error_detail_is_cut() -> None:
    with pytest.raises(DocumentError) as caught:
        load_yaml("name: x\n" + "x" * 70_000 + "\n  - bad\n")

    [problem] = problems(caught)
    assert problem.message.startswith("the YAML is not valid: ")
    assert len(problem.message) < 300


def test_duplicate_json_keys_are_reported_up_to_the_problem_limit() -> None:
    text = "{" + ",".join(f'"k{n}": 1, "k{n}": 2' for n in range(MAX_PROBLEMS + 50)) + "}"

    with pytest.raises(DocumentError) as caught:
        load_json(text)

    assert len(problems(caught)) == MAX_PROBLEMS
    assert problems(caught)[0].message == 'key "k0" appears more than once; give it once'
