"""A blocking facade over the async `Client`, for scripts and notebooks.

grpc.aio channels belong to one event loop, so the facade runs its own loop in a daemon thread
and hands every call to it; the async client's behaviour (deadlines, renewal, retries, the
error classes) is the same. Iterators (`operations.list`, `operations.watch`) are plain
iterators pulling one item at a time from the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_pb2 as lro_pb2

from formation_mcp.client.client import Client, ProgressCallback
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.credentials import TokenSource
from formation_mcp.client.grants import ConsoleLink
from formation_mcp.client.models import (
    Account,
    AuthorizationRequest,
    Event,
    Grant,
    Operation,
    Tool,
)
from formation_mcp.client.policies import EffectivePolicy, Policy
from formation_mcp.client.retry import RetryPolicy

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
    arguments are `Client`'s. (tests/client/test_sdk_sync.py fails when a public member of
    `Client`, `client.tools`, `client.operations` or `client.events` has no counterpart
    here.)"""

    def __init__(self, target: str, **options: Any) -> None:
        self._open(lambda: Client(target, **options))

    @classmethod
    def from_config(cls, config: ClientConfig, **options: Any) -> SyncClient:
        """`Client.from_config`, blocking: the CLI's target, key file and cached sessions."""
        client = cls.__new__(cls)
        client._open(lambda: Client.from_config(config, **options))
        return client

    def _open(self, make_client: Callable[[], Client]) -> None:
        self._thread = _LoopThread()
        self._closed = False

        async def make() -> Client:
            return make_client()

        try:
            self._client = self._thread.run(make())
        except BaseException:
            self._thread.stop()
            raise
        self.tools = _SyncTools(self)
        self.operations = _SyncOperations(self)
        self.grants = _SyncGrants(self)
        self.events = _SyncEvents(self)
        self.authorizations = _SyncAuthorizations(self)
        self.policies = _SyncPolicies(self)

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

    @property
    def target(self) -> str:
        return self._client.target

    @property
    def deadline(self) -> float:
        return self._client.deadline

    @deadline.setter
    def deadline(self, seconds: float) -> None:
        self._client.deadline = seconds

    @property
    def retry(self) -> RetryPolicy:
        return self._client.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self._client.retry = policy

    @property
    def channel(self) -> grpc.aio.Channel:
        """The client's grpc.aio channel, for stubs whose calls go through `unary`: it belongs
        to the SDK's loop thread, where `unary` runs them."""

        async def opened() -> grpc.aio.Channel:
            return self._client.channel

        return self._run(opened())

    @property
    def token_source(self) -> TokenSource:
        """The client's token source (its `session`; its coroutines belong to the loop thread)."""
        return self._client.token_source

    def unary(
        self,
        call: Callable[..., Awaitable[T]],
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
        authenticated: bool = True,
    ) -> T:
        """`Client.unary`, for a method of a stub made on `channel`."""

        async def unary() -> T:
            return await self._client.unary(
                call,
                request,
                idempotent=idempotent,
                timeout=timeout,
                authenticated=authenticated,
            )

        return self._run(unary())

    def stream_operations(self, name: str, after_sequence: int = 0) -> Iterator[lro_pb2.Operation]:
        return self._thread.iterate(self._client.stream_operations(name, after_sequence))

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
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """`on_progress` runs in the SDK's loop thread: keep it quick."""
        return self._run(
            self._client.call_and_wait(
                tool, arguments, on_progress=on_progress, timeout=timeout, request_id=request_id
            )
        )

    def follow(
        self,
        operation: Operation,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        from_start: bool = False,
    ) -> Operation:
        """`on_progress` runs in the SDK's loop thread: keep it quick."""
        return self._run(
            self._client.follow(
                operation, on_progress=on_progress, timeout=timeout, from_start=from_start
            )
        )

    def build_workload(
        self,
        formfile: str,
        context_dir: str | Path | None = None,
        *,
        exclude: tuple[str, ...] = (),
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return self._run(
            self._client.build_workload(
                formfile, context_dir, exclude=exclude, on_progress=on_progress, timeout=timeout
            )
        )

    def deploy_workload(
        self,
        build_id: str,
        instance_name: str,
        vm_config: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return self._run(
            self._client.deploy_workload(
                build_id, instance_name, vm_config, on_progress=on_progress, timeout=timeout
            )
        )

    def instance_metrics(
        self, instance: str, window: str = "15m", step: str | None = None
    ) -> dict[str, Any]:
        return self._run(self._client.instance_metrics(instance, window, step))

    def recommendations(self, instance: str | None = None, window: str = "1h") -> dict[str, Any]:
        return self._run(self._client.recommendations(instance, window))

    def expose(
        self,
        instance: str,
        *,
        port: int | None = None,
        path: str | None = None,
        auth: str = "public",
    ) -> dict[str, Any]:
        return self._run(self._client.expose(instance, port=port, path=path, auth=auth))

    def unexpose(self, instance: str, path: str | None = None) -> dict[str, Any]:
        return self._run(self._client.unexpose(instance, path))

    def routes(self, all_users: bool = False) -> dict[str, Any]:
        return self._run(self._client.routes(all_users))

    def instance_logs(
        self,
        instance: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        stream: str | None = None,
        cursor: str | None = None,
        max_bytes: int | None = None,
        follow: bool = False,
        duration: str | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return self._run(
            self._client.instance_logs(
                instance,
                tail=tail,
                since=since,
                stream=stream,
                cursor=cursor,
                max_bytes=max_bytes,
                follow=follow,
                duration=duration,
                on_progress=on_progress,
                timeout=timeout,
            )
        )

    def instance_events(
        self, instance: str, *, filter: str = "", page_size: int = 0, cursor: str = ""
    ) -> dict[str, Any]:
        return self._run(
            self._client.instance_events(
                instance, filter=filter, page_size=page_size, cursor=cursor
            )
        )


class _SyncEvents:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def list(
        self,
        filter: str = "",
        *,
        page_size: int = 0,
        limit: int | None = None,
        all_users: bool = False,
    ) -> Iterator[Event]:
        return self._owner._thread.iterate(
            self._owner._client.events.list(
                filter, page_size=page_size, limit=limit, all_users=all_users
            )
        )

    def watch(
        self, filter: str = "", *, after: str = "", all_users: bool = False
    ) -> Iterator[Event]:
        return self._owner._thread.iterate(
            self._owner._client.events.watch(filter, after=after, all_users=all_users)
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
        wait: float = 0.0,
        reason: str = "",
    ) -> Operation:
        return self._owner._run(
            self._owner._client.tools.call(
                name,
                arguments,
                request_id=request_id,
                validate_only=validate_only,
                wait=wait,
                reason=reason,
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

    def approve(self, name: str, comment: str = "") -> Operation:
        return self._owner._run(self._owner._client.operations.approve(name, comment))

    def deny(self, name: str, comment: str) -> Operation:
        return self._owner._run(self._owner._client.operations.deny(name, comment))

    def delete(self, name: str) -> None:
        self._owner._run(self._owner._client.operations.delete(name))

    def wait(self, name: str, timeout: float | None = None) -> Operation:
        return self._owner._run(self._owner._client.operations.wait(name, timeout))

    def watch(self, name: str, after_sequence: int = 0) -> Iterator[Operation]:
        return self._owner._thread.iterate(
            self._owner._client.operations.watch(name, after_sequence)
        )


class _SyncGrants:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def list(
        self, filter: str = "", *, page_size: int = 0, limit: int | None = None
    ) -> Iterator[Grant]:
        return self._owner._thread.iterate(
            self._owner._client.grants.list(filter, page_size=page_size, limit=limit)
        )

    def revoke(self, name: str) -> Grant:
        return self._owner._run(self._owner._client.grants.revoke(name))

    def console_link(self) -> ConsoleLink:
        return self._owner._run(self._owner._client.grants.console_link())


class _SyncAuthorizations:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def get(self, code: str) -> AuthorizationRequest:
        return self._owner._run(self._owner._client.authorizations.get(code))

    def approve(
        self, code: str, *, scope: str | None = None, shown: AuthorizationRequest | None = None
    ) -> AuthorizationRequest:
        return self._owner._run(
            self._owner._client.authorizations.approve(code, scope=scope, shown=shown)
        )

    def deny(self, code: str, *, shown: AuthorizationRequest | None = None) -> AuthorizationRequest:
        return self._owner._run(self._owner._client.authorizations.deny(code, shown=shown))


class _SyncPolicies:
    def __init__(self, owner: SyncClient) -> None:
        self._owner = owner

    def get(self, name: str) -> Policy:
        return self._owner._run(self._owner._client.policies.get(name))

    def update(self, name: str, **changes: Any) -> Policy:
        return self._owner._run(self._owner._client.policies.update(name, **changes))

    def effective(self) -> EffectivePolicy:
        return self._owner._run(self._owner._client.policies.effective())
