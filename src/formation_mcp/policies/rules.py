"""Policy rules, pure: names, checks of what an admin sets, field-mask updates, the merge of
a caller's roles' defaults with its account's policy, and which tools a policy lets through.

A tool is matched by every name it answers to (canonical, aliases, host-safe MCP name), so a
pattern naming any of them covers the tool, and a call by any of them meets the same rules.
Matching ignores case."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from formation.mcp.v1 import policies_pb2

from formation_mcp.errors import InvalidArgument, PermissionDenied
from formation_mcp.permissions import ROLES

POLICY_SUFFIX = "/policy"
ACCOUNTS = "accounts/"
ROLES_PREFIX = "roles/"
QUOTAS = (
    "max_instances",
    "max_vcpus",
    "max_memory_mb",
    "max_disk_gb",
    "max_builds_per_hour",
    "max_running_operations",
)
PATTERN_LISTS = ("allow_tools", "deny_tools", "require_approval")
UPDATABLE = (*PATTERN_LISTS, "read_only", *QUOTAS, "tool_calls_per_minute")
MAX_PATTERNS = 100
"""Per list (and rate limits): a policy stays small enough to check on every call."""
_PATTERN = re.compile(r"\*|[A-Za-z0-9_.-]{1,128}\*?")
POLICY_DENIED = "POLICY_DENIED"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
RATE_LIMITED = "RATE_LIMITED"


def parse_policy_name(name: str, field: str = "name") -> str:
    """`accounts/{key_id}/policy` -> `accounts/{key_id}`; `roles/{role}/policy` ->
    `roles/{role}` (a known role)."""
    subject = name.removesuffix(POLICY_SUFFIX)
    if subject != name:
        for prefix in (ACCOUNTS, ROLES_PREFIX):
            rest = subject.removeprefix(prefix)
            if rest != subject and rest and "/" not in rest:
                if prefix == ROLES_PREFIX and rest not in ROLES:
                    raise InvalidArgument.for_field(
                        field, f"unknown role {rest!r}; roles are {', '.join(ROLES)}"
                    )
                return subject
    raise InvalidArgument.for_field(
        field, f"{name!r} is not a policy name: accounts/{{key_id}}/policy or roles/{{role}}/policy"
    )


def policy_name(subject: str) -> str:
    return subject + POLICY_SUFFIX


def check_policy(policy: policies_pb2.Policy, paths: Sequence[str]) -> None:
    """What an admin sets: patterns well-formed and few, limits not negative."""
    for field in PATTERN_LISTS:
        if field not in paths:
            continue
        patterns = list(getattr(policy, field))
        _check_patterns(f"policy.{field}", patterns)
    for quota in QUOTAS:
        if quota in paths and has(policy, quota) and getattr(policy, quota) < 0:
            raise InvalidArgument.for_field(
                f"policy.{quota}", "must be 0 or more (clear the field for no limit)"
            )
    if "tool_calls_per_minute" in paths:
        limits = dict(policy.tool_calls_per_minute)
        _check_patterns("policy.tool_calls_per_minute", list(limits))
        for pattern, calls in limits.items():
            if calls < 1:
                raise InvalidArgument.for_field(
                    f"policy.tool_calls_per_minute[{pattern}]",
                    "must be 1 or more calls per minute (deny_tools refuses a tool outright)",
                )


def _check_patterns(field: str, patterns: list[str]) -> None:
    if len(patterns) > MAX_PATTERNS:
        raise InvalidArgument.for_field(field, f"at most {MAX_PATTERNS} patterns")
    for index, pattern in enumerate(patterns):
        if not _PATTERN.fullmatch(pattern):
            raise InvalidArgument.for_field(
                f"{field}[{index}]",
                f"{pattern[:80]!r} is not a tool pattern: a tool name (vm.delete, "
                "form_pack_ship), a prefix ending in * (vm.*), or * alone",
            )


def update_paths(paths: Sequence[str]) -> list[str]:
    """The fields an update changes: the mask's (each one updatable), or all of them."""
    if not paths or list(paths) == ["*"]:
        return list(UPDATABLE)
    bad = [p for p in paths if p not in UPDATABLE]
    if bad:
        raise InvalidArgument.for_field(
            "update_mask", f"cannot update {', '.join(bad)}; updatable: {', '.join(UPDATABLE)}"
        )
    return list(dict.fromkeys(paths))


def apply_update(
    current: policies_pb2.Policy, given: policies_pb2.Policy, paths: Sequence[str]
) -> policies_pb2.Policy:
    """`current` with the fields in `paths` taken from `given` (unset there: cleared)."""
    updated = policies_pb2.Policy()
    updated.CopyFrom(current)
    for path in paths:
        updated.ClearField(path)  # type: ignore[arg-type]
        if path in PATTERN_LISTS:
            getattr(updated, path).extend(dict.fromkeys(getattr(given, path)))
        elif path == "tool_calls_per_minute":
            updated.tool_calls_per_minute.update(given.tool_calls_per_minute)
        elif has(given, path):
            setattr(updated, path, getattr(given, path))
    return updated


# -- merging ---------------------------------------------------------------------------------


def merge(
    name: str, roles: Sequence[policies_pb2.Policy], account: policies_pb2.Policy | None
) -> policies_pb2.Policy:
    """What applies to an account with these roles' defaults and its own policy: the
    account's own value of a field where it sets one; otherwise the roles' (the strictest:
    every non-empty allow list must allow a tool, the smallest limit, read-only if any role
    is); deny and approval patterns of all of them add up."""
    merged = policies_pb2.Policy(name=name)
    own = account or policies_pb2.Policy()
    for field in ("deny_tools", "require_approval"):
        patterns: dict[str, None] = {}
        for policy in (*roles, own):
            patterns.update(dict.fromkeys(getattr(policy, field)))
        getattr(merged, field).extend(patterns)
    if own.allow_tools:
        merged.allow_tools.extend(own.allow_tools)
    else:
        allow_lists = [list(p.allow_tools) for p in roles if p.allow_tools]
        merged.allow_tools.extend(_intersect(allow_lists))
        if allow_lists and not merged.allow_tools:
            merged.allow_tools.append("-")  # the roles' lists share no pattern: nothing allowed
    if own.HasField("read_only"):
        merged.read_only = own.read_only
    elif any(p.HasField("read_only") for p in roles):
        merged.read_only = any(p.read_only for p in roles)
    for quota in QUOTAS:
        if has(own, quota):
            setattr(merged, quota, getattr(own, quota))
            continue
        limits = [getattr(p, quota) for p in roles if has(p, quota)]
        if limits:
            setattr(merged, quota, min(limits))
    rates: dict[str, int] = {}
    for policy in roles:
        for pattern, calls in policy.tool_calls_per_minute.items():
            rates[pattern] = min(calls, rates.get(pattern, calls))
    rates.update(own.tool_calls_per_minute)
    merged.tool_calls_per_minute.update(rates)
    return merged


def _intersect(lists: list[list[str]]) -> list[str]:
    """Patterns every list has (by text): a tool must be allowed by each role's list."""
    if not lists:
        return []
    common = [p for p in lists[0] if all(p in other for other in lists[1:])]
    return list(dict.fromkeys(common))


# -- deciding ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What the rules look at in a tool: every name it answers to, and its annotation."""

    name: str
    names: tuple[str, ...]
    read_only: bool

    @classmethod
    def of(cls, name: str, other_names: Iterable[str], read_only: bool) -> ToolFacts:
        names = tuple(dict.fromkeys(n.casefold() for n in (name, *other_names)))
        return cls(name, names, read_only)


def matches(pattern: str, tool: ToolFacts) -> bool:
    wanted = pattern.casefold()
    if wanted == "*":
        return True
    if wanted.endswith("*"):
        prefix = wanted[:-1]
        return any(name.startswith(prefix) for name in tool.names)
    return wanted in tool.names


def first_match(patterns: Iterable[str], tool: ToolFacts) -> str | None:
    return next((p for p in patterns if matches(p, tool)), None)


def refusal(policy: policies_pb2.Policy, tool: ToolFacts) -> PermissionDenied | None:
    """Why the policy refuses a call of the tool (deny first, then the allow list, then
    read-only), or None when it may be called."""
    denied = first_match(policy.deny_tools, tool)
    if denied is not None:
        return _denied(
            policy,
            tool,
            "deny_tools",
            f"{tool.name} is denied by the policy (deny_tools: {denied}); use another tool "
            "or ask an admin to change the policy",
            pattern=denied,
        )
    if policy.allow_tools and first_match(policy.allow_tools, tool) is None:
        shown = ", ".join(list(policy.allow_tools)[:10])
        return _denied(
            policy,
            tool,
            "allow_tools",
            f"{tool.name} is not in the policy's allowed tools ({shown}); call one of those, "
            "or ask an admin to allow it",
        )
    if policy.read_only and not tool.read_only:
        return _denied(
            policy,
            tool,
            "read_only",
            f"the policy is read-only and {tool.name} changes things; only read-only tools "
            "may be called",
        )
    return None


def _denied(
    policy: policies_pb2.Policy, tool: ToolFacts, rule: str, message: str, pattern: str = ""
) -> PermissionDenied:
    metadata = {"rule": rule, "tool": tool.name, "policy": policy.name}
    if pattern:
        metadata["pattern"] = pattern
    return PermissionDenied(message, reason=POLICY_DENIED, metadata=metadata)


def calls_per_minute(policy: policies_pb2.Policy, tool: ToolFacts) -> tuple[str, int] | None:
    """The tightest rate limit whose pattern matches the tool: (pattern, calls)."""
    found = [
        (calls, pattern)
        for pattern, calls in policy.tool_calls_per_minute.items()
        if matches(pattern, tool)
    ]
    if not found:
        return None
    calls, pattern = min(found)
    return pattern, calls


def has_quota(policy: policies_pb2.Policy, quotas: Iterable[str]) -> bool:
    return any(has(policy, q) for q in quotas)


def has(policy: policies_pb2.Policy, field: str) -> bool:
    """Whether an optional field (read_only, a quota) is set."""
    return bool(policy.HasField(field))  # type: ignore[arg-type]
