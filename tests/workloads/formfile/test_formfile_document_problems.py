"""The Formfile's document form: every rule, with the path and what to fix."""

from __future__ import annotations

import pytest
from tests.support.formfiles import (
    BOOLEAN_RULE,
    USERNAME_RULE,
    document_problems,
    with_name,
)


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
