"""The Formfile model: both forms, every directive, every rule, round trips and limits."""

from __future__ import annotations

import json
import sys

import pytest
from tests.support.hostile_formfiles import billion_laughs, nested_alias_bomb

from formation_mcp.workloads.formfile import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_WORKDIR,
    GPU_MODELS,
    MAX_ITEMS,
    MAX_LINES,
    MAX_PROBLEMS,
    MAX_STEPS,
    MAX_STRING_BYTES,
    MAX_TEXT_BYTES,
    SYSTEM_SCOPE,
    CopyStep,
    EnvScope,
    EnvStep,
    Formfile,
    FormfileError,
    FormfileProblem,
    Gpu,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    RunStep,
    User,
    UserStep,
    detect_formfile_form,
    parse_formfile,
    parse_formfile_document,
    parse_formfile_text,
)

USERNAME_RULE = "use lowercase letters, digits, _ and -, starting with a letter or _"
BOOLEAN_RULE = "use true or false (or yes/no, 1/0, on/off)"

USER_LINE = (
    "USER username:deploy passwd:'s3cret pass' "
    'ssh_authorized_keys:"ssh-ed25519 AAAA deploy@host,ssh-rsa BBBB" lock_passwd:yes '
    "sudo:true shell:/bin/zsh ssh_pwauth:off disable_root:0 chpasswd_expire:false "
    "groups:adm,docker"
)

COMPLETE_TEXT = (
    "# A complete Formfile: every directive at least once.\n"
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
    "METADATA tier=gold\n"
    "METADATA team=platform\n"
    "\n"
    f"{USER_LINE}\n"
    "INSTALL python3 python3-pip\n"
    "COPY config/app.toml /etc/app.toml\n"
    "ENV --scope=service:web LOG_LEVEL=debug\n"
    "ENV PORT=8080\n"
    "RUN pip3 install -r requirements.txt\n"
    'ENTRYPOINT python3 -m "http.server" 8080\n'
)

DEPLOY_USER = User(
    username="deploy",
    passwd="s3cret pass",
    ssh_authorized_keys=("ssh-ed25519 AAAA deploy@host", "ssh-rsa BBBB"),
    lock_passwd=True,
    sudo=True,
    shell="/bin/zsh",
    ssh_pwauth=False,
    disable_root=False,
    chpasswd_expire=False,
    groups=("adm", "docker"),
)

COMPLETE_MODEL = Formfile(
    name="web-app",
    description="A small web service",
    base_image="debian-12",
    model=ModelRef("llama-3-8b", required=True),
    workdir="/srv/app",
    includes=("app", "requirements.txt"),
    steps=(
        UserStep(DEPLOY_USER),
        InstallStep(("python3", "python3-pip")),
        CopyStep("config/app.toml", "/etc/app.toml"),
        EnvStep("LOG_LEVEL", "debug", EnvScope("service", "web")),
        EnvStep("PORT", "8080"),
        RunStep("pip3 install -r requirements.txt"),
    ),
    entrypoint=("python3", "-m", "http.server", "8080"),
    expose=(8080, 9090),
    resources=Resources(vcpus=2, memory_mb=2048, disk_gb=20, gpu=Gpu("H100", 2)),
    network=Network(join_formnet=False, external_networks=("office", "lab")),
    metadata=(("team", "platform"), ("tier", "gold")),
)

DEPLOY_USER_DOCUMENT: dict[str, object] = {
    "username": "deploy",
    "passwd": "s3cret pass",
    "ssh_authorized_keys": ["ssh-ed25519 AAAA deploy@host", "ssh-rsa BBBB"],
    "lock_passwd": True,
    "sudo": True,
    "shell": "/bin/zsh",
    "ssh_pwauth": False,
    "disable_root": False,
    "chpasswd_expire": False,
    "groups": ["adm", "docker"],
}

COMPLETE_DOCUMENT: dict[str, object] = {
    "from": "debian-12",
    "name": "web-app",
    "description": "A small web service",
    "model": {"id": "llama-3-8b", "required": True},
    "workdir": "/srv/app",
    "include": ["app", "requirements.txt"],
    "steps": [
        {"user": DEPLOY_USER_DOCUMENT},
        {"install": ["python3", "python3-pip"]},
        {"copy": {"from": "config/app.toml", "to": "/etc/app.toml"}},
        {"env": {"key": "LOG_LEVEL", "value": "debug", "scope": "service:web"}},
        {"env": {"key": "PORT", "value": "8080"}},
        {"run": "pip3 install -r requirements.txt"},
    ],
    "entrypoint": ["python3", "-m", "http.server", "8080"],
    "expose": [8080, 9090],
    "resources": {
        "vcpus": 2,
        "memory_mb": 2048,
        "disk_gb": 20,
        "gpu": {"model": "H100", "count": 2},
    },
    "network": {"join_formnet": False, "external_networks": ["office", "lab"]},
    "metadata": {"team": "platform", "tier": "gold"},
}

LEGACY_DOCUMENT: dict[str, object] = {
    "from": "ubuntu-22.04",
    "name": "api",
    "workdir": "/app",
    "users": [{"username": "app"}],
    "install": ["curl", "git"],
    "copy": [{"from": "src", "to": "/app/src"}],
    "env": {"MODE": "prod", "HOST": "0.0.0.0"},
    "run": ["make", "make install"],
}

LEGACY_MODEL = Formfile(
    name="api",
    steps=(
        UserStep(User("app")),
        InstallStep(("curl", "git")),
        CopyStep("src", "/app/src"),
        EnvStep("HOST", "0.0.0.0"),
        EnvStep("MODE", "prod"),
        RunStep("make"),
        RunStep("make install"),
    ),
)


def text_of(*lines: str) -> str:
    """A Formfile with NAME on line 1 and `lines` from line 2 on."""
    return "\n".join(["NAME web", *lines]) + "\n"


def text_problems(text: str) -> list[str]:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_text(text)
    return [str(problem) for problem in caught.value.problems]


def document_problems(document: object) -> list[str]:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_document(document)
    return [str(problem) for problem in caught.value.problems]


def with_name(**keys: object) -> dict[str, object]:
    return {"name": "web", **keys}


def reverse_keys(value: object) -> object:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reverse_keys(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [reverse_keys(item) for item in value]
    return value


# -- text form: valid constructs -----------------------------------------------------------


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


# -- text form: problems ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("MEMORY 256", "line 2: MEMORY 256 is out of range; use 512 to 256000 (MB)"),
        ("MEM 256001", "line 2: MEM 256001 is out of range; use 512 to 256000 (MB)"),
        ("MBS -1", 'line 2: MBS "-1" is not a whole number; use 512 to 256000 (MB)'),
        ("VCPU 0", "line 2: VCPU 0 is out of range; use 1 to 128"),
        ("CPU 129", "line 2: CPU 129 is out of range; use 1 to 128"),
        ("CORES two", 'line 2: CORES "two" is not a whole number; use 1 to 128'),
        ("VCPU 1.5", 'line 2: VCPU "1.5" is not a whole number; use 1 to 128'),
        ("DISK 4", "line 2: DISK 4 is out of range; use 5 to 65535 (GB)"),
        ("STORAGE 65536", "line 2: STORAGE 65536 is out of range; use 5 to 65535 (GB)"),
        (
            "DISK 123456789012345678901234567890",
            "line 2: DISK 123456789012345678901234567890 is out of range; use 5 to 65535 (GB)",
        ),
    ],
)
def test_text_resource_out_of_range_or_not_a_number(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "GPU A100",
            'line 2: GPU "A100" is not a supported GPU model; use one of RTX5090, H100, H200, B200',
        ),
        (
            "GPU h100",
            'line 2: GPU "h100" is not a supported GPU model; use one of RTX5090, H100, H200, B200',
        ),
        ("GPU H100:9", "line 2: GPU count 9 is out of range; use 1 to 8"),
        ("GPU H100:0", "line 2: GPU count 0 is out of range; use 1 to 8"),
        ("GPU H100:x", 'line 2: GPU count "x" is not a whole number; use 1 to 8'),
        ("GPU H100:", 'line 2: GPU count "" is not a whole number; use 1 to 8'),
    ],
)
def test_text_gpu_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("WORKDIR app", 'line 2: WORKDIR "app" is not an absolute path; start it with /'),
        (
            "WORKDIR /app/../etc",
            'line 2: WORKDIR "/app/../etc" has a . or .. segment; write the path without them',
        ),
        (
            "WORKDIR /app/./x",
            'line 2: WORKDIR "/app/./x" has a . or .. segment; write the path without them',
        ),
    ],
)
def test_text_workdir_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


def test_text_duplicate_workdir_is_an_error_naming_the_first_line() -> None:
    problems = text_problems(text_of("WORKDIR /a", "RUN x", "WORKDIR /b"))

    assert problems == [
        "line 4: WORKDIR is a second WORKDIR (the first is on line 2); give it once"
    ]


def test_text_a_second_alias_of_the_same_setting_is_an_error() -> None:
    problems = text_problems(text_of("VCPU 2", "CORES 4"))

    assert problems == ["line 3: CORES is a second VCPU (the first is on line 2); give it once"]


@pytest.mark.parametrize("keyword", ["DESCRIPTION", "MODEL", "ENTRYPOINT", "GPU", "FROM"])
def test_text_single_valued_directives_may_not_repeat(keyword: str) -> None:
    values = {
        "DESCRIPTION": "d",
        "MODEL": "required:m",
        "ENTRYPOINT": "run",
        "GPU": "H100",
        "FROM": "img",
    }
    line = f"{keyword} {values[keyword]}"

    problems = text_problems(text_of(line, line))

    assert problems[-1] == (
        f"line 3: {keyword} is a second {keyword} (the first is on line 2); give it once"
    )


def test_text_second_name_is_an_error() -> None:
    assert text_problems(text_of("NAME other")) == [
        "line 2: NAME is a second NAME (the first is on line 1); give it once"
    ]


def test_text_missing_name_is_an_error() -> None:
    assert text_problems("RUN echo hi\n") == ["NAME is required; add a line: NAME <workload name>"]


def test_text_unknown_directive_is_an_error_with_its_line() -> None:
    problems = text_problems(text_of("RUN ok", "CMD python app.py"))

    assert problems == [
        "line 3: CMD is not a Formfile directive; use one of: NAME, DESCRIPTION, MODEL, RUN, "
        "COPY, INSTALL, ENV, USER, VCPU, CPU, CORES, MEMORY, MEM, MBS, DISK, STORAGE, GPU, "
        "WORKDIR, ENTRYPOINT, FROM, INCLUDE, EXPOSE, NETWORK, METADATA"
    ]


def test_text_directives_are_case_sensitive() -> None:
    assert text_problems(text_of("run echo hi")) == [
        "line 2: run is not a directive; directives are case-sensitive, write RUN"
    ]


def test_text_yaml_looking_line_gets_a_hint() -> None:
    problems = text_problems("NAME web\nnmae: web\n")

    assert problems[0].startswith(
        "line 2: nmae: is not a directive; a YAML Formfile must start with one of its keys: from,"
    )


@pytest.mark.parametrize("keyword", ["NAME", "RUN", "COPY", "ENV", "USER", "VCPU", "EXPOSE"])
def test_text_directive_without_argument_is_an_error(keyword: str) -> None:
    assert text_problems(text_of(f"{keyword}   ")) == [f"line 2: {keyword} needs an argument"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "MODEL maybe:x",
            'line 2: MODEL "maybe:x" is not required:<model id> or preferred:<model id>',
        ),
        (
            "MODEL llama",
            'line 2: MODEL "llama" is not required:<model id> or preferred:<model id>',
        ),
        ("MODEL required:a:b", "line 2: MODEL \"a:b\" has a ':' in it; a model id can't"),
        ("MODEL required:", "line 2: MODEL is empty; give a value"),
    ],
)
def test_text_model_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY onlyone", "line 2: COPY takes two paths, a source and a destination; got 1"),
        ("COPY a b c", "line 2: COPY takes two paths, a source and a destination; got 3"),
        (
            "COPY /etc/passwd x",
            'line 2: COPY "/etc/passwd" is absolute; use a path relative to the build context',
        ),
        ("COPY ../x y", 'line 2: COPY "../x" has a .. segment; stay inside the build context'),
        (
            "COPY a/../../x y",
            'line 2: COPY "a/../../x" has a .. segment; stay inside the build context',
        ),
        (
            "COPY a ../y",
            'line 2: COPY "../y" has a .. segment; name the destination without ..',
        ),
    ],
)
def test_text_copy_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


def test_text_install_refuses_an_option_as_a_package() -> None:
    assert text_problems(text_of("INSTALL curl -oAPT::Foo=1")) == [
        'line 2: INSTALL "-oAPT::Foo=1" is not an apt package name; use letters, digits and'
        " + . : = ~ / _ -, starting with a letter or digit"
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "ENV 1A=x",
            'line 2: ENV key "1A" is not a valid name; use letters, digits and _'
            ", not starting with a digit",
        ),
        (
            "ENV MY-KEY=x",
            'line 2: ENV key "MY-KEY" is not a valid name; use letters, digits and _'
            ", not starting with a digit",
        ),
        ("ENV NOEQUALS", 'line 2: ENV "NOEQUALS" is not KEY=value'),
        ("ENV --scope=user:bob", 'line 2: ENV "" is not KEY=value'),
        (
            "ENV --scope=bogus K=v",
            'line 2: ENV scope "bogus" is not valid; use system, user:<name> or service:<name>',
        ),
        (
            "ENV --scope=user:Bob K=v",
            f'line 2: ENV scope user "Bob" is not a valid username; {USERNAME_RULE}',
        ),
        ("ENV --scope=user: K=v", "line 2: ENV scope user is empty; give a value"),
        ("ENV --scope=service: K=v", "line 2: ENV scope service is empty; give a value"),
    ],
)
def test_text_env_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "USER username:Bob",
            f'line 2: USER username "Bob" is not a valid username; {USERNAME_RULE}',
        ),
        (
            "USER username:1abc",
            f'line 2: USER username "1abc" is not a valid username; {USERNAME_RULE}',
        ),
        (
            "USER username:" + "a" * 33,
            f'line 2: USER username "{"a" * 33}" is longer than 32 characters',
        ),
        ("USER username:", "line 2: USER username is empty; give a value"),
        ("USER shell:/bin/sh", "line 2: USER username is required"),
        (
            "USER username:bob shell:bin/sh",
            'line 2: USER shell "bin/sh" is not an absolute path; start it with /',
        ),
        (
            "USER username:bob home:/x",
            'line 2: USER has an unknown field "home"; use one of: username, passwd, '
            "ssh_authorized_keys, lock_passwd, sudo, shell, ssh_pwauth, disable_root, "
            "chpasswd_expire, groups",
        ),
        (
            "USER username:bob sudo:maybe",
            f'line 2: USER sudo "maybe" is not a boolean; {BOOLEAN_RULE}',
        ),
        (
            "USER username:bob passwd:",
            "line 2: USER passwd is empty; give a password or leave it out",
        ),
        ("USER username:bob nonsense", 'line 2: USER "nonsense" is not field:value'),
        ("USER username:bob username:al", "line 2: USER gives username twice; give it once"),
        (
            "USER username:bob groups:'a b'",
            'line 2: USER groups "a b" has whitespace in it; a group name is a single word',
        ),
        (
            "USER username:bob ssh_authorized_keys:",
            "line 2: USER ssh_authorized_keys is empty; give a value",
        ),
        (
            "USER username:'bob",
            "line 2: USER \"username:'bob\" can't be split into words (no closing quotation)",
        ),
    ],
)
def test_text_user_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


def test_text_user_reports_every_bad_field_of_the_line() -> None:
    problems = text_problems(text_of("USER username:Bob shell:sh home:/x"))

    assert problems == [
        'line 2: USER has an unknown field "home"; use one of: username, passwd, '
        "ssh_authorized_keys, lock_passwd, sudo, shell, ssh_pwauth, disable_root, "
        "chpasswd_expire, groups",
        f'line 2: USER username "Bob" is not a valid username; {USERNAME_RULE}',
        'line 2: USER shell "sh" is not an absolute path; start it with /',
    ]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('ENTRYPOINT ["a"', "line 2: ENTRYPOINT is not a valid JSON array (Expecting"),
        ("ENTRYPOINT []", "line 2: ENTRYPOINT is empty; give the program to run"),
        ('ENTRYPOINT [1, "x"]', "line 2: ENTRYPOINT must be a string, not a number"),
        ('ENTRYPOINT ["", "x"]', "line 2: ENTRYPOINT starts with an empty word"),
        ('ENTRYPOINT "unclosed', "can't be split into words (no closing quotation)"),
    ],
)
def test_text_entrypoint_problems(line: str, fragment: str) -> None:
    problems = text_problems(text_of(line))

    assert len(problems) == 1
    assert fragment in problems[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("EXPOSE 0", "line 2: EXPOSE 0 is out of range; use 1 to 65535"),
        ("EXPOSE 65536", "line 2: EXPOSE 65536 is out of range; use 1 to 65535"),
        ("EXPOSE http", 'line 2: EXPOSE "http" is not a whole number; use 1 to 65535'),
        ("EXPOSE 80 80", "line 2: EXPOSE 80 is already exposed; give each port once"),
        (
            "INCLUDE /etc",
            'line 2: INCLUDE "/etc" is absolute; use a path relative to the build context',
        ),
        (
            "INCLUDE a ../b",
            'line 2: INCLUDE "../b" has a .. segment; stay inside the build context',
        ),
        (
            "FROM ubuntu 22.04",
            'line 2: FROM "ubuntu 22.04" has whitespace in it; a base image name is a single word',
        ),
        (
            "NETWORK join_formnet:maybe",
            f'line 2: NETWORK join_formnet "maybe" is not a boolean; {BOOLEAN_RULE}',
        ),
        (
            "NETWORK vlan:3",
            'line 2: NETWORK has an unknown field "vlan"; use one of: join_formnet, '
            "external_networks",
        ),
        ("METADATA novalue", 'line 2: METADATA "novalue" is not KEY=value'),
    ],
)
def test_text_extension_problems(line: str, message: str) -> None:
    assert text_problems(text_of(line)) == [message]


def test_text_expose_may_not_repeat_a_port_across_lines() -> None:
    assert text_problems(text_of("EXPOSE 80", "EXPOSE 443 80")) == [
        "line 3: EXPOSE 80 is already exposed; give each port once"
    ]


def test_text_metadata_may_not_repeat_a_key() -> None:
    assert text_problems(text_of("METADATA a=1", "METADATA a=2")) == [
        'line 3: METADATA key "a" is already set; give each key once'
    ]


def test_text_collects_every_problem_in_one_pass() -> None:
    text = "MEMORY 256\nVCPU 0\nCMD x\nWORKDIR app\nRUN fine\nGPU A100\n"

    problems = text_problems(text)

    assert [problem.split(":")[0] for problem in problems] == [
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "line 6",
        "NAME is required; add a line",
    ]


def test_text_control_characters_are_refused() -> None:
    assert text_problems(text_of("RUN echo \x07bell")) == [
        "line 2: RUN contains a line break or control character; keep it on one line"
    ]


# -- document form: valid constructs ----------------------------------------------------------


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


# -- document form: problems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "name: is required"),
        ({"name": 5}, "name: must be a string, not a number"),
        ({"name": "  "}, "name: is empty; give a value"),
        (with_name(resources={"vcpus": 0}), "resources.vcpus: 0 is out of range; use 1 to 128"),
        (
            with_name(resources={"vcpus": True}),
            "resources.vcpus: true is not a whole number; use 1 to 128",
        ),
        (
            with_name(resources={"vcpus": 1.5}),
            "resources.vcpus: 1.5 is not a whole number; use 1 to 128",
        ),
        (
            with_name(resources={"memory_mb": 256}),
            "resources.memory_mb: 256 is out of range; use 512 to 256000 (MB)",
        ),
        (
            with_name(resources={"disk_gb": 4}),
            "resources.disk_gb: 4 is out of range; use 5 to 65535 (GB)",
        ),
        (
            with_name(resources={"gpu": {"model": "A100"}}),
            'resources.gpu.model: "A100" is not a supported GPU model; '
            "use one of RTX5090, H100, H200, B200",
        ),
        (
            with_name(resources={"gpu": {"model": "H100", "count": 9}}),
            "resources.gpu.count: 9 is out of range; use 1 to 8",
        ),
        (
            with_name(resources={"gpu": "H100:9"}),
            "resources.gpu: count 9 is out of range; use 1 to 8",
        ),
        (with_name(resources={"gpu": {"count": 1}}), "resources.gpu.model: is required"),
        (
            with_name(resources={"cpus": 2}),
            'resources.cpus: unknown key "cpus"; use one of: vcpus, memory_mb, disk_gb, gpu',
        ),
        (with_name(resources=[2]), "resources: must be an object, not a list"),
        (with_name(expose="80"), "expose: must be a list, not a string"),
        (with_name(expose=[0]), "expose[0]: 0 is out of range; use 1 to 65535"),
        (with_name(expose=[80, 443, 80]), "expose[2]: 80 is listed twice; give each port once"),
        (
            with_name(env={"1A": "x"}),
            'env.1A: key "1A" is not a valid name; use letters, digits and _'
            ", not starting with a digit",
        ),
        (with_name(env={"A": [1]}), "env.A: must be a string, not a list"),
        (with_name(workdir="app"), 'workdir: "app" is not an absolute path; start it with /'),
        (
            with_name(include=["/etc"]),
            'include[0]: "/etc" is absolute; use a path relative to the build context',
        ),
        (with_name(copy=[{"from": "a"}]), "copy[0].to: is required"),
        (
            with_name(copy=[{"from": "a", "to": "../b"}]),
            'copy[0].to: "../b" has a .. segment; name the destination without ..',
        ),
        (
            with_name(install=["curl", "-y"]),
            'install[1]: "-y" is not an apt package name; use letters, digits and'
            " + . : = ~ / _ -, starting with a letter or digit",
        ),
        (
            with_name(users=[{"username": "Bob"}]),
            f'users[0].username: "Bob" is not a valid username; {USERNAME_RULE}',
        ),
        (
            with_name(users=[{"username": "bob", "shell": "sh"}]),
            'users[0].shell: "sh" is not an absolute path; start it with /',
        ),
        (with_name(users=[{"sudo": True}]), "users[0].username: is required"),
        (
            with_name(users=[{"username": "bob", "sudo": "maybe"}]),
            f'users[0].sudo: "maybe" is not a boolean; {BOOLEAN_RULE}',
        ),
        (
            with_name(run=["a\nb"]),
            "run[0]: contains a line break or control character; keep it on one line",
        ),
        (with_name(run=[5]), "run[0]: must be a string, not a number"),
        (with_name(steps=[{"run": "a"}], run=["b"]), "steps: use either steps or run, not both"),
        (
            with_name(steps=[{"run": "a", "install": ["b"]}]),
            "steps[0]: must have exactly one of run, copy, install, env, user",
        ),
        (with_name(steps=[{"install": []}]), "steps[0].install: needs at least one package"),
        (
            with_name(steps=[{"env": {"key": "A", "value": "b", "scope": "user:Bob"}}]),
            f'steps[0].env.scope: user "Bob" is not a valid username; {USERNAME_RULE}',
        ),
        (with_name(steps=[{"env": {"value": "b"}}]), "steps[0].env.key: is required"),
        (with_name(entrypoint=[]), "entrypoint: is empty; give the program to run"),
        (
            with_name(entrypoint=5),
            "entrypoint: must be a string or a list of strings, not a number",
        ),
        (with_name(model={"required": True}), "model.id: is required"),
        (
            with_name(network={"join_formnet": "maybe"}),
            f'network.join_formnet: "maybe" is not a boolean; {BOOLEAN_RULE}',
        ),
        (with_name(metadata={"k": {"a": 1}}), "metadata.k: must be a string, not an object"),
        (
            with_name(**{"from": "ubuntu 22.04"}),
            'from: "ubuntu 22.04" has whitespace in it; a base image name is a single word',
        ),
    ],
)
def test_document_problems(document: object, message: str) -> None:
    assert document_problems(document) == [message]


def test_document_unknown_key_is_named_with_the_known_ones() -> None:
    assert document_problems(with_name(cmd="x")) == [
        'cmd: unknown key "cmd"; use one of: from, name, description, model, workdir, include, '
        "users, install, copy, env, run, steps, entrypoint, expose, resources, network, metadata"
    ]


def test_document_unknown_user_field_is_named_with_the_known_ones() -> None:
    assert document_problems(with_name(users=[{"username": "bob", "home": "/x"}])) == [
        'users[0].home: unknown key "home"; use one of: username, passwd, ssh_authorized_keys, '
        "lock_passwd, sudo, shell, ssh_pwauth, disable_root, chpasswd_expire, groups"
    ]


@pytest.mark.parametrize("data", [[{"name": "web"}], "NAME web", None, 5])
def test_document_must_be_an_object(data: object) -> None:
    problems = document_problems(data)

    assert len(problems) == 1
    assert problems[0].startswith("the Formfile must be an object of keys and values, not ")


def test_document_collects_every_problem_in_one_pass() -> None:
    document = {
        "zzz": 1,
        "resources": {"vcpus": 0, "memory_mb": "x"},
        "expose": [80, 80],
        "run": ["ok", 5],
    }

    problems = document_problems(document)

    assert [problem.split(":")[0] for problem in problems] == [
        "zzz",
        "name",
        "run[1]",
        "expose[1]",
        "resources.vcpus",
        "resources.memory_mb",
    ]


# -- errors for callers --------------------------------------------------------------------


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


# -- rendering and round trips -------------------------------------------------------------


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


# -- choosing the form -----------------------------------------------------------------------


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


# -- limits ----------------------------------------------------------------------------------


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


# -- hostile documents (bounded work: see test_documents.py for the loader's own rules) -------


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
