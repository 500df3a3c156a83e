"""`hostile`: worst-case input against the embedded default, and what it does to other calls.

One `fmcp serve` (SQLite, in-process broker and worker, the built-in tools) is pinned to core
0; the client, this process, moves to core 1 while it measures. First the baseline: a cheap
call (`ToolsService.GetTool` of vm.status: authenticated, no database) made `IDLE_CALLS`
times in a row on an idle server. Then, for each hostile input, `REPEATS` calls (`BUILDS`
for the big builds) one after another, each timed from the call to its answer (a build: to
its operation being done), while a second channel makes the same cheap call in a loop: its
latencies, next to the idle ones, show how much the hostile work held up the event loop.

The hostile calls are serialized once beforehand and sent as raw bytes, so the client spends
nothing on them while it measures; the cheap calls use a channel (TCP connection) of their
own. Inputs: Formfiles through `pack.build` (alias bombs, deep nesting, a 5,000-digit number,
a 60 kB value in an error message, the largest YAML document within the limits), a
`pack.build` call of 200,000 context entries (3 MB), and two builds whose contexts take long
to stage: 2,000 context files of 1.8 kB (3.6 MB of request), and a 200 kB .tar.gz that stages
2,000 files, 62.5 MiB. Each line names the answers' status codes (and the one expected, when
they differ). A call not answered within `FMCP_BENCH_HOSTILE_DEADLINE` seconds (300) ends as
DEADLINE_EXCEEDED, and its input is not sent again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format

from bench import identity
from bench.common import LOAD_CORE, SERVER_CORE, figure, heading, percentile, ratio
from bench.identity import Identity
from bench.processes import fmcp_server, running

T = TypeVar("T")

IDLE_CALLS = 300
REPEATS = int(os.environ.get("FMCP_BENCH_HOSTILE_REPEATS", "5"))
BUILDS = int(os.environ.get("FMCP_BENCH_HOSTILE_BUILDS", "3"))
ANSWER_DEADLINE = float(os.environ.get("FMCP_BENCH_HOSTILE_DEADLINE", "300"))
CALL_TOOL = "/formation.mcp.v1.ToolsService/CallTool"
CHEAP_TOOL = "tools/vm.status"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    request: bytes
    expected: grpc.StatusCode
    """What the call must answer (OK: a build that must succeed)."""
    builds: bool = False


def _nested_aliases(levels: int) -> str:
    names = "abcdefghij"
    lines = ["name: x", "a: &a [x,x,x,x,x,x,x,x,x]"]
    for level in range(1, levels):
        name, before = names[level], names[level - 1]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{before}"] * 9) + "]")
    lines.append(f"resources: {{vcpus: *{names[levels - 1]}}}")
    return "\n".join(lines) + "\n"


def _billion_laughs() -> str:
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{n}: &lol{n} [" + ",".join([f"*lol{n - 1}"] * 10) + "]" for n in range(1, 10)]
    return "name: x\n" + "\n".join(lines) + "\nresources: {vcpus: *lol9}\n"


def _tar_gz(files: int, file_bytes: int) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(files):
            member = tarfile.TarInfo(f"data/{index % 20}/file-{index}.bin")
            member.size = file_bytes
            archive.addfile(member, io.BytesIO(bytes(file_bytes)))
    return base64.b64encode(buffer.getvalue()).decode()


def _request(arguments: dict[str, object]) -> bytes:
    request = tools_pb2.CallToolRequest(name="tools/pack.build")
    json_format.ParseDict(arguments, request.arguments)
    return request.SerializeToString()


def _formfile_case(label: str, formfile: str) -> Case:
    return Case(f"{label} ({len(formfile):,} B)", _request({"formfile": formfile}), INVALID)


def _cases() -> list[Case]:
    within_limits = "name: x\nmetadata: {" + ",".join(f"k{n}: v" for n in range(4990)) + "}\n"
    return [
        _formfile_case("Formfile: nested aliases, 9**9 values", _nested_aliases(9)),
        _formfile_case("Formfile: billion laughs", _billion_laughs()),
        _formfile_case("Formfile: YAML nested 900 deep", "name: x\nx: " + "[" * 900 + "]" * 900),
        _formfile_case(
            "Formfile: JSON nested 500 deep",
            '{"name": "x", "resources": {"vcpus": ' + "[" * 500 + "]" * 500 + "}}",
        ),
        _formfile_case(
            "Formfile: a 5,000-digit number", "name: x\nresources: {vcpus: 9" + "9" * 4999 + "}\n"
        ),
        _formfile_case(
            "Formfile: a 60 kB value in the error",
            "name: x\nresources: {vcpus: " + "x" * 60_000 + "}\n",
        ),
        _formfile_case("Formfile: YAML of almost 10,000 values (the limit)", within_limits),
        Case(
            "pack.build: 200,000 context entries (3 MB)",
            _request(
                {"formfile": "NAME x\n", "context_files": {str(n): "x" for n in range(200_000)}}
            ),
            EXHAUSTED,
        ),
        Case(
            "pack.build: 2,000 context files of 1.8 kB (3.6 MB), call to done",
            _request(
                {
                    "formfile": "NAME files\n",
                    "context_files": {f"d/f{n}.txt": f"{n}" + "x" * 1800 for n in range(2000)},
                }
            ),
            grpc.StatusCode.OK,
            builds=True,
        ),
        Case(
            "pack.build: .tar.gz staging 2,000 files / 62.5 MiB, call to done",
            _request({"formfile": "NAME archive\n", "context_tar_gz": _tar_gz(2000, 32 * 1024)}),
            grpc.StatusCode.OK,
            builds=True,
        ),
    ]


@contextlib.contextmanager
def _on_core(core: int) -> Iterator[None]:
    """This process (the client) on the load core while it measures; restored afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class _Prober:
    """The cheap call, one after another, on a channel of its own."""

    def __init__(self, channel: grpc.aio.Channel, caller: Identity) -> None:
        self._stub = tools_pb2_grpc.ToolsServiceStub(channel)
        self._caller = caller

    async def once(self) -> float:
        began = time.perf_counter()
        request = tools_pb2.GetToolRequest(name=CHEAP_TOOL)
        await self._stub.GetTool(request, metadata=self._caller.metadata, timeout=ANSWER_DEADLINE)
        return time.perf_counter() - began

    async def during(self, work: asyncio.Future[T]) -> list[float]:
        latencies = [await self.once()]
        while not work.done():
            latencies.append(await self.once())
        return latencies


async def _answer(
    channel: grpc.aio.Channel, caller: Identity, case: Case
) -> tuple[float, grpc.StatusCode]:
    """One hostile call: seconds from sending it to its answer (a build: to done), and the
    answer's code."""
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, lro_pb2.Operation] = channel.unary_unary(
        CALL_TOOL, response_deserializer=lro_pb2.Operation.FromString
    )
    began = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        operation: lro_pb2.Operation = await call(
            case.request, metadata=caller.metadata, timeout=ANSWER_DEADLINE
        )
        operations = operations_pb2_grpc.OperationsServiceStub(channel)
        while case.builds and not operation.done:
            operation = await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=operation.name),
                metadata=caller.metadata,
                timeout=ANSWER_DEADLINE,
            )
        if operation.HasField("error"):
            code = next(c for c in grpc.StatusCode if c.value[0] == operation.error.code)
    except grpc.aio.AioRpcError as error:
        code = error.code()
    return time.perf_counter() - began, code


async def _measure(
    work: grpc.aio.Channel, probe: grpc.aio.Channel, caller: Identity, case: Case
) -> tuple[list[float], list[float], set[grpc.StatusCode]]:
    prober = _Prober(probe, caller)
    answers: list[float] = []
    latencies: list[float] = []
    codes: set[grpc.StatusCode] = set()
    for _ in range(BUILDS if case.builds else REPEATS):
        task = asyncio.ensure_future(_answer(work, caller, case))
        latencies += await prober.during(task)
        seconds, code = await task
        answers.append(seconds)
        codes.add(code)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            break
    return answers, latencies, codes


def _answered(case: Case, codes: set[grpc.StatusCode]) -> str:
    names = ", ".join(sorted(code.name for code in codes))
    return names if codes == {case.expected} else f"{names}; expected {case.expected.name}"


def _ms(values: list[float], fraction: float) -> float:
    return percentile(values, fraction) * 1000


async def run() -> None:
    heading(
        f"hostile: worst-case input vs a cheap call (GetTool) made meanwhile; "
        f"embedded default on core {SERVER_CORE}, client on core {LOAD_CORE}; "
        f"{REPEATS} calls per input, {BUILDS} per build"
    )
    cases = _cases()
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-hostile-") as scratch:
        data_dir = Path(scratch) / "data"
        caller = identity.for_server(data_dir)
        async with (
            running(fmcp_server(data_dir, None)) as ready,
            grpc.aio.insecure_channel(ready.group(1)) as work,
            grpc.aio.insecure_channel(ready.group(1)) as probe,
        ):
            with _on_core(LOAD_CORE):
                prober = _Prober(probe, caller)
                for _ in range(30):
                    await prober.once()
                idle = [await prober.once() for _ in range(IDLE_CALLS)]
                figure("idle server: GetTool p50", _ms(idle, 0.5), "ms")
                figure("idle server: GetTool p99", _ms(idle, 0.99), "ms")
                for case in cases:
                    answers, latencies, codes = await _measure(work, probe, caller, case)
                    print(
                        f"{case.label}: answer p50 {_ms(answers, 0.5):,.1f} ms, max "
                        f"{max(answers) * 1000:,.1f} ms ({_answered(case, codes)}); meanwhile "
                        f"GetTool p50 / p99 / max {_ms(latencies, 0.5):,.1f} / "
                        f"{_ms(latencies, 0.99):,.1f} / {max(latencies) * 1000:,.1f} ms "
                        f"({len(latencies)} calls)",
                        flush=True,
                    )
                    ratio(
                        f"{case.label}: meanwhile p99 / idle p99",
                        _ms(latencies, 0.99),
                        _ms(idle, 0.99),
                    )
