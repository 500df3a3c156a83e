"""Load for the long-running tool-call benchmarks: callers that each make one call after the
other (CallTool with `wait`, then WaitOperation while not done: what `call_and_wait` does) and
time each call to done. Run in-process (`calls`) or as load processes (`scale`):

    python -m bench.call_load --callers C --start EPOCH --end EPOCH ADDRESS...

prints one JSON object: {"completed": N, "latencies": [seconds, ...]}. The caller's metadata
comes as JSON pairs in FMCP_BENCH_METADATA.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field

import grpc
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf.duration_pb2 import Duration

TOOL = "tools/bench.noop"
WAIT = Duration(seconds=30)
WARM_UP_CALLS = 20
Metadata = tuple[tuple[str, str], ...]


class Target:
    """One API address: a channel and its stubs."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.tools = tools_pb2_grpc.ToolsServiceStub(self.channel)
        self.ops = operations_pb2_grpc.OperationsServiceStub(self.channel)

    async def call_until_done(self, metadata: Metadata) -> float:
        """One call of the no-op tool to done; its latency in seconds."""
        started = time.perf_counter()
        operation = await self.tools.CallTool(
            tools_pb2.CallToolRequest(name=TOOL, wait=WAIT), metadata=metadata
        )
        while not operation.done:
            operation = await self.ops.WaitOperation(
                operations_pb2.WaitOperationRequest(name=operation.name), metadata=metadata
            )
        if operation.HasField("error"):
            raise RuntimeError(f"{operation.name} failed: {operation.error.message}")
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.channel.close()


@dataclass
class Outcome:
    completed: int = 0
    latencies: list[float] = field(default_factory=list)


async def closed_loop(
    targets: list[Target], metadata: Metadata, callers: int, start: float, end: float
) -> Outcome:
    """`callers` callers (spread over `targets`) call one after the other from the epoch
    `start` to `end`; calls that end within that window count."""
    for target in targets:
        for _ in range(WARM_UP_CALLS):  # connections, caches, lazy imports
            await target.call_until_done(metadata)
    outcome = Outcome()
    await asyncio.sleep(max(0.0, start - time.time()))

    async def caller(target: Target) -> None:
        while time.time() < end:
            latency = await target.call_until_done(metadata)
            if time.time() <= end:
                outcome.completed += 1
                outcome.latencies.append(latency)

    await asyncio.gather(*(caller(targets[i % len(targets)]) for i in range(callers)))
    return outcome


async def open_loop(target: Target, metadata: Metadata, rate: float, seconds: float) -> list[float]:
    """Calls started at a fixed `rate` for `seconds` (at least one); their call-to-done
    latencies."""
    tasks: list[asyncio.Task[float]] = []
    interval = 1.0 / rate
    began = time.perf_counter()
    for index in range(max(1, int(rate * seconds))):
        delay = began + index * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(target.call_until_done(metadata)))
    return list(await asyncio.gather(*tasks))


async def _main(args: argparse.Namespace) -> Outcome:
    metadata: Metadata = tuple(
        (str(key), str(value)) for key, value in json.loads(os.environ["FMCP_BENCH_METADATA"])
    )
    targets = [Target(address) for address in args.addresses]
    try:
        return await closed_loop(targets, metadata, args.callers, args.start, args.end)
    finally:
        for target in targets:
            await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("addresses", nargs="+")
    parser.add_argument("--callers", type=int, required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--end", type=float, required=True)
    outcome = asyncio.run(_main(parser.parse_args()))
    json.dump({"completed": outcome.completed, "latencies": outcome.latencies}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
