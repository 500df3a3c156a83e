"""PolicyManager: reads and changes policies (admins), tells each caller what applies to it,
and answers the Tools service's questions at call time: may this caller call this tool, is it
within its rate limit, and (inside the transaction that admits the call) within its quotas.

Every server keeps every policy in memory (there are few), so the per-call checks read no
database unless the policy sets a rate limit or quota the call is subject to. A change is
announced on the change bus (topic `policy`) and, as a fallback for servers sharing SQLite
without a bus, every server also checks the table's version every `refresh_seconds`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from formation.mcp.v1 import policies_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import PermissionDenied, ResourceExhausted
from formation_mcp.identity import Caller
from formation_mcp.policies import rules, store
from formation_mcp.policies.quotas import Demand, Usage, exceeded, usage_message
from formation_mcp.policies.rules import ToolFacts

log = logging.getLogger(__name__)

TOPIC = "policy"
REFRESH_SECONDS = 0.5
MERGED_CACHE_ENTRIES = 10_000
"""Callers' merged policies kept at most (emptied when full, or when any policy changes)."""
UPDATE_POLICY = "PoliciesService.UpdatePolicy"


@dataclass(frozen=True, slots=True)
class QuotaCheck:
    """What the admission of one call checks and records, in its transaction."""

    account: str
    policy: policies_pb2.Policy
    quotas: tuple[str, ...]
    demand: Demand | None
    tool: str


class PolicyManager:
    def __init__(
        self, database: Database, bus: ChangeBus, *, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self._db = database
        self._bus = bus
        self._refresh_seconds = refresh_seconds
        self._policies: dict[str, policies_pb2.Policy] = {}
        self._merged: dict[tuple[str, frozenset[str]], policies_pb2.Policy] = {}
        self._version: tuple[int, int] = (0, 0)
        self._reload: asyncio.Task[None] | None = None
        bus.subscribe(TOPIC, self._on_notice, self._schedule_reload)

    # -- keeping up to date ---------------------------------------------------------------

    async def load(self) -> None:
        async with self._db.read() as conn:
            current = await store.version(conn)
            loaded = await store.load_all(conn)
        self._policies = loaded
        self._merged = {}
        self._version = current

    async def run(self) -> None:
        """Reload whenever the table changed (a change another server made without a bus)."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                async with self._db.read() as conn:
                    current = await store.version(conn)
                if current != self._version:
                    await self.load()
            except Exception:
                log.warning("could not check the policies for changes", exc_info=True)

    def _on_notice(self, _payload: str) -> None:
        self._schedule_reload()

    def _schedule_reload(self) -> None:
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._safe_load())

    async def _safe_load(self) -> None:
        try:
            await self.load()
        except Exception:
            log.warning("could not reload the policies", exc_info=True)

    # -- the API ----------------------------------------------------------------------------

    async def get(self, name: str) -> policies_pb2.Policy:
        subject = rules.parse_policy_name(name)
        async with self._db.read() as conn:
            policy = await store.get(conn, subject)
        return policy or policies_pb2.Policy(name=rules.policy_name(subject))

    async def update(
        self, caller: Caller, given: policies_pb2.Policy, mask: Sequence[str]
    ) -> policies_pb2.Policy:
        subject = rules.parse_policy_name(given.name, "policy.name")
        paths = rules.update_paths(mask)
        rules.check_policy(given, paths)
        now = now_us()
        async with self._db.write() as conn:
            await store.lock_for_update(conn, subject)
            current = await store.get(conn, subject) or policies_pb2.Policy(
                name=rules.policy_name(subject)
            )
            updated = rules.apply_update(current, given, paths)
            updated.name = rules.policy_name(subject)
            await store.save(conn, subject, updated, now, caller.account)
            serialized = updated.SerializeToString(deterministic=True)
            await store.audit(
                conn,
                time=now,
                account=caller.account,
                what=UPDATE_POLICY,
                digest=hashlib.sha256(serialized).hexdigest(),
                detail=f"{updated.name}: {','.join(paths)}",
            )
            await self._bus.announce_in_transaction(conn, TOPIC, subject)
        updated.update_time.FromMicroseconds(now)
        updated.update_account = caller.account
        self._policies[subject] = updated
        self._merged = {}
        self._bus.committed(TOPIC, subject)
        return updated

    def for_caller(self, caller: Caller) -> policies_pb2.Policy:
        """The merged rules that apply to the caller (cached until a policy changes)."""
        key = (caller.account, caller.roles)
        merged = self._merged.get(key)
        if merged is None:
            roles = [
                self._policies[f"roles/{role}"]
                for role in sorted(caller.roles)
                if f"roles/{role}" in self._policies
            ]
            merged = rules.merge(
                rules.policy_name(caller.account), roles, self._policies.get(caller.account)
            )
            if len(self._merged) >= MERGED_CACHE_ENTRIES:
                self._merged.clear()
            self._merged[key] = merged
        return merged

    def sources(self, caller: Caller) -> list[str]:
        subjects = [f"roles/{role}" for role in sorted(caller.roles)] + [caller.account]
        return [rules.policy_name(s) for s in subjects if s in self._policies]

    async def effective(self, caller: Caller) -> policies_pb2.EffectivePolicy:
        policy = self.for_caller(caller)
        async with self._db.read() as conn:
            usage = await store.usage(conn, caller.account, now_us())
        return policies_pb2.EffectivePolicy(
            policy=policy, sources=self.sources(caller), usage=usage_message(policy, usage)
        )

    # -- at call time --------------------------------------------------------------------------

    def refusal(self, caller: Caller, tool: ToolFacts) -> PermissionDenied | None:
        return rules.refusal(self.for_caller(caller), tool)

    async def count_call(self, caller: Caller, tool: ToolFacts, *, dry_run: bool) -> None:
        """RESOURCE_EXHAUSTED (with the delay until a call fits) when this call is over the
        tool's calls per minute (a sliding minute: rate_count.py); counts it otherwise
        (`dry_run`: only looks; a refused call counts too, so hammering keeps it refused)."""
        limit = rules.calls_per_minute(self.for_caller(caller), tool)
        if limit is None:
            return
        pattern, allowed = limit
        now = now_us()
        if dry_run:
            async with self._db.read() as conn:
                count = await store.calls_in_window(conn, caller.account, tool.name, now)
        else:
            async with self._db.write() as conn:
                count = await store.count_call(conn, caller.account, tool.name, now)
        if count.over(allowed):
            retry = count.retry_seconds(allowed)
            raise ResourceExhausted(
                f"{tool.name} may be called {allowed} times a minute under the policy "
                f"(tool_calls_per_minute: {pattern}); retry in {retry:.0f}s",
                reason=rules.RATE_LIMITED,
                metadata={
                    "rule": "tool_calls_per_minute",
                    "pattern": pattern,
                    "limit": str(allowed),
                    "tool": tool.name,
                    "policy": self.for_caller(caller).name,
                },
                retry_after_seconds=max(retry, 0.001),
            )

    async def check_quotas(self, check: QuotaCheck) -> None:
        """validate_only: whether the call would fit now (nothing locked or recorded)."""
        async with self._db.read() as conn:
            usage = await store.usage(conn, check.account, now_us())
        with_call = _plus(usage, check.demand)
        error = exceeded(check.policy, list(check.quotas), with_call, check.tool)
        if error is not None:
            raise error

    async def admit(self, conn: AsyncConnection, operation_id: str, check: QuotaCheck) -> None:
        """In the transaction that inserted the call's operation: take the account's lock
        row, record the call's claim, count the usage (this call and every call committed
        before the lock was ours included) and refuse (raise, rolling everything back) when
        a quota is exceeded. Concurrent admissions of one account take turns on the lock, so
        ten calls racing for the last instance admit exactly one."""
        now = now_us()
        await store.lock_account(conn, check.account)
        if check.demand is not None and (check.demand.instance_name or check.demand.build):
            await store.insert_claim(conn, operation_id, check.account, check.demand, now)
        usage = await store.usage(conn, check.account, now)
        error = exceeded(check.policy, list(check.quotas), usage, check.tool)
        if error is not None:
            raise error
        await store.prune_claims(conn, check.account, now)

    async def close(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload


def _plus(usage: Usage, demand: Demand | None) -> Usage:
    if demand is None:
        return replace(usage, running_operations=usage.running_operations + 1)
    adds_instance = demand.instance_name is not None
    return replace(
        usage,
        instances=usage.instances + (1 if adds_instance else 0),
        vcpus=usage.vcpus + (demand.vcpus if adds_instance else 0),
        memory_mb=usage.memory_mb + (demand.memory_mb if adds_instance else 0),
        disk_gb=usage.disk_gb + (demand.disk_gb if adds_instance else 0),
        builds_last_hour=usage.builds_last_hour + (1 if demand.build else 0),
        running_operations=usage.running_operations + 1,
    )
