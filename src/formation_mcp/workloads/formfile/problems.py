"""What is wrong with a Formfile: every problem found, each where it was found.

Problems are collected in one pass: every line and every document field is checked (a line
stops at its first bad value, except USER and NETWORK, which report each bad field), up to
`MAX_PROBLEMS`. `FormfileError.field_violations` turns them into BadRequest pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from formation_mcp.workloads.formfile.limits import MAX_PROBLEMS


@dataclass(frozen=True, slots=True)
class FormfileProblem:
    """One thing to fix: at a text `line`, at a document `path` (`resources.vcpus`), or overall."""

    message: str
    line: int | None = None
    path: str = ""

    @property
    def where(self) -> str:
        """`line 7`, `resources.memory_mb`, or "" for the Formfile as a whole."""
        return f"line {self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class FormfileError(ValueError):
    """The Formfile is not valid; `problems` lists everything found, in order."""

    def __init__(self, problems: Iterable[FormfileProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid Formfile")

    def field_violations(self, field_name: str = "formfile") -> list[tuple[str, str]]:
        """(field, description) pairs for a `BadRequest`.

        A document path becomes part of the field (`formfile.resources.vcpus`); a text line
        stays in the description (`line 7: ...`) with the field alone.
        """
        return [_violation(field_name, problem) for problem in self.problems]


def _violation(field_name: str, problem: FormfileProblem) -> tuple[str, str]:
    where = f"{field_name}.{problem.path}" if problem.path else field_name
    message = problem.message if problem.line is None else f"line {problem.line}: {problem.message}"
    return where, message


class Problems:
    """The problems found so far in one pass (at most `MAX_PROBLEMS`)."""

    def __init__(self) -> None:
        self.items: list[FormfileProblem] = []

    def add(self, message: str, *, line: int | None = None, path: str = "") -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(FormfileProblem(message, line=line, path=path))

    def raise_if_any(self) -> None:
        if self.items:
            raise FormfileError(self.items)


class Invalid(Exception):
    """A value is wrong; each message reads well after a keyword or a `path: `."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = messages


Report: TypeAlias = Callable[[str, str], None]  # (field, message)
