"""A document's build steps: an explicit `steps` list, or the keys of the older form.

A document gives the steps either as an explicit `steps` list (`{"run": cmd}`,
`{"copy": {"from", "to"}}`, `{"install": [pkg...]}`, `{"env": {"key", "value", "scope"?}}`,
`{"user": {...}}`) or through the keys `users`, `install`, `copy`, `env` and `run`, never
both. Those keys become steps in the fixed order users, install (one step with all packages),
copy, env (sorted by key, system scope), run, each in list order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from formation_mcp.workloads.formfile.document_values import (
    convert_at,
    doc_items,
    doc_list,
    doc_object,
    doc_pairs,
    take,
)
from formation_mcp.workloads.formfile.parts import (
    SYSTEM_SCOPE,
    USER_FIELDS,
    CopyStep,
    EnvStep,
    InstallStep,
    RunStep,
    Step,
    User,
    UserStep,
)
from formation_mcp.workloads.formfile.problems import Problems
from formation_mcp.workloads.formfile.values import (
    context_path,
    env_key,
    env_scope,
    image_path,
    one_line,
    package,
    user_from_values,
    value_text,
)

_STEP_KEYS: Final = ("run", "copy", "install", "env", "user")
_LEGACY_STEP_KEYS: Final = ("users", "install", "copy", "env", "run")


def _doc_user(problems: Problems, path: str, value: object) -> User | None:
    data = doc_object(problems, path, value, USER_FIELDS)
    if data is None:
        return None

    def report(name: str, message: str) -> None:
        problems.add(message, path=f"{path}.{name}")

    return user_from_values(data, report)


def _doc_copy(problems: Problems, path: str, value: object) -> CopyStep | None:
    data = doc_object(problems, path, value, ("from", "to"), required=("from", "to"))
    if data is None or data.get("from") is None or data.get("to") is None:
        return None
    source = convert_at(problems, f"{path}.from", data["from"], context_path)
    destination = convert_at(problems, f"{path}.to", data["to"], image_path)
    if source is None or destination is None:
        return None
    return CopyStep(source, destination)


def _doc_env(problems: Problems, path: str, value: object) -> EnvStep | None:
    data = doc_object(problems, path, value, ("key", "value", "scope"), required=("key",))
    if data is None or data.get("key") is None:
        return None
    key = convert_at(problems, f"{path}.key", data["key"], env_key)
    raw_value = data.get("value")
    text = convert_at(problems, f"{path}.value", "" if raw_value is None else raw_value, value_text)
    scope = take(problems, f"{path}.scope", data.get("scope"), env_scope) or SYSTEM_SCOPE
    if key is None or text is None:
        return None
    return EnvStep(key, text, scope)


def _doc_install(problems: Problems, path: str, value: object) -> InstallStep | None:
    if isinstance(value, list | tuple) and not value:
        problems.add("needs at least one package", path=path)
        return None
    packages = doc_list(problems, path, value, package)
    return InstallStep(packages) if packages else None


def _doc_run(problems: Problems, path: str, value: object) -> RunStep | None:
    command = convert_at(problems, path, value, one_line)
    return None if command is None else RunStep(command)


_DOC_STEP_BUILDERS: Final[Mapping[str, Callable[[Problems, str, object], Step | None]]] = {
    "run": _doc_run,
    "copy": _doc_copy,
    "install": _doc_install,
    "env": _doc_env,
    "user": lambda problems, path, value: _user_step(_doc_user(problems, path, value)),
}


def _user_step(user: User | None) -> UserStep | None:
    return None if user is None else UserStep(user)


def _doc_step(problems: Problems, path: str, value: object) -> Step | None:
    data = doc_object(problems, path, value, _STEP_KEYS)
    if data is None:
        return None
    if len(data) != 1:
        problems.add(f"must have exactly one of {', '.join(_STEP_KEYS)}", path=path)
        return None
    [(kind, body)] = data.items()
    return _DOC_STEP_BUILDERS[kind](problems, f"{path}.{kind}", body)


def legacy_steps(problems: Problems, document: Mapping[str, object]) -> tuple[Step, ...]:
    """The users/install/copy/env/run keys as steps, in that fixed order."""
    steps: list[Step] = []
    steps.extend(
        UserStep(user) for user in doc_items(problems, "users", document.get("users"), _doc_user)
    )
    packages = doc_list(problems, "install", document.get("install"), package)
    if packages:
        steps.append(InstallStep(packages))
    steps.extend(doc_items(problems, "copy", document.get("copy"), _doc_copy))
    env = doc_pairs(problems, "env", document.get("env"), env_key)
    steps.extend(EnvStep(key, value) for key, value in env)
    steps.extend(RunStep(c) for c in doc_list(problems, "run", document.get("run"), one_line))
    return tuple(steps)


def doc_steps(problems: Problems, document: Mapping[str, object]) -> tuple[Step, ...]:
    if document.get("steps") is None:
        return legacy_steps(problems, document)
    legacy = [key for key in _LEGACY_STEP_KEYS if document.get(key) is not None]
    if legacy:
        problems.add(f"use either steps or {', '.join(legacy)}, not both", path="steps")
    return tuple(doc_items(problems, "steps", document["steps"], _doc_step))
