"""A blocking facade over the async `Client`, for scripts and notebooks.

grpc.aio channels belong to one event loop, so the facade runs its own loop in a daemon thread
and hands every call to it; the async client's behaviour (deadlines, renewal, retries, the
error classes) is the same. Iterators (`operations.list`, `operations.watch`) are plain
iterators pulling one item at a time from the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from formation_mcp.client.client import Client, ProgressCallback
from formation_mcp.client.models import Account, Operation, Tool

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fmcp-sdk-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                self.run(closer())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class SyncClient:
    """The same API as `Client`, blocking. Use as `with SyncClient(...) as client:`; the
    arguments are `Client`'s."""

    def __init__(self, target: str, **options: Any) -> None:
        self._thread = _LoopThread()
        self._closed = False

        async def make() -> Client:
            return Client(target, **options)

        try:
            self._client = self._thread.run(make())
        except BaseException:
            self._thread.stop()
            raise
        self.tools = _SyncTools(self)
        self.operations = _SyncOperations(self)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the loop thread (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self._client.close())
        finally:
            self._thread.stop()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._thread.run(coroutine)

    def login(self) -> Account:
        return self._run(self._client.login())

    def whoami(self) -> Account:
        return self._run(self._client.whoami())

    def access_token(self) -> str:
        return self._run(self._client.access_token())

    def logout(self) -> None:
        self._run(self._client.logout())

    def call_and_wait(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """`on_progress` runs in the SDK's loop thread: keep it quick."""
        return self._run(
            self._client.call_and_wait(tool, arguments, on_progress=on_progress, timeout=timeout)
        )

    def build_workload(
        self,
        formfile: str,
        context_dir: str | Path | None = None,
        *,
        exclude: tuple[str, ...] = (),
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        return self._run(
            self._client.build_workload(
                formfile, context_dir, exclude=exclude, on_progress=on_progress
            )
        )

    def deploy_workload(
        self,
        build_id: str,
        instance_name: str,
        vm_config: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        return self._run(
            self._client.deploy_workload(
                build_id, instance_name, vm_config, on_progress=on_progress
            )
        )


class _SyncTools:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def list(self, filter: str = "") -> list[Tool]:
        return self._owner._run(self._owner._client.tools.list(filter))

    def get(self, name: str) -> Tool:
        return self._owner._run(self._owner._client.tools.get(name))

    def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> Operation:
        return self._owner._run(
            self._owner._client.tools.call(
                name, arguments, request_id=request_id, validate_only=validate_only
            )
        )


class _SyncOperations:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def get(self, name: str) -> Operation:
        return self._owner._run(self._owner._client.operations.get(name))

    def list(
        self,
        filter: str = "",
        *,
        page_size: int = 0,
        limit: int | None = None,
    ) -> Iterator[Operation]:
        return self._owner._thread.iterate(
            self._owner._client.operations.list(filter, page_size=page_size, limit=limit)
        )

    def cancel(self, name: str) -> Operation:
        return self._owner._run(self._owner._client.operations.cancel(name))

    def delete(self, name: str) -> None:
        self._owner._run(self._owner._client.operations.delete(name))

    def wait(self, name: str, timeout: float | None = None) -> Operation:
        return self._owner._run(self._owner._client.operations.wait(name, timeout))

    def watch(self, name: str, after_sequence: int = 0) -> Iterator[Operation]:
        return self._owner._thread.iterate(
            self._owner._client.operations.watch(name, after_sequence)
        )
