"""The tool registry: what each tool is (contract, schemas, annotations, permission) and the
executor that runs it. Later issues plug real tools in with `register()`; the runtime (Tools
service, worker) never changes for a new tool."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from formation_mcp.errors import FieldViolation, InvalidArgument, NotFound
from formation_mcp.policies.quotas import DemandOf
from formation_mcp.policies.rules import ToolFacts

if TYPE_CHECKING:
    from formation_mcp.identity import Caller
    from formation_mcp.tools.context import ToolContext

NAME_PREFIX = "tools/"
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_NOT_HOST_SAFE = re.compile(r"[^A-Za-z0-9_-]")
HOST_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Tool names every major MCP host accepts (Claude Desktop, Codex CLI, Copilot CLI): one name
outside it can hide a server's whole toolset there."""


def host_safe_name(name: str) -> str:
    """The name MCP lists a tool by: `pack.build` -> `pack_build` (dots and anything else
    outside HOST_SAFE_NAME become `_`, at most 64 characters). Calls accept it as an alias."""
    return _NOT_HOST_SAFE.sub("_", name)[:64]


MAX_VIOLATIONS = 50

Executor = Callable[["ToolContext", dict[str, Any]], Awaitable[dict[str, Any]]]
"""Runs a tool: gets validated arguments, reports progress through the context, returns the
output (a JSON object matching the output schema)."""
Precheck = Callable[[dict[str, Any]], None]
"""Checks what JSON Schema cannot (a Formfile's grammar) when the call is made, before
anything is queued; raises InvalidArgument naming the fields."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a call must run: the node that holds its resource, and that resource's name
    (resolved and authorized by the API, so the worker acts on exactly it)."""

    node: str
    resource: str


Placer = Callable[["Caller", dict[str, Any]], Awaitable[Placement]]
"""Resolves a call's target at call time (NOT_FOUND for what the caller may not see,
FAILED_PRECONDITION when its node is offline). A placed tool always runs on that node's
worker; a placed quick tool's call waits briefly for the result, so callers still get a done
operation."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    title: str
    description: str
    version: str
    category: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    long_running: bool = False
    admin_only: bool = False
    aliases: tuple[str, ...] = ()
    precheck: Precheck | None = field(default=None, repr=False, compare=False)
    placement: Placer | None = field(default=None, repr=False, compare=False)
    demand: DemandOf | None = field(default=None, repr=False, compare=False)
    """What a call will use (an instance, its resources, a build): counted against the
    caller's quotas when the call is admitted."""
    runs_long: Callable[[dict[str, Any]], bool] | None = field(
        default=None, repr=False, compare=False
    )
    """For a tool that is quick but for some arguments (vm.logs with `follow`): whether a call
    with these arguments is long-running (answered with its pending operation at once)."""
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    output_validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    facts: ToolFacts = field(init=False, repr=False, compare=False)
    """What policies match: every name the tool answers to, and its annotation."""
    takes_reason: bool = field(init=False, repr=False, compare=False)
    """Whether the input schema got the optional `reason` argument every tool accepts (it is
    the call's, for an approver: taken out before the tool runs)."""

    def __post_init__(self) -> None:
        if not _TOOL_NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r} must match [A-Za-z0-9_.-]{{1,128}}")
        schema, added = with_reason(self.input_schema)
        object.__setattr__(self, "input_schema", schema)
        object.__setattr__(self, "takes_reason", added)
        Draft202012Validator.check_schema(self.input_schema)
        Draft202012Validator.check_schema(self.output_schema)
        object.__setattr__(self, "validator", Draft202012Validator(self.input_schema))
        object.__setattr__(self, "output_validator", Draft202012Validator(self.output_schema))
        names = (*self.aliases, host_safe_name(self.name))
        object.__setattr__(self, "facts", ToolFacts.of(self.name, names, self.read_only))

    def long_running_for(self, arguments: dict[str, Any]) -> bool:
        return self.long_running or (self.runs_long is not None and self.runs_long(arguments))

    @property
    def permission(self) -> str:
        return f"tools.{self.name}"

    @property
    def resource_name(self) -> str:
        return NAME_PREFIX + self.name

    def violations(self, arguments: dict[str, Any]) -> list[FieldViolation]:
        """Every schema violation, by JSON path under `arguments`."""
        errors = sorted(self.validator.iter_errors(arguments), key=_error_order)
        return [_violation(error) for error in errors[:MAX_VIOLATIONS]]

    def validate(self, arguments: dict[str, Any]) -> None:
        violations = self.violations(arguments)
        if violations:
            summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:3])
            more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
            raise InvalidArgument(
                f"arguments do not match the input schema of {self.name}: {summary}{more}",
                reason="ARGUMENTS_INVALID",
                metadata={"tool": self.name, "violations": str(len(violations))},
                field_violations=violations,
            )
        if self.precheck is not None:
            self.precheck(arguments)


def _error_order(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(part) for part in error.absolute_path)


def _violation(error: ValidationError) -> FieldViolation:
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    return FieldViolation(f"arguments{path}", _describe(error), reason=str(error.validator).upper())


MAX_ECHOED_CHARS = 80


def _describe(error: ValidationError) -> str:
    """jsonschema's message, unless it would echo a long value back (errors travel in gRPC
    trailers, which are small): then what was wrong with it, without the value."""
    message = error.message
    if len(message) <= 2 * MAX_ECHOED_CHARS:
        return message
    instance = error.instance
    size = ""
    if isinstance(instance, str):
        size = f" of {len(instance)} characters"
    elif isinstance(instance, list | dict):
        size = f" of {len(instance)} items"
    rule = repr(error.validator_value)[:MAX_ECHOED_CHARS]
    return f"the {type(instance).__name__}{size} given fails {error.validator}: {rule}"


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    spec: ToolSpec
    executor: Executor


REASON_ARGUMENT: Final = "reason"
MAX_REASON_CHARS: Final = 500
_REASON_SCHEMA: Final = {
    "type": "string",
    "maxLength": MAX_REASON_CHARS,
    "description": "Optional: why you make this call, in a sentence. An approver reads it when "
    "the policy holds the call for a human approval.",
}


def with_reason(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`schema` with the optional `reason` argument, and whether it was added (not when the
    tool has a `reason` of its own, or takes no object)."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return schema, False
    if REASON_ARGUMENT in properties:
        return schema, False
    return {**schema, "properties": {**properties, REASON_ARGUMENT: _REASON_SCHEMA}}, True


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._aliases: dict[str, str] = {}

    def register(self, spec: ToolSpec, executor: Executor) -> None:
        """Under its name, its aliases and its host-safe name (when that differs)."""
        host_name = host_safe_name(spec.name)
        names = [spec.name, *spec.aliases, *([host_name] if host_name != spec.name else [])]
        for name in names:
            if name in self._tools or name in self._aliases:
                raise ValueError(f"tool name {name!r} is registered already")
        self._tools[spec.name] = RegisteredTool(spec, executor)
        for alias in names[1:]:
            self._aliases[alias] = spec.name

    def resolve(self, name: str) -> RegisteredTool:
        """By canonical name, alias or host-safe name; NOT_FOUND otherwise."""
        canonical = self._aliases.get(name, name)
        tool = self._tools.get(canonical)
        if tool is None:
            raise NotFound(
                f"no tool named {name!r}; ListTools shows the available ones",
                reason="TOOL_NOT_FOUND",
                metadata={"name": NAME_PREFIX + name},
            )
        return tool

    def resolve_resource(self, resource_name: str, field_name: str = "name") -> RegisteredTool:
        name = resource_name.removeprefix(NAME_PREFIX)
        if not resource_name or name == resource_name:
            raise InvalidArgument.for_field(
                field_name, f"{resource_name!r} is not a tool name; expected tools/{{tool}}"
            )
        return self.resolve(name)

    def specs(self, category: str | None = None) -> list[ToolSpec]:
        """Stable order: by name."""
        return sorted(
            (t.spec for t in self._tools.values() if category in (None, t.spec.category)),
            key=lambda spec: spec.name,
        )

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(self._tools.values())
