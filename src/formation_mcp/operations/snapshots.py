"""A bounded cache of operations as callers see them, for GetOperation and WaitOperation.

Entries are dropped on every change notice newer than them (this replica's own changes at
once, other replicas' through PostgreSQL NOTIFY within milliseconds), cleared when the
listener reconnects, and expire after a short TTL anyway (sweeps are not announced). A deleted
operation leaves a tombstone for as long, so that a late `put` cannot bring it back.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from google.longrunning import operations_pb2 as lro_pb2

from formation_mcp.operations.lifecycle import OperationRecord


@dataclass(frozen=True, slots=True)
class Snapshot:
    record: OperationRecord
    operation: lro_pb2.Operation
    expires: float


class SnapshotCache:
    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._entries: OrderedDict[str, Snapshot] = OrderedDict()
        self._deleted: OrderedDict[str, float] = OrderedDict()
        """Recently deleted operations, until when."""
        self._max = max_entries
        self._ttl = ttl_seconds

    def get(self, operation_id: str) -> Snapshot | None:
        if self._tombstone(operation_id):
            return None
        snapshot = self._entries.get(operation_id)
        if snapshot is None:
            return None
        if snapshot.expires < time.monotonic():
            del self._entries[operation_id]
            return None
        return snapshot

    def put(self, record: OperationRecord, operation: lro_pb2.Operation) -> None:
        if self._max <= 0 or self._tombstone(record.id):
            return
        self._entries[record.id] = Snapshot(record, operation, time.monotonic() + self._ttl)
        self._entries.move_to_end(record.id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, operation_id: str) -> None:
        self._entries.pop(operation_id, None)

    def discard_older(self, operation_id: str, sequence: int) -> None:
        """A change `sequence` was committed: drop the entry unless it already holds it."""
        snapshot = self._entries.get(operation_id)
        if snapshot is not None and snapshot.record.sequence < sequence:
            del self._entries[operation_id]

    def deleted(self, operation_id: str) -> None:
        self._entries.pop(operation_id, None)
        if self._max <= 0:
            return
        self._deleted[operation_id] = time.monotonic() + self._ttl
        self._deleted.move_to_end(operation_id)
        while len(self._deleted) > self._max:
            self._deleted.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def _tombstone(self, operation_id: str) -> bool:
        until = self._deleted.get(operation_id)
        if until is None:
            return False
        if until < time.monotonic():
            del self._deleted[operation_id]
            return False
        return True
