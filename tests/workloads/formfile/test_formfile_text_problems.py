"""The Formfile's text form: every rule, with the line and what to fix."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    BOOLEAN_RULE,
    USERNAME_RULE,
    text_of,
    text_problems,
)


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
