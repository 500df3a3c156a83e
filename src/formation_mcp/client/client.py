"""The async SDK: `Client` over the generated stubs.

    async with Client("127.0.0.1:50051", key_file="~/.config/fmcp/key.pem") as client:
        tools = await client.tools.list()
        result = await client.call_and_wait("pack.build", {"formfile": ...}, on_progress=print)

Every call carries a deadline (`deadline` seconds unless the method takes its own timeout).
With a key the client logs in on first use, refreshes the access token before it expires, and
on UNAUTHENTICATED renews it once (refresh, else a new login) and repeats the call. UNAVAILABLE
is retried with backoff (`RetryPolicy`) for calls that are safe to repeat; a watch that loses
its stream resumes after the last sequence it saw. Errors are `formation_mcp.client.errors`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import empty_pb2

from formation_mcp.client.auth import bearer
from formation_mcp.client.calls import (
    CREATED_SEQUENCE,
    FIRST_WAIT_SECONDS,
    LONGEST_WAIT_SECONDS,
    ProgressCallback,
    new_request_id,
    notify,
    operation_resource,
    result_of,
    tool_resource,
)
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.credentials import TokenSource, key_from_env, load_key
from formation_mcp.client.errors import (
    DeadlineExceeded,
    FmcpClientError,
    Unauthenticated,
    Unavailable,
    error_from_rpc,
)
from formation_mcp.client.events import EventsAPI
from formation_mcp.client.grants import AuthorizationsAPI, GrantsAPI
from formation_mcp.client.models import Account, Operation
from formation_mcp.client.policies import PoliciesAPI
from formation_mcp.client.retry import RetryPolicy
from formation_mcp.client.services import OperationsAPI, ToolsAPI
from formation_mcp.client.session import SessionStore
from formation_mcp.client.workloads import pack_context

T = TypeVar("T")
DEFAULT_DEADLINE_SECONDS = 30.0
CHANNEL_OPTIONS = (
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
"""Reconnect quickly after the server comes back, so our own retries find it; accept large
answers (the server bounds what it sends)."""


class Client:
    """One connection to a Formation MCP server. Use as `async with`, or call `close()`."""

    def __init__(
        self,
        target: str,
        *,
        key: Ed25519PrivateKey | bytes | str | Path | None = None,
        key_file: str | Path | None = None,
        token: str | None = None,
        session_store: SessionStore | None = None,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        retry: RetryPolicy | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`key` is a key object, PEM or raw bytes, or a path; `key_file` a path; with neither
        and no `token`, `FMCP_KEY` (PEM text) or `FMCP_KEY_FILE` is used."""
        private_key: Ed25519PrivateKey | None = None
        if key is not None:
            private_key = load_key(key)
        elif key_file is not None:
            private_key = load_key(Path(key_file).expanduser())
        elif token is None:
            private_key = key_from_env()
        if private_key is None and token is None:
            raise ValueError("no credentials: give key, key_file or token (or set FMCP_KEY_FILE)")
        self.target = target
        self.deadline = deadline
        self.retry = retry or RetryPolicy()
        self._tokens = TokenSource(
            key=private_key, token=token, store=session_store, target=target, clock=clock
        )
        self._channel_credentials = channel_credentials
        self._channel: grpc.aio.Channel | None = None
        self.tools = ToolsAPI(self)
        self.operations = OperationsAPI(self)
        self.grants = GrantsAPI(self)
        self.events = EventsAPI(self)
        self.authorizations = AuthorizationsAPI(self)
        self.policies = PoliciesAPI(self)

    @classmethod
    def from_config(cls, config: ClientConfig, **options: Any) -> Client:
        """A client for the CLI's configuration: its target and key file, sharing its cached
        sessions (sessions.json)."""
        return cls(
            config.target,
            key_file=config.key_file,
            session_store=SessionStore(config.session_file),
            **options,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    @property
    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel (opened on first use, in the running event loop)."""
        if self._channel is None:
            if self._channel_credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._channel_credentials, options=CHANNEL_OPTIONS
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        return self._channel

    @property
    def token_source(self) -> TokenSource:
        return self._tokens

    # -- calls ---------------------------------------------------------------------------------

    async def unary(
        self,
        call: Callable[..., Awaitable[T]],
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
        authenticated: bool = True,
    ) -> T:
        """One unary call with a deadline, token renewal once, and retries when allowed."""
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            sent = False
            token = ""
            try:
                if authenticated:
                    token = await self._tokens.token(self.channel)
                sent = True
                return await call(
                    request,
                    metadata=bearer(token) if authenticated else (),
                    timeout=timeout if timeout is not None else self.deadline,
                )
            except grpc.aio.AioRpcError as rpc_error:
                error: FmcpClientError = error_from_rpc(rpc_error)
            except Unavailable as unavailable:  # logging in or refreshing: safe to repeat
                error = unavailable
            if (
                isinstance(error, Unauthenticated)
                and sent
                and not renewed
                and self._tokens.can_renew
            ):
                renewed = True
                attempt -= 1
                await self._tokens.invalidate(self.channel, token)
                continue
            retryable = idempotent or not sent
            if isinstance(error, Unavailable) and retryable and attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after_seconds))
                continue
            raise error

    async def stream_operations(
        self, name: str, after_sequence: int = 0
    ) -> AsyncIterator[lro_pb2.Operation]:
        """WatchOperation, resumed after the last sequence seen when the stream breaks."""
        stub = operations_pb2_grpc.OperationsServiceStub(self.channel)
        last = after_sequence
        attempt = 0
        renewed = False
        while True:
            try:
                token = await self._tokens.token(self.channel)
            except Unavailable as unavailable:
                attempt += 1
                if attempt >= self.retry.max_attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, unavailable.retry_after_seconds))
                continue
            call = stub.WatchOperation(
                operations_pb2.WatchOperationRequest(name=name, after_sequence=last),
                metadata=bearer(token),
            )
            try:
                async for message in call:
                    attempt = 0
                    yield message
                    meta = operations_pb2.OperationMetadata()
                    message.metadata.Unpack(meta)
                    last = max(last, meta.sequence)
                    if message.done:
                        return
                return
            except grpc.aio.AioRpcError as rpc_error:
                error = error_from_rpc(rpc_error)
            finally:
                call.cancel()
            if isinstance(error, Unauthenticated) and not renewed and self._tokens.can_renew:
                renewed = True
                await self._tokens.invalidate(self.channel, token)
                continue
            attempt += 1
            if isinstance(error, Unavailable) and attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt, error.retry_after_seconds))
                continue
            raise error

    # -- account -------------------------------------------------------------------------------

    async def login(self) -> Account:
        """Log in with the key now (whatever session is cached) and return the account."""
        session = await self._tokens.login(self.channel)
        return Account.from_proto(session.account)

    async def whoami(self) -> Account:
        stub = auth_pb2_grpc.AuthServiceStub(self.channel)
        account: auth_pb2.Account = await self.unary(
            stub.GetCurrentAccount, empty_pb2.Empty(), idempotent=True
        )
        return Account.from_proto(account)

    async def access_token(self) -> str:
        """A valid access token (for grpcurl, curl, or another client)."""
        return await self._tokens.token(self.channel)

    async def logout(self) -> None:
        """Revoke the session's refresh-token family on the server and forget it here."""
        if self._tokens.session is not None:
            await self._tokens.token(self.channel)  # refreshed first if due: revoke the current
            session = self._tokens.session
            assert session is not None
            stub = auth_pb2_grpc.AuthServiceStub(self.channel)
            await self.unary(
                stub.RevokeToken,
                auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token),
                idempotent=True,
            )
        self._tokens.forget()

    # -- long-running work ---------------------------------------------------------------------

    async def call_and_wait(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Call a tool and follow its operation to the end; return the tool's output.

        `on_progress` gets every snapshot the watch delivers (progress, stage, new log lines),
        and may be a coroutine function. A failed operation raises the class of its error code
        (e.g. `FailedPrecondition`) with `operation` set; a cancelled one raises `Cancelled`.
        `timeout` bounds the whole wait (`DeadlineExceeded`; the operation keeps running).
        """
        started = time.monotonic()
        wait = FIRST_WAIT_SECONDS if on_progress is not None else LONGEST_WAIT_SECONDS
        if timeout is not None:
            wait = min(wait, timeout)
        operation = await self.tools.call(
            tool, arguments, request_id=request_id or new_request_id(), wait=wait
        )
        if not operation.done:
            remaining = None if timeout is None else max(timeout - (time.monotonic() - started), 0)
            operation = await self.follow(
                operation, on_progress=on_progress, timeout=remaining, from_start=True
            )
        elif on_progress is not None:
            await notify(on_progress, operation)
        return result_of(operation)

    async def follow(
        self,
        operation: Operation,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        from_start: bool = False,
    ) -> Operation:
        """Watch `operation` until it is done (calling `on_progress` on each snapshot). With
        `from_start`, every change since the operation was created is delivered (for an
        operation that ran a while before it is followed), else its current snapshot first."""
        if operation.done:
            await notify(on_progress, operation)
            return operation
        after = CREATED_SEQUENCE if from_start else 0

        async def watch() -> Operation:
            last = operation
            async for snapshot in self.operations.watch(operation.name, after):
                last = snapshot
                await notify(on_progress, snapshot)
            if not last.done:  # the stream ended early: ask once more
                last = await self.operations.get(operation.name)
            return last

        try:
            return await asyncio.wait_for(watch(), timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"{operation.name} was not done after {timeout:g}s; it keeps running",
                operation=operation.name,
                client_side=True,
            ) from None

    # -- workloads -----------------------------------------------------------------------------

    async def build_workload(
        self,
        formfile: str,
        context_dir: str | Path | None = None,
        *,
        exclude: tuple[str, ...] = (),
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """`pack.build` with `context_dir` packed as a base64 .tar.gz (`pack_context`);
        returns the build result (`build_id`, `digest`, `cached`, ...)."""
        arguments: dict[str, Any] = {"formfile": formfile}
        if context_dir is not None:
            arguments["context_tar_gz"] = await asyncio.to_thread(
                pack_context, Path(context_dir), exclude
            )
        return await self.call_and_wait(
            "pack.build", arguments, on_progress=on_progress, timeout=timeout
        )

    async def deploy_workload(
        self,
        build_id: str,
        instance_name: str,
        vm_config: dict[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """`pack.ship`: run a built pack as an instance; returns the instance."""
        arguments: dict[str, Any] = {"build_id": build_id, "instance_name": instance_name}
        if vm_config:
            arguments["vm_config"] = vm_config
        return await self.call_and_wait(
            "pack.ship", arguments, on_progress=on_progress, timeout=timeout
        )

    async def instance_metrics(
        self, instance: str, window: str = "15m", step: str | None = None
    ) -> dict[str, Any]:
        """`vm.metrics`: an instance's series (at most 60 points each), summaries, limits."""
        arguments = {"id": instance, "window": window, **({"step": step} if step else {})}
        return await self.call_and_wait("vm.metrics", arguments)

    async def recommendations(
        self, instance: str | None = None, window: str = "1h"
    ) -> dict[str, Any]:
        """`vm.recommend`: findings for one instance, or for all your live ones."""
        arguments = {"window": window, **({"id": instance} if instance else {})}
        return await self.call_and_wait("vm.recommend", arguments)

    async def expose(
        self,
        instance: str,
        *,
        port: int | None = None,
        path: str | None = None,
        auth: str = "public",
    ) -> dict[str, Any]:
        """`network.expose`: give an instance (id or name) a URL on the front door; `port`
        (one of its EXPOSE ports, default the first), `path` (default /apps/{name}/), `auth`
        `public` or `token` (its owner's bearer token only). Returns the route with `url`."""
        arguments: dict[str, Any] = {"id": instance, "auth": auth}
        if port is not None:
            arguments["port"] = port
        if path is not None:
            arguments["path"] = path
        return await self.call_and_wait("network.expose", arguments)

    async def unexpose(self, instance: str, path: str | None = None) -> dict[str, Any]:
        """`network.unexpose`: remove the instance's route at `path` (all of them without);
        returns `{count, routes}` removed."""
        arguments: dict[str, Any] = {"id": instance}
        if path is not None:
            arguments["path"] = path
        return await self.call_and_wait("network.unexpose", arguments)

    async def routes(self, all_users: bool = False) -> dict[str, Any]:
        """`network.list`: your routes (`{count, routes, truncated}`), each with its URL and
        the state of its instance; every owner's with `all_users` (admins)."""
        return await self.call_and_wait("network.list", {"all_users": all_users})

    async def instance_logs(
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
        """`vm.logs`: the instance's output lines (each with `time`, `stream`, `text`),
        bounded by `tail` and `max_bytes`; `truncated`, `next_cursor` and `hint` say what was
        left out and how to page on. With `follow`, new lines arrive in `on_progress`'s
        operation logs until `duration` ends or the instance stops."""
        given = {
            "tail": tail,
            "since": since,
            "stream": stream,
            "cursor": cursor,
            "max_bytes": max_bytes,
            "duration": duration,
        }
        arguments: dict[str, Any] = {"id": instance}
        arguments.update({key: value for key, value in given.items() if value is not None})
        if follow:
            arguments["follow"] = True
        return await self.call_and_wait(
            "vm.logs", arguments, on_progress=on_progress, timeout=timeout
        )

    async def instance_events(
        self, instance: str, *, filter: str = "", page_size: int = 0, cursor: str = ""
    ) -> dict[str, Any]:
        """`vm.events`: a page of the instance's events, newest first, and `next_cursor`."""
        arguments: dict[str, Any] = {"id": instance}
        if filter:
            arguments["filter"] = filter
        if page_size:
            arguments["page_size"] = page_size
        if cursor:
            arguments["cursor"] = cursor
        return await self.call_and_wait("vm.events", arguments)


__all__ = [
    "FIRST_WAIT_SECONDS",
    "Client",
    "OperationsAPI",
    "ProgressCallback",
    "ToolsAPI",
    "operation_resource",
    "result_of",
    "tool_resource",
]
