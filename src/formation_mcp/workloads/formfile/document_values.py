"""Reading a decoded document: objects, lists and maps, each bad entry reported at its path.

Each reader converts what it can and reports the rest to `Problems` with the document path of
the bad value (`resources.vcpus`, `steps[2].copy.from`), so one pass finds every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from formation_mcp.workloads.formfile.limits import MAX_ITEMS
from formation_mcp.workloads.formfile.problems import Invalid, Problems
from formation_mcp.workloads.formfile.values import kind_of, show, value_text

_T = TypeVar("_T")


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def convert_at(
    problems: Problems, path: str, value: object, convert: Callable[[object], _T]
) -> _T | None:
    try:
        return convert(value)
    except Invalid as exc:
        for message in exc.messages:
            problems.add(message, path=path)
        return None


def take(
    problems: Problems, path: str, value: object, convert: Callable[[object], _T]
) -> _T | None:
    """Like `convert_at`, but a missing (None) value is simply absent."""
    return None if value is None else convert_at(problems, path, value, convert)


def doc_object(
    problems: Problems,
    path: str,
    value: object,
    known: Sequence[str],
    required: Sequence[str] = (),
) -> dict[str, object] | None:
    """An object's known keys; unknown or missing required keys are reported."""
    if not isinstance(value, Mapping):
        problems.add(f"must be an object, not {kind_of(value)}", path=path)
        return None
    for key in value:
        if key not in known:
            message = f"unknown key {show(key)}; use one of: {', '.join(known)}"
            problems.add(message, path=_join(path, key))
    for key in required:
        if value.get(key) is None:
            problems.add("is required", path=_join(path, key))
    return {key: item for key, item in value.items() if key in known}


def doc_items(
    problems: Problems,
    path: str,
    value: object,
    build: Callable[[Problems, str, object], _T | None],
) -> list[_T]:
    """Each entry of a list built by `build`; a missing list is empty."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        problems.add(f"must be a list, not {kind_of(value)}", path=path)
        return []
    if len(value) > MAX_ITEMS:
        problems.add(f"has {len(value)} entries; use at most {MAX_ITEMS}", path=path)
        return []
    built = (build(problems, f"{path}[{index}]", item) for index, item in enumerate(value))
    return [item for item in built if item is not None]


def doc_list(
    problems: Problems, path: str, value: object, convert: Callable[[object], _T]
) -> tuple[_T, ...]:
    def build(problems: Problems, path: str, item: object) -> _T | None:
        return convert_at(problems, path, item, convert)

    return tuple(doc_items(problems, path, value, build))


def doc_pairs(
    problems: Problems, path: str, value: object, key_rule: Callable[[object], str]
) -> tuple[tuple[str, str], ...]:
    """A {key: value} object of strings, sorted by key."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        problems.add(f"must be an object, not {kind_of(value)}", path=path)
        return ()
    if len(value) > MAX_ITEMS:
        problems.add(f"has {len(value)} entries; use at most {MAX_ITEMS}", path=path)
        return ()
    pairs = []
    for key, item in value.items():
        where = _join(path, key)
        checked_key = convert_at(problems, where, key, key_rule)
        checked_value = convert_at(problems, where, item, value_text)
        if checked_key is not None and checked_value is not None:
            pairs.append((checked_key, checked_value))
    return tuple(sorted(pairs))
