"""The policies' tables: the policies themselves, each account's quota lock row, the quota
claims of admitted calls, the rate windows, and the usage counted over them."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from formation.mcp.v1 import policies_pb2
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.db.schema import (
    audit_log,
    instances,
    operations,
    policies,
    quota_claims,
    quota_locks,
    rate_windows,
)
from formation_mcp.policies.quotas import BUILD_WINDOW_US, Demand, Usage
from formation_mcp.policies.rate_count import RATE_WINDOW_US, RateCount, window_of


async def load_all(conn: AsyncConnection) -> dict[str, policies_pb2.Policy]:
    rows = await conn.execute(sa.select(policies))
    loaded: dict[str, policies_pb2.Policy] = {}
    for row in rows:
        policy = policies_pb2.Policy.FromString(row.policy)
        policy.update_time.FromMicroseconds(row.update_time)
        policy.update_account = row.update_account
        loaded[row.subject] = policy
    return loaded


async def version(conn: AsyncConnection) -> tuple[int, int]:
    """(how many policies, the latest change): changes when any policy changes."""
    row = (
        await conn.execute(sa.select(sa.func.count(), sa.func.max(policies.c.update_time)))
    ).one()
    return int(row[0]), int(row[1] or 0)


async def get(conn: AsyncConnection, subject: str) -> policies_pb2.Policy | None:
    row = (await conn.execute(sa.select(policies).where(policies.c.subject == subject))).first()
    if row is None:
        return None
    policy = policies_pb2.Policy.FromString(row.policy)
    policy.update_time.FromMicroseconds(row.update_time)
    policy.update_account = row.update_account
    return policy


async def save(
    conn: AsyncConnection, subject: str, policy: policies_pb2.Policy, now: int, account: str
) -> None:
    """Insert or replace (the caller holds the row: it read it FOR UPDATE, or it is new)."""
    stored = policies_pb2.Policy()
    stored.CopyFrom(policy)
    stored.ClearField("update_time")
    stored.ClearField("update_account")
    values = {
        "policy": stored.SerializeToString(deterministic=True),
        "update_time": now,
        "update_account": account,
    }
    insert = _insert(conn, policies).values(subject=subject, **values)
    await conn.execute(insert.on_conflict_do_update(index_elements=["subject"], set_=values))


async def lock_for_update(conn: AsyncConnection, subject: str) -> None:
    """Take the policy's row lock (PostgreSQL; SQLite writers take turns anyway)."""
    await conn.execute(
        sa.select(policies.c.subject).where(policies.c.subject == subject).with_for_update()
    )


async def audit(
    conn: AsyncConnection, *, time: int, account: str, what: str, digest: str, detail: str
) -> None:
    """A row of the audit trail tool calls use (`tool` names the RPC)."""
    await conn.execute(
        audit_log.insert().values(
            time=time,
            account=account,
            tool=what,
            arguments_sha256=digest,
            operation_id=None,
            request_id=None,
            outcome="UPDATED",
            detail=detail[:1000],
        )
    )


# -- quotas --------------------------------------------------------------------------------


async def lock_account(conn: AsyncConnection, account: str) -> None:
    """Make every admission that counts this account's usage take turns: an UPDATE of its
    lock row (a row lock held until the transaction ends, on PostgreSQL)."""
    await conn.execute(
        _insert(conn, quota_locks)
        .values(account=account, version=0)
        .on_conflict_do_nothing(index_elements=["account"])
    )
    await conn.execute(
        quota_locks.update()
        .where(quota_locks.c.account == account)
        .values(version=quota_locks.c.version + 1)
    )


async def insert_claim(
    conn: AsyncConnection, operation_id: str, account: str, demand: Demand, now: int
) -> None:
    await conn.execute(
        quota_claims.insert().values(
            operation_id=operation_id,
            account=account,
            instance_name=demand.instance_name,
            vcpus=demand.vcpus,
            memory_mb=demand.memory_mb,
            disk_gb=demand.disk_gb,
            build=demand.build,
            create_time=now,
        )
    )


async def prune_claims(conn: AsyncConnection, account: str, now: int) -> None:
    """Forget the account's claims older than the build window whose operation is done."""
    not_done = sa.select(operations.c.id).where(
        operations.c.owner == account, operations.c.done.is_(False)
    )
    await conn.execute(
        quota_claims.delete().where(
            quota_claims.c.account == account,
            quota_claims.c.create_time < now - BUILD_WINDOW_US,
            quota_claims.c.operation_id.not_in(not_done),
        )
    )


async def usage(conn: AsyncConnection, account: str, now: int) -> Usage:
    """What the account uses now: its live instances, the instances its admitted calls
    are creating (not counted twice), its builds of the last hour, its operations not done."""
    live = await conn.execute(
        sa.select(instances.c.name, instances.c.resources).where(
            instances.c.owner == account, instances.c.state != "deleted"
        )
    )
    names: set[str] = set()
    count = vcpus = memory = disk = 0
    for row in live:
        names.add(row.name)
        resources = _resources(row.resources)
        count += 1
        vcpus += resources.get("vcpus", 0)
        memory += resources.get("memory_mb", 0)
        disk += resources.get("disk_gb", 0)
    claimed = await conn.execute(
        sa.select(
            quota_claims.c.instance_name,
            quota_claims.c.vcpus,
            quota_claims.c.memory_mb,
            quota_claims.c.disk_gb,
        )
        .join(operations, operations.c.id == quota_claims.c.operation_id)
        .where(
            quota_claims.c.account == account,
            quota_claims.c.instance_name.is_not(None),
            operations.c.done.is_(False),
        )
    )
    for claim in claimed:
        if claim.instance_name in names:
            continue
        names.add(claim.instance_name)
        count += 1
        vcpus += claim.vcpus
        memory += claim.memory_mb
        disk += claim.disk_gb
    builds = await conn.scalar(
        sa.select(sa.func.count()).where(
            quota_claims.c.account == account,
            quota_claims.c.build.is_(True),
            quota_claims.c.create_time > now - BUILD_WINDOW_US,
        )
    )
    running = await conn.scalar(
        sa.select(sa.func.count()).where(
            operations.c.owner == account, operations.c.done.is_(False)
        )
    )
    return Usage(count, vcpus, memory, disk, int(builds or 0), int(running or 0))


def _resources(text: str) -> dict[str, int]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: int(v) for k, v in value.items() if isinstance(v, int)}


# -- rate windows ----------------------------------------------------------------------------


async def count_call(conn: AsyncConnection, account: str, tool: str, now: int) -> RateCount:
    """One more call in this minute's window; this window's calls (this one included) and the
    previous window's. The upsert is one statement: concurrent calls on any replica each get a
    distinct count."""
    start = window_of(now)
    upsert = (
        _insert(conn, rate_windows)
        .values(account=account, tool=tool, window_start=start, calls=1)
        .on_conflict_do_update(
            index_elements=["account", "tool", "window_start"],
            set_={"calls": rate_windows.c.calls + 1},
        )
        .returning(rate_windows.c.calls)
    )
    calls = int((await conn.execute(upsert)).scalar_one())
    if calls == 1:  # a new window: windows before the previous one are of no use any more
        await conn.execute(
            rate_windows.delete().where(
                rate_windows.c.account == account,
                rate_windows.c.tool == tool,
                rate_windows.c.window_start < start - RATE_WINDOW_US,
            )
        )
    previous = await _calls(conn, account, tool, start - RATE_WINDOW_US)
    return RateCount(current=calls, previous=previous, now_us=now)


async def calls_in_window(conn: AsyncConnection, account: str, tool: str, now: int) -> RateCount:
    """What count_call would count for one more call, without counting it."""
    start = window_of(now)
    return RateCount(
        current=await _calls(conn, account, tool, start) + 1,
        previous=await _calls(conn, account, tool, start - RATE_WINDOW_US),
        now_us=now,
    )


async def _calls(conn: AsyncConnection, account: str, tool: str, window_start: int) -> int:
    calls = await conn.scalar(
        sa.select(rate_windows.c.calls).where(
            rate_windows.c.account == account,
            rate_windows.c.tool == tool,
            rate_windows.c.window_start == window_start,
        )
    )
    return int(calls or 0)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT (with ON CONFLICT)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
