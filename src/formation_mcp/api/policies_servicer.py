"""PoliciesService: thin over `PolicyManager`."""

from __future__ import annotations

from formation.mcp.v1 import policies_pb2, policies_pb2_grpc

from formation_mcp.api.wrapping import Context
from formation_mcp.identity import current_caller
from formation_mcp.policies.manager import PolicyManager


class PoliciesServicer(policies_pb2_grpc.PoliciesServiceServicer):
    def __init__(self, policies: PolicyManager) -> None:
        self._policies = policies

    async def GetPolicy(
        self, request: policies_pb2.GetPolicyRequest, context: Context
    ) -> policies_pb2.Policy:
        return await self._policies.get(request.name)

    async def UpdatePolicy(
        self, request: policies_pb2.UpdatePolicyRequest, context: Context
    ) -> policies_pb2.Policy:
        return await self._policies.update(
            current_caller(), request.policy, list(request.update_mask.paths)
        )

    async def GetEffectivePolicy(
        self, request: policies_pb2.GetEffectivePolicyRequest, context: Context
    ) -> policies_pb2.EffectivePolicy:
        return await self._policies.effective(current_caller())
