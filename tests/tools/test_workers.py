"""Workers for real: separate worker processes on RabbitMQ and PostgreSQL, crashes,
dead letters, dropped connections, several API servers and workers, the broker down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from formation.mcp.v1 import (
    events_pb2,
    events_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import code_pb2
from tests.support import tools as support_tools
from tests.support.operations import metadata_of, output_of, struct
from tests.support.servers import TEST_TOOL_MODULES, StartApp
from tests.support.tools import EXECUTIONS
from tests.support.waiting import DEADLINE, eventually, wait_until

from formation_mcp.app import Application
from formation_mcp.broker.rabbitmq import RabbitBroker
from formation_mcp.client.auth import bearer, login
from formation_mcp.settings import Settings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
REPO = Path(__file__).resolve().parents[2]
FMCP = str(Path(sys.executable).parent / "fmcp")


@pytest.fixture
def shared(database_url: str, rabbitmq_url: str) -> dict[str, object]:
    """Settings every server and worker of one test shares: PostgreSQL, RabbitMQ, a prefix."""
    if not database_url.startswith("postgresql"):
        pytest.skip("separate worker processes share PostgreSQL")
    return {"broker_url": rabbitmq_url, "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}"}


class WorkerProcess:
    """`fmcp worker` as a subprocess with the test tools."""

    def __init__(self, database_url: str, shared: dict[str, object], data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FMCP_")},
            "PYTHONPATH": str(REPO),
            "FMCP_DATABASE_URL": database_url,
            "FMCP_BROKER_URL": str(shared["broker_url"]),
            "FMCP_BROKER_PREFIX": str(shared["broker_prefix"]),
            "FMCP_TOOL_MODULES": ",".join(TEST_TOOL_MODULES),
            "FMCP_DATA_DIR": str(data_dir),
            "FMCP_LOG_FORMAT": "text",
            "FMCP_LOG_LEVEL": "WARNING",
            "FMCP_WORKER_HTTP_LISTEN": "127.0.0.1:0",
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            FMCP,
            "worker",
            env=self.env,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert self.process.stderr is not None
        async with asyncio.timeout(60):
            while b"ready" not in (line := await self.process.stderr.readline()):
                assert line, "the worker exited before it was ready"

    async def exit_code(self) -> int:
        assert self.process is not None
        async with asyncio.timeout(DEADLINE):
            return await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def workers(
    database_url: str, shared: dict[str, object], tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[WorkerProcess]]]:
    started: list[WorkerProcess] = []

    async def start() -> WorkerProcess:
        worker = WorkerProcess(database_url, shared, tmp_path / f"worker{len(started)}")
        started.append(worker)
        await worker.start()
        return worker

    yield start
    for worker in started:
        await worker.stop()
    nodes = [Settings(data_dir=worker.data_dir).effective_node_id for worker in started]
    broker = RabbitBroker(str(shared["broker_url"]), 3, str(shared["broker_prefix"]))
    await broker.delete_node_queues(nodes)  # each worker declared a queue for its node


async def client(app: Application) -> tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    channel = grpc.aio.insecure_channel(app.grpc.address)
    session = await login(channel, Ed25519PrivateKey.generate())
    return channel, bearer(session.access_token)


async def start_call(
    channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...], tool: str, **arguments: object
) -> lro_pb2.Operation:
    operation: lro_pb2.Operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
        tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)), metadata=md
    )
    return operation


async def wait_done(
    channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...], name: str
) -> lro_pb2.Operation:
    stub = operations_pb2_grpc.OperationsServiceStub(channel)
    async with asyncio.timeout(60):
        while True:
            operation = await stub.WaitOperation(
                operations_pb2.WaitOperationRequest(name=name), metadata=md, timeout=30
            )
            if operation.done:
                return operation


async def test_a_killed_worker_has_its_work_redelivered_and_completed(
    start_app: StartApp,
    shared: dict[str, object],
    workers: Callable[[], Awaitable[WorkerProcess]],
) -> None:
    api = await start_app(run_worker=False, **shared)
    channel, md = await client(api)
    async with channel:
        first = await workers()
        pending = await start_call(channel, md, "test.crash_once")
        assert await first.exit_code() == 18  # the worker died mid-run
        await workers()
        final = await wait_done(channel, md, pending.name)
    assert output_of(final) == {"attempt": 2}
    assert metadata_of(final).attempt == 2


async def test_poison_work_dead_letters_and_fails_the_operation(
    start_app: StartApp,
    shared: dict[str, object],
    workers: Callable[[], Awaitable[WorkerProcess]],
) -> None:
    api = await start_app(run_worker=False, max_attempts=3, **shared)
    channel, md = await client(api)
    async with channel:
        pending = await start_call(channel, md, "test.crash")
        for _attempt in range(3):
            assert await (await workers()).exit_code() == 17
        final = await wait_done(channel, md, pending.name)
    assert final.error.code == code_pb2.ABORTED
    assert "gave up after 3 attempts" in final.error.message


async def test_closing_every_connection_during_200_calls_loses_and_repeats_nothing(
    start_app: StartApp, shared: dict[str, object]
) -> None:
    api = await start_app(**shared)
    await asyncio.wait_for(api.broker_ready.wait(), 30)
    support_tools.HELD = asyncio.Event()  # the calls run until the connections were dropped
    channel, md = await client(api)
    try:
        async with channel:
            calls = [
                start_call(channel, md, "test.count", delay_ms=20, held=True) for _ in range(200)
            ]
            first_half = await asyncio.gather(*calls[:100])
            await wait_until(lambda: any(EXECUTIONS[op.name] for op in first_half))
            closing = await asyncio.create_subprocess_exec(
                "rabbitmqctl",
                "close_all_connections",
                "test: dropped on purpose",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            second_half = await asyncio.gather(*calls[100:])
            await closing.wait()  # 69 when a connection vanished mid-way: the reconnect counts
            await wait_until(lambda: getattr(api.broker, "reconnects", 0) >= 1, 30)
            support_tools.HELD.set()
            names = [op.name for op in (*first_half, *second_half)]
            finals = await asyncio.gather(*(wait_done(channel, md, name) for name in names))
    finally:
        support_tools.HELD = None
    assert all(metadata_of(op).state == operations_pb2.OperationMetadata.SUCCEEDED for op in finals)
    assert all(EXECUTIONS[name] == 1 for name in names)


async def test_a_watch_on_one_api_sees_every_event_of_work_started_on_another(
    start_app: StartApp, shared: dict[str, object]
) -> None:
    api_a = await start_app(**shared)
    api_b = await start_app(**shared)
    await asyncio.wait_for(api_a.broker_ready.wait(), 30)
    await asyncio.wait_for(api_b.broker_ready.wait(), 30)
    channel_a, md = await client(api_a)
    async with channel_a, grpc.aio.insecure_channel(api_b.grpc.address) as channel_b:
        pending = await start_call(channel_a, md, "test.sleep", steps=5, delay_ms=20)
        watch = operations_pb2_grpc.OperationsServiceStub(channel_b).WatchOperation(
            operations_pb2.WatchOperationRequest(name=pending.name),
            metadata=md,
        )
        async with asyncio.timeout(DEADLINE):
            seen = [operation async for operation in watch]
    sequences = [metadata_of(op).sequence for op in seen]
    assert sequences == list(range(sequences[0], sequences[0] + len(seen)))
    assert seen[-1].done and output_of(seen[-1]) == {"steps": 5}


@pytest.fixture
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    """Requested before `start_app`, so it outlives the servers that connect through it."""
    async with TcpProxy(target_port=5672) as proxy:
        yield proxy


async def test_calls_succeed_while_the_broker_is_down_and_run_once_it_is_back(
    broker_proxy: TcpProxy, start_app: StartApp, shared: dict[str, object]
) -> None:
    url = str(shared["broker_url"]).replace(":5672", f":{broker_proxy.port}")
    api = await start_app(**{**shared, "broker_url": url})
    channel, md = await client(api)
    async with channel:
        pending = await start_call(channel, md, "test.sleep", steps=1, delay_ms=1)
        assert not pending.done and await api.relay.pending() == 1
        broker_proxy.open()
        final = await wait_done(channel, md, pending.name)
    assert output_of(final) == {"steps": 1}


class TcpProxy:
    """Listens on a free port; refuses (closes) connections until `open()`, then forwards
    them to the target port: a broker that is down, then comes back."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._open = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    def open(self) -> None:
        self._open.set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            pipe = asyncio.get_running_loop().create_task(task)
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def test_a_stopping_worker_hands_its_running_work_to_another(
    start_app: StartApp, shared: dict[str, object]
) -> None:
    api = await start_app(run_worker=False, **shared)
    first_worker = await start_app(shutdown_grace_seconds=0.1, **shared)
    await asyncio.wait_for(first_worker.broker_ready.wait(), 30)
    channel, md = await client(api)
    async with channel:
        pending = await start_call(channel, md, "test.sleep", steps=40, delay_ms=25)
        watch = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
            operations_pb2.WatchOperationRequest(name=pending.name), metadata=md
        )
        async with asyncio.timeout(DEADLINE):
            async for operation in watch:
                if metadata_of(operation).progress_percent > 0:
                    break
        watch.cancel()
        await first_worker.stop()  # grace runs out mid-run: the work goes back to the broker
        await start_app(**shared)  # another worker takes it over
        final = await wait_done(channel, md, pending.name)
    assert output_of(final) == {"steps": 40}
    assert metadata_of(final).attempt == 2


async def test_a_build_step_on_a_separate_worker_cannot_read_its_credentials(
    start_app: StartApp, shared: dict[str, object], database_url: str, tmp_path: Path
) -> None:
    """The worker's environment holds the database URL with its password: its build steps
    see neither the worker process nor that environment."""
    password = uuid.uuid4().hex
    worker = WorkerProcess(
        database_url.replace("://postgres@", f"://postgres:{password}@"), shared, tmp_path / "w"
    )
    api = await start_app(run_worker=False, **shared)
    channel, md = await client(api)
    try:
        await worker.start()
        assert worker.process is not None
        probe = (
            "NAME probe\nRUN cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | "
            f"grep -c {password}; test -e /proc/{worker.process.pid} && echo worker seen; true\n"
        )
        async with channel:
            pending = await start_call(
                channel, md, "pack.build", formfile=probe, context_files={"a": "b"}
            )
            final = await wait_done(channel, md, pending.name)
            assert not final.HasField("error"), final.error.message
            watch = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
                operations_pb2.WatchOperationRequest(name=pending.name), metadata=md
            )
            lines = [line.text async for op in watch for line in metadata_of(op).logs]
    finally:
        await worker.stop()
    assert "0" in lines  # grep counted no line holding the password
    assert "worker seen" not in lines


async def instance_events(
    channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...], resource: str
) -> list[str]:
    response = await events_pb2_grpc.EventsServiceStub(channel).ListEvents(
        events_pb2.ListEventsRequest(filter=f'resource = "{resource}"'), metadata=md
    )
    return [event.type for event in reversed(response.events)]


async def test_a_separate_worker_reports_instance_events_and_a_killed_one_adopts_them(
    start_app: StartApp, database_url: str, shared: dict[str, object], tmp_path: Path
) -> None:
    api = await start_app(run_worker=False, **shared)
    channel, md = await client(api)
    worker = WorkerProcess(database_url, shared, tmp_path / "node")
    again = WorkerProcess(database_url, shared, tmp_path / "node")  # the same node
    try:
        await worker.start()
        async with channel:
            formfile = 'NAME evented\nENTRYPOINT ["sh", "-c", "echo up; exec sleep 600"]\n'
            built = await wait_done(
                channel, md, (await start_call(channel, md, "pack.build", formfile=formfile)).name
            )
            shipped = await wait_done(
                channel,
                md,
                (
                    await start_call(
                        channel,
                        md,
                        "pack.ship",
                        build_id=output_of(built)["build_id"],
                        instance_name="evented",
                    )
                ).name,
            )
            resource = f"instances/{output_of(shipped)['instance_id']}"
            assert worker.process is not None
            worker.process.kill()  # SIGKILL: no shutdown, the instance keeps running
            await worker.process.wait()
            await again.start()

            async def adopted() -> bool:
                return "instance.adopted" in await instance_events(channel, md, resource)

            await eventually(adopted, deadline=DEADLINE * 3)
            assert await instance_events(channel, md, resource) == [
                "instance.created",
                "instance.running",
                "instance.adopted",
            ]
            deleted = await wait_done(
                channel,
                md,
                (await start_call(channel, md, "vm.delete", id="evented", force=True)).name,
            )
            assert not deleted.HasField("error"), deleted.error.message
    finally:
        await again.stop()
        await worker.stop()
        node = Settings(data_dir=tmp_path / "node").effective_node_id
        broker = RabbitBroker(str(shared["broker_url"]), 3, str(shared["broker_prefix"]))
        await broker.delete_node_queues([node])
