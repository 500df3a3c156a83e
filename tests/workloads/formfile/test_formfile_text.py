"""The Formfile's text form: every directive parses to the model."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    COMPLETE_MODEL,
    COMPLETE_TEXT,
    DEPLOY_USER,
    USER_LINE,
    text_of,
)

from formation_mcp.workloads.formfile import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_WORKDIR,
    GPU_MODELS,
    SYSTEM_SCOPE,
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
    parse_formfile_text,
)


def test_text_minimal_formfile_gets_the_defaults() -> None:
    formfile = parse_formfile_text("NAME web\n")

    assert formfile == Formfile(name="web")
    assert formfile.base_image == DEFAULT_BASE_IMAGE == "ubuntu-22.04"
    assert formfile.workdir == DEFAULT_WORKDIR == "/app"
    assert formfile.resources == Resources()
    assert formfile.network == Network(join_formnet=True)
    assert formfile.entrypoint == ()
    assert formfile.env == {}


def test_text_complete_example_parses_to_the_expected_model() -> None:
    assert parse_formfile_text(COMPLETE_TEXT) == COMPLETE_MODEL


def test_text_skips_blank_lines_comments_and_surrounding_whitespace() -> None:
    text = "\n  # a comment\r\n\t\n   NAME   web  \r\n# RUN not a step\n  RUN echo hi  \n"

    formfile = parse_formfile_text(text)

    assert formfile.name == "web"
    assert formfile.steps == (RunStep("echo hi"),)


def test_text_name_and_description_keep_inner_spaces() -> None:
    formfile = parse_formfile_text("NAME my  web app\nDESCRIPTION Serves   pages, fast\n")

    assert formfile.name == "my  web app"
    assert formfile.description == "Serves   pages, fast"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("MODEL required:llama-3-8b", ModelRef("llama-3-8b", required=True)),
        ("MODEL preferred:mistral-7b", ModelRef("mistral-7b", required=False)),
        ("MODEL required: meta/llama3", ModelRef("meta/llama3", required=True)),
    ],
)
def test_text_model(line: str, expected: ModelRef) -> None:
    assert parse_formfile_text(text_of(line)).model == expected


def test_text_run_keeps_the_whole_command() -> None:
    formfile = parse_formfile_text(text_of("RUN apt-get update && echo 'a  b' # not a comment"))

    assert formfile.steps == (RunStep("apt-get update && echo 'a  b' # not a comment"),)


def test_text_copy() -> None:
    formfile = parse_formfile_text(text_of("COPY ./config/app.toml /etc/app.toml"))

    assert formfile.steps == (CopyStep("./config/app.toml", "/etc/app.toml"),)


def test_text_install_takes_several_packages() -> None:
    formfile = parse_formfile_text(text_of("INSTALL curl git python3.11 libssl-dev g++"))

    assert formfile.steps == (InstallStep(("curl", "git", "python3.11", "libssl-dev", "g++")),)


def test_install_packages_accessor_collects_every_install_step() -> None:
    formfile = parse_formfile_text(text_of("INSTALL curl", "RUN true", "INSTALL git jq"))

    assert formfile.install_packages == ("curl", "git", "jq")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ENV PORT=8080", EnvStep("PORT", "8080", SYSTEM_SCOPE)),
        ("ENV --scope=system PORT=8080", EnvStep("PORT", "8080", SYSTEM_SCOPE)),
        ("ENV --scope=user:bob EDITOR=vim", EnvStep("EDITOR", "vim", EnvScope("user", "bob"))),
        (
            "ENV --scope=service:web LOG_LEVEL=debug",
            EnvStep("LOG_LEVEL", "debug", EnvScope("service", "web")),
        ),
        ("ENV\t--scope=user:bob\tEDITOR=vim", EnvStep("EDITOR", "vim", EnvScope("user", "bob"))),
    ],
)
def test_text_env_with_each_scope(line: str, expected: EnvStep) -> None:
    assert parse_formfile_text(text_of(line)).steps == (expected,)


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("ENV EMPTY=", "EMPTY", ""),
        ("ENV GREETING=hello world", "GREETING", "hello world"),
        ("ENV URL=postgres://u@h/db?x=1", "URL", "postgres://u@h/db?x=1"),
        ("ENV _private_1 = spaced ", "_private_1", "spaced"),
    ],
)
def test_text_env_value_is_the_rest_of_the_line(line: str, key: str, value: str) -> None:
    assert parse_formfile_text(text_of(line)).steps == (EnvStep(key, value),)


def test_env_accessor_is_the_system_scope_with_later_values_winning() -> None:
    formfile = parse_formfile_text(
        text_of("ENV A=1", "ENV --scope=user:bob B=2", "ENV --scope=service:web C=3", "ENV A=4")
    )

    assert formfile.env == {"A": "4"}


def test_text_user_with_every_field() -> None:
    formfile = parse_formfile_text(text_of(USER_LINE))

    assert formfile.steps == (UserStep(DEPLOY_USER),)
    assert formfile.users == (DEPLOY_USER,)


def test_text_user_defaults_are_formations() -> None:
    user = parse_formfile_text(text_of("USER username:bob")).users[0]

    assert user == User(
        username="bob",
        passwd=None,
        ssh_authorized_keys=(),
        lock_passwd=False,
        sudo=False,
        shell="/bin/bash",
        ssh_pwauth=True,
        disable_root=True,
        chpasswd_expire=True,
        groups=(),
    )


def test_text_user_accepts_field_equals_value() -> None:
    user = parse_formfile_text(text_of("USER username=bob sudo=yes groups=a,b")).users[0]

    assert user == User("bob", sudo=True, groups=("a", "b"))


def test_text_user_value_may_hold_colons_and_equals() -> None:
    user = parse_formfile_text(text_of("USER username:bob passwd:a:b=c")).users[0]

    assert user.passwd == "a:b=c"


def test_text_user_ssh_keys_are_a_trimmed_comma_list() -> None:
    line = "USER username:bob ssh_authorized_keys:'ssh-ed25519 AAAA a@b , ssh-rsa BBBB'"

    user = parse_formfile_text(text_of(line)).users[0]

    assert user.ssh_authorized_keys == ("ssh-ed25519 AAAA a@b", "ssh-rsa BBBB")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("true", True),
        ("yes", True),
        ("1", True),
        ("on", True),
        ("TRUE", True),
        ("false", False),
        ("no", False),
        ("0", False),
        ("off", False),
        ("Off", False),
    ],
)
def test_text_user_boolean_words(word: str, expected: bool) -> None:
    user = parse_formfile_text(text_of(f"USER username:bob sudo:{word}")).users[0]

    assert user.sudo is expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("VCPU 2", Resources(vcpus=2)),
        ("CPU 2", Resources(vcpus=2)),
        ("CORES 2", Resources(vcpus=2)),
        ("MEMORY 1024", Resources(memory_mb=1024)),
        ("MEM 1024", Resources(memory_mb=1024)),
        ("MBS 1024", Resources(memory_mb=1024)),
        ("DISK 10", Resources(disk_gb=10)),
        ("STORAGE 10", Resources(disk_gb=10)),
    ],
)
def test_text_resource_directives_and_aliases(line: str, expected: Resources) -> None:
    assert parse_formfile_text(text_of(line)).resources == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("VCPU 1", Resources(vcpus=1)),
        ("VCPU 128", Resources(vcpus=128)),
        ("MEMORY 512", Resources(memory_mb=512)),
        ("MEMORY 256000", Resources(memory_mb=256_000)),
        ("DISK 5", Resources(disk_gb=5)),
        ("DISK 65535", Resources(disk_gb=65_535)),
    ],
)
def test_text_resource_bounds_are_inclusive(line: str, expected: Resources) -> None:
    assert parse_formfile_text(text_of(line)).resources == expected


def test_text_resources_combine() -> None:
    formfile = parse_formfile_text(text_of("CPU 4", "MEM 4096", "STORAGE 50", "GPU B200:8"))

    assert formfile.resources == Resources(4, 4096, 50, Gpu("B200", 8))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GPU H100", Gpu("H100", 1)),
        ("GPU RTX5090:1", Gpu("RTX5090", 1)),
        ("GPU H200:8", Gpu("H200", 8)),
        ("GPU B200 : 3", Gpu("B200", 3)),
    ],
)
def test_text_gpu_forms(line: str, expected: Gpu) -> None:
    assert parse_formfile_text(text_of(line)).resources.gpu == expected


@pytest.mark.parametrize("model", GPU_MODELS)
def test_text_gpu_accepts_each_supported_model(model: str) -> None:
    assert parse_formfile_text(text_of(f"GPU {model}:2")).resources.gpu == Gpu(model, 2)


def test_text_workdir() -> None:
    assert parse_formfile_text(text_of("WORKDIR /srv/my-app")).workdir == "/srv/my-app"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ENTRYPOINT python3 app.py", ("python3", "app.py")),
        ('ENTRYPOINT python3 -c "print(1 + 1)"', ("python3", "-c", "print(1 + 1)")),
        ("ENTRYPOINT sh -c 'echo \"hi\"'", ("sh", "-c", 'echo "hi"')),
        ('ENTRYPOINT ["python3", "-m", "http.server"]', ("python3", "-m", "http.server")),
        ('ENTRYPOINT ["sh", "-c", "echo a  b"]', ("sh", "-c", "echo a  b")),
        ('ENTRYPOINT ["server", ""]', ("server", "")),
    ],
)
def test_text_entrypoint_both_forms(line: str, expected: tuple[str, ...]) -> None:
    assert parse_formfile_text(text_of(line)).entrypoint == expected


def test_text_extension_from() -> None:
    assert parse_formfile_text(text_of("FROM debian-12")).base_image == "debian-12"


def test_text_extension_include_accumulates_over_lines() -> None:
    formfile = parse_formfile_text(text_of("INCLUDE app lib/util.py", "INCLUDE ."))

    assert formfile.includes == ("app", "lib/util.py", ".")


def test_text_extension_expose_accumulates_over_lines() -> None:
    formfile = parse_formfile_text(text_of("EXPOSE 8080 443", "EXPOSE 1 65535"))

    assert formfile.expose == (8080, 443, 1, 65535)


def test_text_extension_network() -> None:
    formfile = parse_formfile_text(text_of("NETWORK join_formnet=off external_networks=a,b"))

    assert formfile.network == Network(join_formnet=False, external_networks=("a", "b"))


def test_text_extension_metadata_is_sorted_by_key() -> None:
    formfile = parse_formfile_text(text_of("METADATA b=2", "METADATA a=one two", "METADATA c="))

    assert formfile.metadata == (("a", "one two"), ("b", "2"), ("c", ""))


def test_text_steps_keep_their_order_across_kinds() -> None:
    formfile = parse_formfile_text(
        text_of("RUN one", "ENV A=1", "INSTALL x", "USER username:u", "COPY a b", "RUN two")
    )

    assert formfile.steps == (
        RunStep("one"),
        EnvStep("A", "1"),
        InstallStep(("x",)),
        UserStep(User("u")),
        CopyStep("a", "b"),
        RunStep("two"),
    )
