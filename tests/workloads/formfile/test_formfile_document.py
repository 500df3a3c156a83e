"""The Formfile's document form (YAML/JSON): every key parses to the model."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    COMPLETE_DOCUMENT,
    COMPLETE_MODEL,
    LEGACY_DOCUMENT,
    LEGACY_MODEL,
    with_name,
)

from formation_mcp.workloads.formfile import (
    CopyStep,
    EnvScope,
    EnvStep,
    Formfile,
    Gpu,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    RunStep,
    User,
    UserStep,
    parse_formfile_document,
)


def test_document_minimal_gets_the_defaults() -> None:
    assert parse_formfile_document({"name": "web"}) == Formfile(name="web")


def test_document_complete_example_parses_to_the_expected_model() -> None:
    assert parse_formfile_document(COMPLETE_DOCUMENT) == COMPLETE_MODEL


def test_document_legacy_keys_map_to_steps_in_the_documented_order() -> None:
    assert parse_formfile_document(LEGACY_DOCUMENT) == LEGACY_MODEL


def test_document_legacy_env_becomes_steps_sorted_by_key() -> None:
    formfile = parse_formfile_document(with_name(env={"Z": "1", "A": "2", "M": "3"}))

    assert [step.key for step in formfile.steps if isinstance(step, EnvStep)] == ["A", "M", "Z"]
    assert formfile.env == {"A": "2", "M": "3", "Z": "1"}


def test_document_explicit_steps_keep_their_order() -> None:
    document = with_name(
        steps=[
            {"run": "one"},
            {"env": {"key": "A", "value": "1", "scope": "user:bob"}},
            {"install": ["curl"]},
            {"user": {"username": "bob"}},
            {"copy": {"from": "a", "to": "b"}},
        ]
    )

    assert parse_formfile_document(document).steps == (
        RunStep("one"),
        EnvStep("A", "1", EnvScope("user", "bob")),
        InstallStep(("curl",)),
        UserStep(User("bob")),
        CopyStep("a", "b"),
    )


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        ("python3 -m http.server", ("python3", "-m", "http.server")),
        ('sh -c "echo a  b"', ("sh", "-c", "echo a  b")),
        (["python3", "app.py", "--flag=a b"], ("python3", "app.py", "--flag=a b")),
        ("[ -f x ]", ("[", "-f", "x", "]")),
    ],
)
def test_document_entrypoint_string_or_list(entrypoint: object, expected: tuple[str, ...]) -> None:
    assert parse_formfile_document(with_name(entrypoint=entrypoint)).entrypoint == expected


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ({"model": "H100"}, Gpu("H100", 1)),
        ({"model": "RTX5090", "count": 4}, Gpu("RTX5090", 4)),
        ("H200:2", Gpu("H200", 2)),
        ("B200", Gpu("B200", 1)),
    ],
)
def test_document_gpu_forms(gpu: object, expected: Gpu) -> None:
    formfile = parse_formfile_document(with_name(resources={"gpu": gpu}))

    assert formfile.resources == Resources(gpu=expected)


def test_document_whole_floats_are_whole_numbers() -> None:
    """protobuf Struct numbers are doubles."""
    formfile = parse_formfile_document(
        with_name(resources={"vcpus": 2.0, "memory_mb": 1024.0}, expose=[8080.0])
    )

    assert formfile.resources == Resources(vcpus=2, memory_mb=1024)
    assert formfile.expose == (8080,)


def test_document_env_and_metadata_take_whole_numbers_as_text() -> None:
    formfile = parse_formfile_document(with_name(env={"PORT": 8080}, metadata={"rev": 7}))

    assert formfile.env == {"PORT": "8080"}
    assert formfile.metadata == (("rev", "7"),)


def test_document_null_values_are_absent() -> None:
    document = with_name(description=None, run=None, resources=None, entrypoint=None)

    assert parse_formfile_document(document) == Formfile(name="web")


def test_document_user_booleans_may_be_words_and_lists_comma_strings() -> None:
    document = with_name(users=[{"username": "bob", "sudo": "yes", "groups": "adm,docker"}])

    assert parse_formfile_document(document).users == (
        User("bob", sudo=True, groups=("adm", "docker")),
    )


def test_document_network_and_model() -> None:
    document = with_name(
        network={"join_formnet": False, "external_networks": ["lab"]},
        model={"id": "mistral-7b"},
    )

    formfile = parse_formfile_document(document)

    assert formfile.network == Network(join_formnet=False, external_networks=("lab",))
    assert formfile.model == ModelRef("mistral-7b", required=False)
