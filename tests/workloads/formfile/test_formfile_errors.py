"""FormfileError as callers see it."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    text_of,
)

from formation_mcp.workloads.formfile import (
    FormfileError,
    FormfileProblem,
    parse_formfile_document,
    parse_formfile_text,
)


def test_formfile_error_is_a_value_error_listing_every_problem() -> None:
    with pytest.raises(ValueError, match="line 2: VCPU 0 is out of range") as caught:
        parse_formfile_text(text_of("VCPU 0", "DISK 1"))

    assert str(caught.value) == (
        "line 2: VCPU 0 is out of range; use 1 to 128; "
        "line 3: DISK 1 is out of range; use 5 to 65535 (GB)"
    )


def test_problem_where_is_a_line_or_a_path() -> None:
    assert FormfileProblem("bad", line=7).where == "line 7"
    assert FormfileProblem("bad", path="resources.vcpus").where == "resources.vcpus"
    assert FormfileProblem("bad").where == ""


def test_field_violations_for_the_text_form_keep_the_line_in_the_description() -> None:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_text(text_of("MEMORY 256"))

    assert caught.value.field_violations() == [
        ("formfile", "line 2: MEMORY 256 is out of range; use 512 to 256000 (MB)")
    ]


def test_field_violations_for_the_document_form_put_the_path_in_the_field() -> None:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_document({"resources": {"vcpus": 0}})

    assert caught.value.field_violations("arguments.formfile") == [
        ("arguments.formfile.name", "is required"),
        ("arguments.formfile.resources.vcpus", "0 is out of range; use 1 to 128"),
    ]


def test_field_violations_for_a_whole_formfile_problem_use_the_field_alone() -> None:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_text("RUN x\n")

    assert caught.value.field_violations() == [
        ("formfile", "NAME is required; add a line: NAME <workload name>")
    ]
