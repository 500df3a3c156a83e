"""Choosing the form of a Formfile."""

from __future__ import annotations

import json
import sys

import pytest
from tests.support.formfiles import (
    COMPLETE_DOCUMENT,
    COMPLETE_MODEL,
    COMPLETE_TEXT,
    LEGACY_MODEL,
)

from formation_mcp.workloads.formfile import (
    Formfile,
    FormfileError,
    Network,
    Resources,
    detect_formfile_form,
    parse_formfile,
)


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ('{"name": "web"}', "json"),
        ('\ufeff \n  {"name": "web"}', "json"),
        ('[{"name": "web"}]', "json"),
        ("name: web\n", "yaml"),
        ("# comment\n\n---\nfrom: ubuntu-22.04\nname: web\n", "yaml"),
        ("run:\n  - make\nname: web\n", "yaml"),
        ("NAME web\n", "text"),
        ("# name: in a comment\nNAME web\n", "text"),
        ("name:web\n", "text"),
        ("nmae: web\n", "text"),
        ("", "text"),
    ],
)
def test_detect_formfile_form(text: str, form: str) -> None:
    assert detect_formfile_form(text) == form


def test_parse_formfile_reads_the_text_form() -> None:
    assert parse_formfile(COMPLETE_TEXT) == COMPLETE_MODEL


@pytest.mark.parametrize("text", ["\ufeffNAME web\n", '\ufeff{"name": "web"}'])
def test_parse_formfile_ignores_a_byte_order_mark(text: str) -> None:
    assert parse_formfile(text) == Formfile(name="web")


def test_parse_formfile_reads_json() -> None:
    assert parse_formfile(json.dumps(COMPLETE_DOCUMENT, indent=2)) == COMPLETE_MODEL


def test_parse_formfile_reports_bad_json_with_its_line() -> None:
    with pytest.raises(FormfileError) as caught:
        parse_formfile('{\n  "name": "web",\n  "run": [,]\n}')

    assert [str(p) for p in caught.value.problems] == [
        "line 3: the JSON is not valid: Expecting value (column 11)"
    ]


def test_parse_formfile_refuses_duplicate_json_keys() -> None:
    with pytest.raises(FormfileError) as caught:
        parse_formfile('{"name": "a", "name": "b"}')

    assert [str(p) for p in caught.value.problems] == [
        'key "name" appears more than once; give it once'
    ]


def test_parse_formfile_refuses_a_json_array() -> None:
    with pytest.raises(FormfileError, match="must be an object of keys and values, not a list"):
        parse_formfile('[{"name": "web"}]')


def test_parse_formfile_refuses_deeply_nested_json() -> None:
    with pytest.raises(FormfileError, match="nested too deeply"):
        parse_formfile('{"a":' + "[" * 5000 + "]" * 5000 + "}")


def test_parse_formfile_reads_yaml() -> None:
    pytest.importorskip("yaml")
    text = (
        "# web service\n"
        "name: api\n"
        "users:\n"
        "  - username: app\n"
        "install: [curl, git]\n"
        "copy:\n"
        "  - {from: src, to: /app/src}\n"
        "env:\n"
        "  MODE: prod\n"
        "  HOST: 0.0.0.0\n"
        "run:\n"
        "  - make\n"
        "  - make install\n"
    )

    assert parse_formfile(text) == LEGACY_MODEL


def test_parse_formfile_yaml_booleans_and_numbers() -> None:
    pytest.importorskip("yaml")
    text = "name: web\nnetwork:\n  join_formnet: no\nresources:\n  vcpus: 2\nenv:\n  PORT: 8080\n"

    formfile = parse_formfile(text)

    assert formfile.network == Network(join_formnet=False)
    assert formfile.resources == Resources(vcpus=2)
    assert formfile.env == {"PORT": "8080"}


def test_parse_formfile_reports_bad_yaml_with_its_line() -> None:
    pytest.importorskip("yaml")
    with pytest.raises(FormfileError) as caught:
        parse_formfile("name: web\nrun:\n  - make\n - bad\n")

    [problem] = caught.value.problems
    assert problem.line == 4
    assert problem.message.startswith("the YAML is not valid: ")


def test_parse_formfile_yaml_problems_have_document_paths() -> None:
    pytest.importorskip("yaml")
    with pytest.raises(FormfileError) as caught:
        parse_formfile("name: web\nresources:\n  memory_mb: 256\n")

    assert [str(p) for p in caught.value.problems] == [
        "resources.memory_mb: 256 is out of range; use 512 to 256000 (MB)"
    ]


def test_parse_formfile_yaml_without_pyyaml_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)

    with pytest.raises(FormfileError) as caught:
        parse_formfile("name: web\n")

    assert [str(p) for p in caught.value.problems] == [
        "YAML Formfiles need PyYAML, which is not installed; send JSON or the text form"
    ]
