"""Quotas: what a call will use (its `Demand`, worked out by the tool that knows), what an
account uses now (`Usage`), and the quota a call would exceed.

Instances count while they are not deleted, and from the moment the call that creates one is
admitted (its claim, until its operation is done; by name, so an instance being created is
not counted twice). Builds count for an hour after their call was admitted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from formation.mcp.v1 import policies_pb2

from formation_mcp.errors import ResourceExhausted
from formation_mcp.policies.rules import QUOTA_EXCEEDED, QUOTAS, has

if TYPE_CHECKING:
    from formation_mcp.identity import Caller

INSTANCE_QUOTAS = ("max_instances", "max_vcpus", "max_memory_mb", "max_disk_gb")
BUILD_WINDOW_US = 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class Demand:
    """What one call will use once it has run."""

    instance_name: str | None = None
    """The instance it creates (None: it creates none)."""
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0
    build: bool = False


DemandOf = Callable[["Caller", dict[str, Any]], Awaitable[Demand]]
"""A tool's demand for a call's (valid) arguments; NOT_FOUND for a pack the caller cannot
see, like its placement."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What an account uses now (instances being created included)."""

    instances: int = 0
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0
    builds_last_hour: int = 0
    running_operations: int = 0

    def of(self, quota: str) -> int:
        return {
            "max_instances": self.instances,
            "max_vcpus": self.vcpus,
            "max_memory_mb": self.memory_mb,
            "max_disk_gb": self.disk_gb,
            "max_builds_per_hour": self.builds_last_hour,
            "max_running_operations": self.running_operations,
        }[quota]


def relevant(policy: policies_pb2.Policy, demand: Demand | None, long_running: bool) -> list[str]:
    """The quotas a call is checked against: those the policy sets that the call adds to."""
    wanted: list[str] = []
    if demand is not None and demand.instance_name is not None:
        wanted.extend(INSTANCE_QUOTAS)
    if demand is not None and demand.build:
        wanted.append("max_builds_per_hour")
    if long_running:
        wanted.append("max_running_operations")
    return [q for q in wanted if has(policy, q)]


def exceeded(
    policy: policies_pb2.Policy, quotas: list[str], usage: Usage, tool: str
) -> ResourceExhausted | None:
    """The first quota that `usage` (the call included) is over, as the error to raise."""
    for quota in quotas:
        limit = int(getattr(policy, quota))
        used = usage.of(quota)
        if used > limit:
            return ResourceExhausted(
                f"{tool} would exceed the policy's {quota} ({used} > {limit}); {_advice(quota)}",
                reason=QUOTA_EXCEEDED,
                metadata={
                    "quota": quota,
                    "limit": str(limit),
                    "usage": str(used),
                    "tool": tool,
                    "policy": policy.name,
                },
            )
    return None


def _advice(quota: str) -> str:
    if quota in INSTANCE_QUOTAS:
        return "delete an instance you no longer need (vm.delete), or ask an admin for more"
    if quota == "max_builds_per_hour":
        return "reuse a pack you built (its build_id), or wait for the hour to pass"
    return "wait for one of your operations to finish, or cancel one"


def usage_message(policy: policies_pb2.Policy, usage: Usage) -> list[policies_pb2.QuotaUsage]:
    return [
        policies_pb2.QuotaUsage(quota=q, limit=int(getattr(policy, q)), used=usage.of(q))
        for q in QUOTAS
        if has(policy, q)
    ]
