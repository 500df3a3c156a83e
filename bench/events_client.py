"""The client process of the `events` benchmark: opens WatchEvents streams (from now on) and
records when each event arrives. Talks to its parent over stdout, one line each:

    got <n>           every stream has received n events
    result <json>     at the end: counts, exactly-once check, delivery latencies

The call metadata (the caller's identity) comes as JSON pairs in $FMCP_BENCH_CALL_METADATA.
Latency of an event = its arrival here - its `time` (set when the producer recorded it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
from formation.mcp.v1 import events_pb2, events_pb2_grpc

from bench.common import percentile

METADATA_ENV = "FMCP_BENCH_CALL_METADATA"


@dataclass
class Tally:
    streams: int
    events: int
    metadata: tuple[tuple[str, str], ...]
    arrivals: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    exact: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _say(line: str) -> None:
    print(line, flush=True)


async def _watch(stub: events_pb2_grpc.EventsServiceAsyncStub, tally: Tally) -> None:
    names: list[str] = []
    call = stub.WatchEvents(events_pb2.WatchEventsRequest(), metadata=tally.metadata)
    try:
        async for event in call:
            received_ns = time.time_ns()
            names.append(event.name)
            tally.latencies_ms.append((received_ns - event.time.ToNanoseconds()) / 1e6)
            count = len(names)
            tally.arrivals[count] += 1
            if tally.arrivals[count] == tally.streams:
                _say(f"got {count}")
            if count == tally.events:
                break
    except grpc.aio.AioRpcError as exc:
        tally.errors[f"{exc.code().name}: {(exc.details() or '')[:80]}"] += 1
    finally:
        call.cancel()
    if len(names) == tally.events and len(set(names)) == len(names) and names == sorted(names):
        tally.exact += 1


async def main(args: argparse.Namespace) -> None:
    metadata = tuple((str(k), str(v)) for k, v in json.loads(os.environ[METADATA_ENV]))
    tally = Tally(args.streams, args.events, metadata)
    channels = [
        grpc.aio.insecure_channel(
            args.address, options=[("grpc.use_local_subchannel_pool", 1), ("bench.channel", i)]
        )
        for i in range(args.channels)
    ]
    stubs = [events_pb2_grpc.EventsServiceStub(channel) for channel in channels]
    try:
        async with asyncio.timeout(args.timeout), asyncio.TaskGroup() as group:
            for index in range(args.streams):
                group.create_task(_watch(stubs[index % len(stubs)], tally))
    except TimeoutError:
        tally.errors["CLIENT_TIMEOUT"] += 1
    finally:
        for channel in channels:
            await channel.close()
    result = {
        "streams": tally.streams,
        "exact_streams": tally.exact,
        "received": sum(tally.arrivals.values()),
        "errors": dict(tally.errors),
        "p50_ms": percentile(tally.latencies_ms, 0.50),
        "p99_ms": percentile(tally.latencies_ms, 0.99),
    }
    _say(f"result {json.dumps(result)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    asyncio.run(main(parser.parse_args()))
