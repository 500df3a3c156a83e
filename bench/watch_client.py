"""The client process of the `watch` benchmark: opens WatchOperation streams and records when
each message arrives. Talks to its parent over stdout, one line each:

    ready <opened> <seconds>    every stream has received its first snapshot (or failed)
    seq <n>                     every stream has received the change with sequence n
    result <json>               at the end: counts, exactly-once check, delivery latencies

The call metadata (the caller's identity) comes as JSON pairs in $FMCP_BENCH_CALL_METADATA.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc

from bench.common import percentile

METADATA_ENV = "FMCP_BENCH_CALL_METADATA"


@dataclass
class Tally:
    total: int
    first_sequence: int
    last_sequence: int
    metadata: tuple[tuple[str, str], ...]
    opened: int = 0
    failed_to_open: int = 0
    exact: int = 0  # streams that got every change exactly once, in order, ending done
    started: float = field(default_factory=time.perf_counter)
    arrivals: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _say(line: str) -> None:
    print(line, flush=True)


def _settled(tally: Tally) -> None:
    if tally.opened + tally.failed_to_open == tally.total:
        _say(f"ready {tally.opened} {time.perf_counter() - tally.started:.3f}")


async def _watch(stub: Any, name: str, tally: Tally, opening: asyncio.Semaphore) -> None:
    """One stream; `opening` bounds how many streams wait for their snapshot at once."""
    request = operations_pb2.WatchOperationRequest(name=name)
    sequences: list[int] = []
    metadata = operations_pb2.OperationMetadata()
    await opening.acquire()
    try:
        call = stub.WatchOperation(request, metadata=tally.metadata)
        async for operation in call:
            received_ns = time.time_ns()
            operation.metadata.Unpack(metadata)
            sequence = metadata.sequence
            sequences.append(sequence)
            if len(sequences) == 1:  # the snapshot
                opening.release()
                tally.opened += 1
                _settled(tally)
                continue
            tally.latencies_ms.append((received_ns - metadata.update_time.ToNanoseconds()) / 1e6)
            tally.arrivals[sequence] += 1
            if tally.arrivals[sequence] == tally.opened:
                _say(f"seq {sequence}")
    except grpc.aio.AioRpcError as exc:
        tally.errors[f"{exc.code().name}: {(exc.details() or '')[:80]}"] += 1
    finally:
        if not sequences:
            opening.release()
            tally.failed_to_open += 1
            _settled(tally)
    expected = list(range(tally.first_sequence, tally.last_sequence + 1))
    if sequences[1:] == expected:
        tally.exact += 1
    else:
        tally.mismatches.append(f"{name}: got {sequences[1:]}")


def _channel(address: str, index: int) -> grpc.aio.Channel:
    # A local subchannel pool and a distinct argument: one TCP connection per channel.
    options = [("grpc.use_local_subchannel_pool", 1), ("bench.channel", index)]
    return grpc.aio.insecure_channel(address, options=options)


async def main(args: argparse.Namespace) -> None:
    names: list[str] = args.names.split(",")
    metadata = tuple((str(k), str(v)) for k, v in json.loads(os.environ[METADATA_ENV]))
    tally = Tally(len(names) * args.per_op, args.first_sequence, args.last_sequence, metadata)
    channels = [_channel(args.address, i) for i in range(args.channels)]
    stubs = [operations_pb2_grpc.OperationsServiceStub(channel) for channel in channels]
    opening = asyncio.Semaphore(args.open_window)
    try:
        async with asyncio.timeout(args.timeout), asyncio.TaskGroup() as group:
            for index in range(tally.total):
                stub = stubs[index % len(stubs)]
                group.create_task(_watch(stub, names[index % len(names)], tally, opening))
    except TimeoutError:
        tally.errors["CLIENT_TIMEOUT"] += 1
    finally:
        for channel in channels:
            await channel.close()
    expected_messages = tally.total * (tally.last_sequence - tally.first_sequence + 1)
    received = sum(tally.arrivals.values())
    latencies = tally.latencies_ms
    result = {
        "streams": tally.total,
        "opened": tally.opened,
        "failed_to_open": tally.failed_to_open,
        "expected_messages": expected_messages,
        "received_messages": received,
        "mismatched_streams": tally.total - tally.exact,
        "mismatch_examples": tally.mismatches[:3],
        "errors": dict(tally.errors),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
    }
    _say(f"result {json.dumps(result)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--names", required=True, help="operation names, comma-separated")
    parser.add_argument("--per-op", type=int, required=True, help="streams per operation")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--first-sequence", type=int, required=True)
    parser.add_argument("--last-sequence", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--open-window", type=int, default=10_000, help="streams waiting for a snapshot at once"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
