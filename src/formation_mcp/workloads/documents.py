"""Loading a Formfile document (JSON or YAML) with bounded work.

A document arrives as text of at most the Formfile's size cap (the caller checks that
first). Within it, YAML aliases can repeat a collection any number of times: nine anchors of
nine aliases each, about 300 bytes, stand for 9**9 values, and anything that walks the result
as a tree (serializing it for an error message, say) does that much work. So the document's
shape is checked before it is built:

- YAML is read twice with libyaml when PyYAML has it (else PyYAML's pure-Python reader). The
  first pass only counts parser events: nesting depth, aliases, and values, where an alias
  counts as every value it repeats (its anchor's expanded size, nested aliases included), and
  an alias may not name a collection that contains it. It stops at the first limit passed,
  with the line. Only a document within the limits is then built, by PyYAML's safe loader.
- JSON is decoded by the standard library (C, no aliases), then walked iteratively to check
  the same depth and value limits.
- Values the loaders cannot build (a number over Python's 4,300-digit conversion limit, a
  date like 2020-02-30) are problems to fix, not crashes.

Limits: `MAX_DEPTH` nested collections, `MAX_VALUES` values, `MAX_ALIASES` aliases. A Formfile
needs a handful of levels and at most a few thousand values; worst-case input within the
limits loads in tens of milliseconds.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

from formation_mcp.previews import preview

MAX_DEPTH: Final = 32
MAX_VALUES: Final = 10_000
MAX_ALIASES: Final = 100
MAX_PROBLEMS: Final = 100
_DETAIL_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """What is wrong, at a 1-based `line` (YAML) or under a top-level key `path` (JSON)."""

    message: str
    line: int | None = None
    path: str = ""


class DocumentError(Exception):
    """The document cannot be loaded; `problems` says why and where."""

    def __init__(self, problems: Iterable[DocumentProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problem.message for problem in self.problems))


def _fail(message: str, line: int | None = None, path: str = "") -> DocumentError:
    return DocumentError([DocumentProblem(message, line, path)])


def _too_deep(form: str) -> str:
    return f"the {form} is nested too deeply (more than {MAX_DEPTH} levels); flatten it"


def _too_many_values(form: str) -> str:
    return (
        f"the {form} has more than {MAX_VALUES} values (an alias counts as every value it"
        " repeats); a Formfile needs far fewer"
    )


def _unreadable(form: str, exc: Exception) -> str:
    if "integer string conversion" in str(exc):
        digits = sys.get_int_max_str_digits()
        return f"the {form} has a number with more than {digits} digits; shorten it"
    return f"the {form} has a value that cannot be read: {_detail(exc)}"


# -- JSON --------------------------------------------------------------------------------------


def load_json(text: str) -> object:
    """Decode a JSON document: duplicate keys, depth and size are problems."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        data: object = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        message = f"the JSON is not valid: {exc.msg} (column {exc.colno})"
        raise _fail(message, exc.lineno) from None
    except RecursionError:
        raise _fail(_too_deep("JSON")) from None
    except ValueError as exc:  # a number over the int conversion limit
        raise _fail(_unreadable("JSON", exc)) from None
    if duplicates:
        raise DocumentError(
            DocumentProblem(f"key {preview(key)} appears more than once; give it once")
            for key in duplicates[:MAX_PROBLEMS]
        )
    _check_shape(data)
    return data


def _check_shape(data: object) -> None:
    """Depth and value count of decoded JSON, walked without recursion."""
    values = 0
    stack: list[tuple[object, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, top = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise _fail(_too_many_values("JSON"), path=top)
        if isinstance(value, Mapping | list):
            if depth + 1 > MAX_DEPTH:
                raise _fail(_too_deep("JSON"), path=top)
            children = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, child in children:
                stack.append((child, depth + 1, top or str(key)))


# -- YAML --------------------------------------------------------------------------------------


def load_yaml(text: str) -> object:
    """Decode a YAML document once its shape is known to be within the limits."""
    yaml = _yaml_module()
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_events(yaml, yaml.parse(text, Loader=loader))
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise DocumentError([_yaml_problem(exc)]) from None
    except RecursionError:
        raise _fail(_too_deep("YAML")) from None
    except (ValueError, OverflowError) as exc:  # a 5,000-digit number, a 30th of February
        raise _fail(_unreadable("YAML", exc)) from None


def _yaml_module() -> ModuleType:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        message = "YAML Formfiles need PyYAML, which is not installed; send JSON or the text form"
        raise _fail(message) from None


def _yaml_problem(exc: Exception) -> DocumentProblem:
    mark: object = getattr(exc, "problem_mark", None)
    line: object = getattr(mark, "line", None)
    detail: object = getattr(exc, "problem", None) or exc
    message = f"the YAML is not valid: {_detail(detail)}"
    return DocumentProblem(message, line=line + 1 if isinstance(line, int) else None)


def _detail(cause: object) -> str:
    text = str(cause)
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


@dataclass(slots=True)
class _Open:
    """A collection being read: its anchor, the values counted before it, its depth, and the
    deepest level reached inside it (aliases included)."""

    anchor: str | None
    values_before: int
    depth: int
    deepest: int


@dataclass(frozen=True, slots=True)
class _Anchored:
    """What an alias to this anchor repeats: `values` values, `height` levels deep."""

    values: int
    height: int


class _ShapeCheck:
    def __init__(self) -> None:
        self.values = 0
        self.aliases = 0
        self.open: list[_Open] = []
        self.anchors: dict[str, _Anchored] = {}

    def scalar(self, anchor: str | None, line: int) -> None:
        self._count(1, 0, line)
        if anchor is not None:
            self.anchors[anchor] = _Anchored(1, 0)

    def start(self, anchor: str | None, line: int) -> None:
        depth = len(self.open) + 1
        if depth > MAX_DEPTH:
            raise _fail(_too_deep("YAML"), line)
        self.open.append(_Open(anchor, self.values, depth, depth))
        self._count(1, 0, line)

    def end(self) -> None:
        done = self.open.pop()
        if self.open:
            self.open[-1].deepest = max(self.open[-1].deepest, done.deepest)
        if done.anchor is not None:
            height = done.deepest - done.depth + 1
            self.anchors[done.anchor] = _Anchored(self.values - done.values_before, height)

    def alias(self, anchor: str, line: int) -> None:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            message = f"the YAML has more than {MAX_ALIASES} aliases; write the values out"
            raise _fail(message, line)
        if any(frame.anchor == anchor for frame in self.open):
            message = (
                f"the alias *{anchor[:40]} is inside the collection it names;"
                " a Formfile may not contain itself"
            )
            raise _fail(message, line)
        repeated = self.anchors.get(anchor, _Anchored(1, 0))  # unknown: the loader says so
        self._count(repeated.values, repeated.height, line)

    def _count(self, values: int, height: int, line: int) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            raise _fail(_too_many_values("YAML"), line)
        depth = len(self.open) + height
        if depth > MAX_DEPTH:
            raise _fail(_too_deep("YAML"), line)
        if self.open:
            self.open[-1].deepest = max(self.open[-1].deepest, depth)


def _check_events(yaml: ModuleType, events: Iterator[Any]) -> None:
    """Count the parser's events against the limits (see the module docs)."""
    check = _ShapeCheck()
    starts = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
    ends = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
    for event in events:
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.ScalarEvent):
            check.scalar(event.anchor, line)
        elif isinstance(event, starts):
            check.start(event.anchor, line)
        elif isinstance(event, ends):
            check.end()
        elif isinstance(event, yaml.AliasEvent):
            check.alias(event.anchor, line)
