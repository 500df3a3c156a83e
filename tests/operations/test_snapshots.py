"""The snapshot cache: a change notice drops only older entries; deletion leaves a tombstone
that a late put cannot get past."""

from __future__ import annotations

from dataclasses import replace

import pytest

from formation_mcp.operations import snapshots
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.lifecycle import OperationRecord, new_record
from formation_mcp.operations.snapshots import SnapshotCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def record(sequence: int, operation_id: str = "op-1") -> OperationRecord:
    return replace(new_record(operation_id, "accounts/a", "t", None, 1), sequence=sequence)


def cache_holding(held: OperationRecord) -> SnapshotCache:
    cache = SnapshotCache(max_entries=10, ttl_seconds=30.0)
    cache.put(held, to_operation(held))
    return cache


def test_a_notice_of_a_newer_change_drops_the_entry() -> None:
    cache = cache_holding(record(3))
    cache.discard_older("op-1", 4)
    assert cache.get("op-1") is None


def test_a_notice_of_a_change_the_entry_holds_keeps_it() -> None:
    cache = cache_holding(record(4))
    cache.discard_older("op-1", 4)
    snapshot = cache.get("op-1")
    assert snapshot is not None and snapshot.record.sequence == 4


def test_a_deleted_operation_is_gone_and_a_late_put_cannot_bring_it_back() -> None:
    cache = cache_holding(record(4))
    cache.deleted("op-1")
    cache.put(record(4), to_operation(record(4)))
    assert cache.get("op-1") is None


def test_a_tombstone_ends_with_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(snapshots, "time", clock)
    cache = SnapshotCache(max_entries=10, ttl_seconds=30.0)
    cache.deleted("op-1")
    clock.now += 31.0
    cache.put(record(4), to_operation(record(4)))
    assert cache.get("op-1") is not None


def test_tombstones_are_bounded_like_entries() -> None:
    cache = SnapshotCache(max_entries=2, ttl_seconds=30.0)
    for index in range(3):
        cache.deleted(f"op-{index}")
    cache.put(record(1, "op-0"), to_operation(record(1, "op-0")))
    assert cache.get("op-0") is not None  # its tombstone was the oldest and made room
