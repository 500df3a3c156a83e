"""Rendering both forms and round trips through them."""

from __future__ import annotations

import json

import pytest
from tests.support.formfiles import (
    COMPLETE_DOCUMENT,
    COMPLETE_MODEL,
    COMPLETE_TEXT,
    LEGACY_DOCUMENT,
    LEGACY_MODEL,
    reverse_keys,
    text_of,
    with_name,
)

from formation_mcp.workloads.formfile import (
    EnvScope,
    EnvStep,
    Formfile,
    InstallStep,
    RunStep,
    User,
    UserStep,
    parse_formfile,
    parse_formfile_document,
    parse_formfile_text,
)


def test_to_text_of_the_complete_example() -> None:
    assert COMPLETE_MODEL.to_text() == (
        "NAME web-app\n"
        "DESCRIPTION A small web service\n"
        "FROM debian-12\n"
        "MODEL required:llama-3-8b\n"
        "WORKDIR /srv/app\n"
        "VCPU 2\n"
        "MEMORY 2048\n"
        "DISK 20\n"
        "GPU H100:2\n"
        "INCLUDE app requirements.txt\n"
        "EXPOSE 8080 9090\n"
        "NETWORK join_formnet:false external_networks:office,lab\n"
        "METADATA team=platform\n"
        "METADATA tier=gold\n"
        "USER username:deploy 'passwd:s3cret pass' "
        "'ssh_authorized_keys:ssh-ed25519 AAAA deploy@host,ssh-rsa BBBB' lock_passwd:true "
        "sudo:true shell:/bin/zsh ssh_pwauth:false disable_root:false chpasswd_expire:false "
        "groups:adm,docker\n"
        "INSTALL python3 python3-pip\n"
        "COPY config/app.toml /etc/app.toml\n"
        "ENV --scope=service:web LOG_LEVEL=debug\n"
        "ENV PORT=8080\n"
        "RUN pip3 install -r requirements.txt\n"
        'ENTRYPOINT ["python3", "-m", "http.server", "8080"]\n'
    )


def test_to_text_of_a_minimal_formfile_writes_the_workdir() -> None:
    assert Formfile(name="web").to_text() == "NAME web\nWORKDIR /app\n"


def test_to_document_of_a_minimal_formfile() -> None:
    assert Formfile(name="web").to_document() == {
        "from": "ubuntu-22.04",
        "name": "web",
        "workdir": "/app",
    }


def test_to_document_of_the_complete_example() -> None:
    assert COMPLETE_MODEL.to_document() == COMPLETE_DOCUMENT


def test_to_document_uses_the_legacy_keys_when_they_give_the_same_steps() -> None:
    assert LEGACY_MODEL.to_document() == {
        "from": "ubuntu-22.04",
        "name": "api",
        "workdir": "/app",
        "users": [{"username": "app"}],
        "install": ["curl", "git"],
        "copy": [{"from": "src", "to": "/app/src"}],
        "env": {"HOST": "0.0.0.0", "MODE": "prod"},
        "run": ["make", "make install"],
    }


@pytest.mark.parametrize(
    "steps",
    [
        (RunStep("a"), InstallStep(("curl",))),
        (InstallStep(("a",)), InstallStep(("b",))),
        (EnvStep("A", "1", EnvScope("user", "bob")),),
        (EnvStep("A", "1"), EnvStep("A", "2")),
        (EnvStep("B", "1"), EnvStep("A", "2")),
    ],
)
def test_to_document_uses_explicit_steps_when_the_legacy_keys_would_change_them(
    steps: tuple[RunStep | InstallStep | EnvStep, ...],
) -> None:
    document = Formfile(name="web", steps=steps).to_document()

    assert "steps" in document
    assert parse_formfile_document(document).steps == steps


def test_to_document_is_json_serializable_and_parses_back_from_json_text() -> None:
    text = json.dumps(COMPLETE_MODEL.to_document())

    assert parse_formfile(text) == COMPLETE_MODEL


@pytest.mark.parametrize(
    "text",
    [
        COMPLETE_TEXT,
        "NAME web\n",
        text_of("RUN a", "ENV --scope=user:bob K=v w", "USER username:x passwd:'it''s \"q\"'"),
        text_of('ENTRYPOINT ["sh", "-c", "echo \'a\'\\n", "\\u00e9"]', "METADATA k="),
        text_of("ENV EMPTY=", "GPU RTX5090", "NETWORK external_networks:a"),
    ],
)
def test_round_trip_text_model_text_model(text: str) -> None:
    model = parse_formfile_text(text)
    rendered = model.to_text()

    again = parse_formfile_text(rendered)

    assert again == model
    assert again.to_text() == rendered


@pytest.mark.parametrize(
    "document",
    [
        COMPLETE_DOCUMENT,
        LEGACY_DOCUMENT,
        {"name": "web"},
        with_name(env={"B": "2", "A": ""}, users=[{"username": "u", "passwd": " spaced "}]),
        with_name(entrypoint="python3 -c 'print(1)'", expose=[1, 65535]),
    ],
)
def test_round_trip_document_model_document_model(document: dict[str, object]) -> None:
    model = parse_formfile_document(document)
    rendered = model.to_document()

    again = parse_formfile_document(rendered)

    assert again == model
    assert again.to_document() == rendered


def test_text_and_document_forms_are_equivalent_for_the_complete_example() -> None:
    from_text = parse_formfile_text(COMPLETE_TEXT)
    from_document = parse_formfile_document(COMPLETE_DOCUMENT)

    assert from_text == from_document
    assert parse_formfile_document(from_text.to_document()) == from_text
    assert parse_formfile_text(from_document.to_text()) == from_document


def test_text_and_document_forms_are_equivalent_for_the_legacy_document() -> None:
    assert parse_formfile_text(LEGACY_MODEL.to_text()) == parse_formfile_document(LEGACY_DOCUMENT)


def test_tricky_values_survive_both_forms() -> None:
    user = User("bob", passwd="a'b\"c d", ssh_authorized_keys=("ssh-ed25519 AA== a b",))
    model = Formfile(
        name="naïve app",
        steps=(UserStep(user), EnvStep("MSG", "hello = world # not a comment")),
        entrypoint=("python3", "-c", "import sys\nprint(sys.argv)", "", "ünï"),
        metadata=(("k", ""),),
    )

    assert parse_formfile_text(model.to_text()) == model
    assert parse_formfile_document(model.to_document()) == model
    assert parse_formfile(model.normalized_json()) == model


def test_normalized_json_is_stable_under_key_reordering() -> None:
    shuffled = reverse_keys(COMPLETE_DOCUMENT)
    assert json.dumps(shuffled) != json.dumps(COMPLETE_DOCUMENT)

    assert (
        parse_formfile_document(shuffled).normalized_json()
        == parse_formfile_document(COMPLETE_DOCUMENT).normalized_json()
    )


def test_normalized_json_is_stable_under_env_and_metadata_order() -> None:
    one = parse_formfile_document(
        with_name(env={"A": "1", "B": "2"}, metadata={"x": "1", "y": "2"})
    )
    two = parse_formfile_document(
        with_name(metadata={"y": "2", "x": "1"}, env={"B": "2", "A": "1"})
    )

    assert one == two
    assert one.normalized_json() == two.normalized_json()


def test_normalized_json_is_compact_with_sorted_keys() -> None:
    assert Formfile(name="web").normalized_json() == (
        '{"from":"ubuntu-22.04","name":"web","workdir":"/app"}'
    )


def test_normalized_json_changes_with_the_content() -> None:
    one = parse_formfile_document(with_name(run=["a", "b"]))
    two = parse_formfile_document(with_name(run=["b", "a"]))

    assert one.normalized_json() != two.normalized_json()
