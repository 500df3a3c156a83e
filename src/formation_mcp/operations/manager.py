"""The Operations domain service: what callers may do with operations, and the internal API
(create, apply an event, finish) the rest of the system uses."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from formation.mcp.internal.v1 import queue_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp import paging
from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from formation_mcp.identity import Caller
from formation_mcp.operations import lifecycle, store
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.feeds import FeedHub, OperationDeleted
from formation_mcp.operations.filtering import Comparison, FilterError, parse_filter
from formation_mcp.operations.ids import new_operation_id, operation_name, parse_operation_name
from formation_mcp.operations.lifecycle import Change, OperationRecord
from formation_mcp.operations.snapshots import SnapshotCache
from formation_mcp.operations.storable import make_storable
from formation_mcp.permissions import OPERATIONS_APPROVE

_MAX_CONFLICT_RETRIES = 20
SNAPSHOT_TTL_SECONDS = 30.0
CancelHook = Callable[[AsyncConnection, str], Awaitable[None]]
"""Runs in the transaction that flags a running operation's cancellation (the outbox)."""
DoneHook = Callable[[AsyncConnection, Sequence[OperationRecord]], Awaitable[Callable[[], None]]]
"""Runs last in a transaction that ends operations (the events of their outcome); what it
returns runs after the commit."""
TOPIC = "operation"
_DELETED = "deleted"


class OperationManager:
    def __init__(
        self,
        database: Database,
        hub: FeedHub,
        bus: ChangeBus,
        wait_max: float,
        *,
        snapshot_cache_size: int = 0,
        on_cancel_requested: CancelHook | None = None,
        on_cancel_committed: Callable[[], None] | None = None,
        on_done: DoneHook | None = None,
    ) -> None:
        """`snapshot_cache_size` > 0 caches what callers read; only for servers whose bus
        delivers every replica's changes (never in a worker process). `on_cancel_requested`
        runs in the transaction that flags a running operation's cancellation, and
        `on_cancel_committed` after it commits (the outbox: enqueue the cancel, then send it).
        `on_done` runs last in every transaction that ends operations."""
        self._on_done = on_done
        self._on_cancel_requested = on_cancel_requested
        self._on_cancel_committed = on_cancel_committed
        self._snapshots = SnapshotCache(snapshot_cache_size, SNAPSHOT_TTL_SECONDS)
        self._db = database
        self._hub = hub
        self._bus = bus
        self._wait_max = wait_max
        bus.subscribe(TOPIC, self._on_change, self._on_resync)

    def _on_resync(self) -> None:
        self._snapshots.clear()
        self._hub.resync()

    def _on_change(self, payload: str) -> None:
        operation_id, _, sequence = payload.partition(":")
        if sequence == _DELETED:
            self._snapshots.deleted(operation_id)
            self._hub.deleted(operation_id)
        elif sequence.isdigit():
            self._snapshots.discard_older(operation_id, int(sequence))
            self._hub.changed(operation_id, int(sequence))
        else:
            self._snapshots.discard(operation_id)

    async def _announce(
        self, conn: AsyncConnection, operation_id: str, sequence: int | None
    ) -> str:
        payload = _payload(operation_id, sequence)
        await self._bus.announce_in_transaction(conn, TOPIC, payload)
        return payload

    # -- internal API ---------------------------------------------------------------------

    async def create(
        self,
        owner: str,
        tool: str,
        *,
        request_id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> OperationRecord:
        """A new PENDING operation. Pass `conn` to write it in the caller's transaction."""
        record = new_record(owner, tool, request_id)
        if conn is not None:
            await store.insert_many(conn, [record])
            return record
        async with self._db.write() as own:
            await store.insert_many(own, [record])
        return record

    @contextlib.asynccontextmanager
    async def admitting(
        self, created: Sequence[tuple[OperationRecord, lro_pb2.Operation]]
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction that writes these new operations (made by `new_record`, each with
        `to_operation` of it); the caller writes what goes with them on the connection it
        gets. Once that commits, and before the caller hands their work to the broker (so
        nothing can have changed them yet), the waits and reads that follow a call start
        from the snapshot cache."""
        async with self._db.write() as conn:
            await store.insert_many(conn, [record for record, _operation in created])
            yield conn
        for record, operation in created:
            self._snapshots.put(record, operation)

    async def apply_event(self, event: queue_pb2.OperationEvent) -> OperationRecord | None:
        """Apply a worker's event; duplicates and stale events change nothing.
        Returns the operation afterwards, or None when it does not exist (any more).
        The event's strings are made storable first (in place; see `storable`)."""
        operation_id = parse_operation_name(event.operation, "operation")
        make_storable(event)
        return await self._mutate(operation_id, lambda r: lifecycle.apply_event(r, event, now_us()))

    async def apply_events(self, events: Sequence[queue_pb2.OperationEvent]) -> None:
        """Apply many workers' events in one transaction, in the order given (a batch of the
        event stream). Duplicates and stale events change nothing; events of operations that
        do not exist (any more) are skipped. The operations are locked while the batch is
        written, so no other writer can slip in between the read and the write.
        The events' strings are made storable first (in place; see `storable`)."""
        by_operation: dict[str, list[queue_pb2.OperationEvent]] = {}
        for event in events:
            operation_id = parse_operation_name(event.operation, "operation")
            make_storable(event)
            by_operation.setdefault(operation_id, []).append(event)
        for attempt in range(_MAX_CONFLICT_RETRIES):
            try:
                await self._apply_batch(by_operation)
                return
            except store.ConcurrentChange:
                await asyncio.sleep(0.001 * (attempt + 1))
        raise Aborted(
            f"{len(by_operation)} operations are changing too fast; retry",
            reason="OPERATION_CONTENDED",
        )

    async def _apply_batch(self, by_operation: dict[str, list[queue_pb2.OperationEvent]]) -> None:
        async with self._db.write() as conn:
            records = await store.get_many(conn, list(by_operation), for_update=True)
            writes = []
            now = now_us()
            for operation_id, operation_events in by_operation.items():
                record = records.get(operation_id)
                if record is None:
                    continue
                changes = []
                for event in operation_events:
                    change = lifecycle.apply_event(record, event, now)
                    if change is not None:
                        changes.append(change)
                        record = change.record
                if changes:
                    writes.append(store.Write(records[operation_id].sequence, changes))
            if not writes:
                return
            written = await store.save_locked(conn, writes)
            payloads = [
                _payload(write.changes[-1].record.id, write.changes[-1].record.sequence)
                for write in writes
            ]
            await self._bus.announce_many_in_transaction(conn, TOPIC, payloads)
            ended = [
                next(change.record for change in write.changes if change.record.done)
                for write in writes
                if write.changes[-1].record.done
            ]
            after = await self._ended(conn, ended)
        self._committed(written, payloads)
        after()

    async def finish(
        self,
        operation_id: str,
        *,
        result: queue_pb2.OperationEvent.Succeeded | None = None,
        error: status_pb2.Status | None = None,
    ) -> OperationRecord | None:
        """End an operation from the API side (a quick tool, a dead letter)."""

        def change(record: OperationRecord) -> Change | None:
            event = queue_pb2.OperationEvent(
                operation=operation_name(operation_id),
                attempt=max(record.event_attempt, record.attempt, 1),
                sequence=record.event_sequence + 1,
            )
            if error is not None:
                event.failed.error.CopyFrom(error)
            else:
                event.succeeded.CopyFrom(result or queue_pb2.OperationEvent.Succeeded())
            make_storable(event)
            return lifecycle.apply_event(record, event, now_us())

        return await self._mutate(operation_id, change)

    async def transition(
        self,
        operation_id: str,
        decide: Callable[[OperationRecord], Change | None],
        also: Callable[[AsyncConnection, Change], Awaitable[None]] | None = None,
    ) -> OperationRecord | None:
        """Apply a change `decide` makes (e.g. an approval) with optimistic concurrency;
        `also` runs in the same transaction after it is written. The operation afterwards
        (unchanged when `decide` returned None), or None when it does not exist."""
        return await self._mutate(operation_id, decide, also)

    async def visible_record(self, caller: Caller, name: str) -> OperationRecord:
        """The operation the caller may see (NOT_FOUND otherwise), read now."""
        return await self._visible(caller, parse_operation_name(name))

    async def by_request_id(self, owner: str, request_id: str) -> OperationRecord | None:
        async with self._db.read() as conn:
            return await store.get_by_request_id(conn, owner, request_id)

    async def record(self, operation_id: str) -> OperationRecord | None:
        async with self._db.read() as conn:
            return await store.get(conn, operation_id)

    # -- caller-facing ----------------------------------------------------------------------

    async def get(self, caller: Caller, name: str) -> lro_pb2.Operation:
        operation_id = parse_operation_name(name)
        snapshot = self._snapshots.get(operation_id)
        if snapshot is not None:
            if not may_read(caller, snapshot.record):
                raise _not_found(operation_id)
            return snapshot.operation
        record = await self._visible(caller, operation_id, reading=True)
        operation = to_operation(record)
        self._snapshots.put(record, operation)
        return operation

    async def list(
        self, caller: Caller, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[lro_pb2.Operation], str]:
        size = paging.page_size(page_size)
        rest, awaiting_mine = _awaiting_my_approval(filter_text)
        try:
            comparisons = parse_filter(rest)
        except FilterError as exc:
            raise InvalidArgument.for_field("filter", exc.message) from None
        owner = None if caller.is_admin else caller.account
        not_owner = None
        if awaiting_mine:  # what this approver may decide on: others' calls waiting for one
            if not caller.can(OPERATIONS_APPROVE):
                raise InvalidArgument.for_field(
                    "filter", "awaiting_my_approval is for approvers (role approver, admins)"
                )
            owner, not_owner = None, caller.account
            comparisons = (*comparisons, Comparison("state", "=", "AWAITING_APPROVAL"))
        key = paging.query_key(caller.account, str(caller.is_admin), filter_text.strip())
        before = paging.decode_token(page_token, key) if page_token else None
        async with self._db.read() as conn:
            records = await store.list_page(
                conn,
                owner=owner,
                comparisons=comparisons,
                before_id=before,
                limit=size + 1,
                not_owner=not_owner,
            )
        page = records[:size]
        next_token = paging.encode_token(page[-1].id, key) if len(records) > size else ""
        return [to_operation(r) for r in page], next_token

    async def cancel(self, caller: Caller, name: str) -> lro_pb2.Operation:
        operation_id = parse_operation_name(name)
        await self._visible(caller, operation_id)
        record = await self._mutate(
            operation_id, lambda r: lifecycle.request_cancel(r, now_us()), self._cancel_requested
        )
        if record is None:
            raise _not_found(operation_id)
        if record.cancel_requested and not record.done and self._on_cancel_committed is not None:
            self._on_cancel_committed()
        return to_operation(record)

    async def delete(self, caller: Caller, name: str) -> None:
        operation_id = parse_operation_name(name)
        async with self._db.write() as conn:
            record = await store.get(conn, operation_id)
            if record is None or not caller.can_see(record.owner):
                raise _not_found(operation_id)
            if not record.done:
                raise FailedPrecondition(
                    f"{operation_name(operation_id)} is still running; cancel it first, "
                    "or wait until it is done",
                    reason="OPERATION_NOT_DONE",
                    metadata={"name": operation_name(operation_id)},
                )
            await store.delete(conn, operation_id)
            payload = await self._announce(conn, operation_id, None)
        self._bus.committed(TOPIC, payload)

    async def wait(self, caller: Caller, name: str, timeout: float | None) -> lro_pb2.Operation:
        operation_id = parse_operation_name(name)
        limit = self._wait_max if not timeout or timeout <= 0 else min(timeout, self._wait_max)
        deadline = time.monotonic() + limit
        async with self._hub.subscribe(operation_id) as subscription:
            record = await self._current(caller, operation_id)
            subscription.start_at(record.sequence)
            if record.done:
                return to_operation(record)
            cursor = record.sequence
            while time.monotonic() < deadline:
                try:
                    changes = await subscription.changes_after(cursor, deadline - time.monotonic())
                except OperationDeleted:
                    raise _not_found(operation_id) from None
                if changes:
                    cursor = changes[-1][0]
                    if changes[-1][1].done:
                        break
            if cursor == record.sequence:
                return to_operation(record)
            cached = self._snapshots.get(operation_id)
            if cached is not None and cached.record.sequence >= cursor:
                return cached.operation
            latest = await self.record(operation_id)  # with its recent log lines
            if latest is None:
                raise _not_found(operation_id)
            return to_operation(latest)

    async def watch(
        self, caller: Caller, name: str, after_sequence: int
    ) -> AsyncIterator[lro_pb2.Operation]:
        """The snapshot (or the changes after `after_sequence`), then every later change."""
        if after_sequence < 0:
            raise InvalidArgument.for_field("after_sequence", "must not be negative")
        operation_id = parse_operation_name(name)
        async with self._hub.subscribe(operation_id) as subscription:
            record = await self._visible(caller, operation_id, reading=True)
            subscription.start_at(record.sequence)
            if after_sequence > record.sequence:
                raise InvalidArgument.for_field(
                    "after_sequence",
                    f"{after_sequence} is past the latest change ({record.sequence}); pass a "
                    "sequence this operation has reached, or 0 for a fresh snapshot",
                )
            if after_sequence == 0 or (record.done and after_sequence == record.sequence):
                yield to_operation(record)
                if record.done:
                    return
            cursor = after_sequence or record.sequence
            while True:
                try:
                    changes = await subscription.changes_after(cursor)
                except OperationDeleted:
                    raise _not_found(operation_id) from None
                for sequence, operation in changes:
                    yield operation
                    if operation.done:
                        return
                    cursor = sequence

    # -- helpers ------------------------------------------------------------------------

    async def _current(self, caller: Caller, operation_id: str) -> OperationRecord:
        """The operation from the snapshot cache, or read (for waiters: a change committed
        meanwhile reaches them through their feed either way)."""
        snapshot = self._snapshots.get(operation_id)
        if snapshot is None:
            return await self._visible(caller, operation_id, reading=True)
        if not may_read(caller, snapshot.record):
            raise _not_found(operation_id)
        return snapshot.record

    async def _visible(
        self, caller: Caller, operation_id: str, *, reading: bool = False
    ) -> OperationRecord:
        """The operation if the caller may act on it (its owner, an admin), or with `reading`
        may read it (also an approver, a call held for an approval); NOT_FOUND otherwise."""
        record = await self.record(operation_id)
        allowed = record is not None and (
            may_read(caller, record) if reading else caller.can_see(record.owner)
        )
        if record is None or not allowed:
            raise _not_found(operation_id)
        return record

    async def _cancel_requested(self, conn: AsyncConnection, change: Change) -> None:
        """A running operation was flagged: tell its worker, in the same transaction."""
        if self._on_cancel_requested is not None and not change.record.done:
            await self._on_cancel_requested(conn, change.record.id)

    async def _mutate(
        self,
        operation_id: str,
        decide: Callable[[OperationRecord], Change | None],
        also: Callable[[AsyncConnection, Change], Awaitable[None]] | None = None,
    ) -> OperationRecord | None:
        """Apply `decide` with optimistic concurrency: re-read and retry when another writer
        (another replica) changed the operation in between. `also` runs in the same
        transaction after the change is written."""
        for attempt in range(_MAX_CONFLICT_RETRIES):
            async with self._db.write() as conn:
                record = await store.get(conn, operation_id)
                if record is None:
                    return None
                change = decide(record)
                if change is None:
                    return record
                snapshot = await store.save_change(conn, record.sequence, change)
                if snapshot is not None:
                    payload = await self._announce(conn, operation_id, change.record.sequence)
                    if also is not None:
                        await also(conn, change)
                    ended = [change.record] if change.record.done and not record.done else []
                    after = await self._ended(conn, ended)
            if snapshot is not None:
                self._committed([(change, snapshot)], [payload])
                after()
                return change.record
            await asyncio.sleep(0.001 * (attempt + 1))
        raise Aborted(
            f"{operation_name(operation_id)} is changing too fast; retry",
            reason="OPERATION_CONTENDED",
            metadata={"name": operation_name(operation_id)},
        )

    async def _ended(
        self, conn: AsyncConnection, ended: Sequence[OperationRecord]
    ) -> Callable[[], None]:
        if not ended or self._on_done is None:
            return _nothing
        return await self._on_done(conn, ended)

    def _committed(
        self, written: Sequence[tuple[Change, lro_pb2.Operation]], payloads: Sequence[str]
    ) -> None:
        """After the commit: this process's watchers get the snapshots at once (no database
        read), finished operations go to the snapshot cache (nothing changes them any more but
        deletion, which leaves a tombstone there), then the change notices run (caches, and
        watchers that were behind)."""
        for change, snapshot in written:
            self._hub.local_change(change.record.id, change.record.sequence, snapshot)
            if change.record.done:
                self._snapshots.put(change.record, to_operation(change.record))
        for payload in payloads:
            self._bus.committed(TOPIC, payload)


def _nothing() -> None:
    return None


def new_record(owner: str, tool: str, request_id: str | None) -> OperationRecord:
    """A PENDING operation with a fresh id, not written yet."""
    return lifecycle.new_record(new_operation_id(), owner, tool, request_id, now_us())


_AWAITING_MINE = re.compile(
    r"(?:^|\s+AND\s+)awaiting_my_approval\s*=\s*true(?=\s+AND\s+|\s*$)", re.IGNORECASE
)


def _awaiting_my_approval(filter_text: str) -> tuple[str, bool]:
    """The filter without its `awaiting_my_approval = true` term, and whether it had one."""
    rest, found = _AWAITING_MINE.subn("", filter_text.strip(), count=1)
    rest = rest.strip()
    if rest.upper().startswith("AND "):
        rest = rest[4:]
    return rest, bool(found)


def _payload(operation_id: str, sequence: int | None) -> str:
    """A change notice: the operation and its new sequence, or `deleted`."""
    return f"{operation_id}:{_DELETED if sequence is None else sequence}"


def _not_found(operation_id: str) -> NotFound:
    name = operation_name(operation_id)
    return NotFound(f"{name} not found", reason="OPERATION_NOT_FOUND", metadata={"name": name})


def may_read(caller: Caller, record: OperationRecord) -> bool:
    """Its owner and admins read an operation; approvers too when it was held for an
    approval (what they decide on, and what came of it)."""
    return caller.can_see(record.owner) or (
        record.approval is not None and caller.can(OPERATIONS_APPROVE)
    )
