"""`client.policies`: an account's or a role's policy (admins read and change them) and what
applies to the caller itself, with its usage of each quota; and the approvers' decisions on
calls a policy makes wait (`client.operations.approve / deny`).

    policy = await client.policies.update("accounts/KID", deny_tools=["vm.delete"],
                                          max_instances=2)
    mine = await client.policies.effective()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    policies_pb2,
    policies_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import field_mask_pb2

from formation_mcp.client.models import Operation, _Plain, _time
from formation_mcp.policies.rules import PATTERN_LISTS, QUOTAS

if TYPE_CHECKING:
    from formation_mcp.client.client import Client


def policy_resource(name: str) -> str:
    """`accounts/KID/policy` or `roles/ROLE/policy` from a name with or without `/policy`
    (a bare key id is an account's)."""
    name = name.strip().removesuffix("/policy")
    if not name.startswith(("accounts/", "roles/")):
        name = f"accounts/{name}"
    return f"{name}/policy"


@dataclass(frozen=True, slots=True)
class Policy(_Plain):
    """A policy; a quota or `read_only` of None is not set (no rule)."""

    name: str
    allow_tools: list[str] = field(default_factory=list)
    deny_tools: list[str] = field(default_factory=list)
    require_approval: list[str] = field(default_factory=list)
    read_only: bool | None = None
    max_instances: int | None = None
    max_vcpus: int | None = None
    max_memory_mb: int | None = None
    max_disk_gb: int | None = None
    max_builds_per_hour: int | None = None
    max_running_operations: int | None = None
    tool_calls_per_minute: dict[str, int] = field(default_factory=dict)
    update_time: datetime | None = None
    update_account: str = ""

    @classmethod
    def from_proto(cls, policy: policies_pb2.Policy) -> Policy:
        optional: dict[str, Any] = {
            name: getattr(policy, name) if policy.HasField(name) else None  # type: ignore[arg-type]
            for name in ("read_only", *QUOTAS)
        }
        return cls(
            name=policy.name,
            allow_tools=list(policy.allow_tools),
            deny_tools=list(policy.deny_tools),
            require_approval=list(policy.require_approval),
            tool_calls_per_minute=dict(policy.tool_calls_per_minute),
            update_time=_time(policy.update_time),
            update_account=policy.update_account,
            **optional,
        )


@dataclass(frozen=True, slots=True)
class QuotaUsage(_Plain):
    quota: str
    limit: int
    used: int


@dataclass(frozen=True, slots=True)
class EffectivePolicy(_Plain):
    """What applies to the caller: the merged rules, the policies merged, the usage."""

    policy: Policy
    sources: list[str]
    usage: list[QuotaUsage]

    @classmethod
    def from_proto(cls, effective: policies_pb2.EffectivePolicy) -> EffectivePolicy:
        return cls(
            policy=Policy.from_proto(effective.policy),
            sources=list(effective.sources),
            usage=[QuotaUsage(u.quota, u.limit, u.used) for u in effective.usage],
        )


class PoliciesAPI:
    """`client.policies`: read and change policies (admins); what applies to the caller."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> policies_pb2_grpc.PoliciesServiceAsyncStub:
        return policies_pb2_grpc.PoliciesServiceStub(self._client.channel)

    async def get(self, name: str) -> Policy:
        """`accounts/KID` (or a key id) or `roles/ROLE`; an unset policy is empty."""
        policy: policies_pb2.Policy = await self._client.unary(
            self._stub().GetPolicy,
            policies_pb2.GetPolicyRequest(name=policy_resource(name)),
            idempotent=True,
        )
        return Policy.from_proto(policy)

    async def update(self, name: str, **changes: Any) -> Policy:
        """Set the fields given (e.g. `deny_tools=["vm.*"], max_instances=2`); a field given
        as None is cleared (no rule); the others stay as they are."""
        message = policies_pb2.Policy(name=policy_resource(name))
        for path, value in changes.items():
            if value is None:
                continue
            if path in PATTERN_LISTS:
                getattr(message, path).extend(value)
            elif path == "tool_calls_per_minute":
                message.tool_calls_per_minute.update(value)
            else:
                setattr(message, path, value)
        policy: policies_pb2.Policy = await self._client.unary(
            self._stub().UpdatePolicy,
            policies_pb2.UpdatePolicyRequest(
                policy=message, update_mask=field_mask_pb2.FieldMask(paths=list(changes))
            ),
            idempotent=True,
        )
        return Policy.from_proto(policy)

    async def effective(self) -> EffectivePolicy:
        """The rules that apply to the caller and its usage of each quota they set."""
        effective: policies_pb2.EffectivePolicy = await self._client.unary(
            self._stub().GetEffectivePolicy,
            policies_pb2.GetEffectivePolicyRequest(),
            idempotent=True,
        )
        return EffectivePolicy.from_proto(effective)


async def decide(client: Client, name: str, comment: str, *, approve: bool) -> Operation:
    """ApproveOperation or DenyOperation (`client.operations.approve / deny`)."""
    resource = name if name.startswith("operations/") else f"operations/{name}"
    stub = operations_pb2_grpc.OperationsServiceStub(client.channel)
    operation: lro_pb2.Operation
    if approve:
        operation = await client.unary(
            stub.ApproveOperation,
            operations_pb2.ApproveOperationRequest(name=resource, comment=comment),
            idempotent=False,
        )
    else:
        operation = await client.unary(
            stub.DenyOperation,
            operations_pb2.DenyOperationRequest(name=resource, comment=comment),
            idempotent=False,
        )
    return Operation.from_proto(operation)
