"""Instances for the metrics tests: the workload whose behaviour its name picks (it reports
what it does on its output), and calls of vm.metrics that wait for samples."""

from __future__ import annotations

from typing import Any

import grpc
from tests.support.auth import Md
from tests.support.waiting import eventually
from tests.support.workloads import succeed

METRICS_INTERVAL = 0.25

WORKLOAD = """\
import os, sys, time

name = os.environ["FMCP_INSTANCE_NAME"]
kind = name.split("-")[0]
started, cpu0 = time.monotonic(), time.process_time()
held = []
if kind == "busy":
    block = bytearray(200 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    held.append(block)
    print("allocated 200 MB", flush=True)
elif kind == "steady":
    held.append(bytearray(40 * 1024 * 1024))
    for i in range(0, len(held[0]), 4096):
        held[0][i] = 1
elif kind == "hog":
    try:
        while True:
            chunk = bytearray(1024 * 1024)
            for i in range(0, len(chunk), 4096):
                chunk[i] = 1
            held.append(chunk)
    except MemoryError:
        held.pop()
    print("allocated", len(held), "MB", flush=True)
elif kind == "crash":
    time.sleep(0.3)
    print("error: cannot read /etc/app.conf: no such file", flush=True)
    sys.exit(3)


def rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


while True:
    if kind == "busy":
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            pass
    elif kind == "steady":  # a third of one CPU, in bursts shorter than a sampling interval
        for _ in range(4):
            until = time.monotonic() + 0.04
            while time.monotonic() < until:
                pass
            time.sleep(0.08)
    else:
        time.sleep(0.5)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - started
    print(f"rss_kb {rss_kb()} cpu {cpu:.3f} wall {wall:.3f}", flush=True)
"""
FORMFILE = 'NAME metrics-workload\nENTRYPOINT ["python3", "app.py"]\n'


async def build_workload(channel: grpc.aio.Channel, md: Md) -> str:
    built = await succeed(
        channel, md, "pack.build", formfile=FORMFILE, context_files={"app.py": WORKLOAD}
    )
    build_id: str = built["build_id"]
    return build_id


async def create(
    channel: grpc.aio.Channel, md: Md, build_id: str, name: str, **resources: int
) -> dict[str, Any]:
    return await succeed(channel, md, "vm.create", name=name, image=build_id, **resources)


async def metrics(
    channel: grpc.aio.Channel, md: Md, reference: str, **extra: Any
) -> dict[str, Any]:
    return await succeed(channel, md, "vm.metrics", id=reference, **extra)


async def wait_for_samples(
    channel: grpc.aio.Channel, md: Md, reference: str, count: int
) -> dict[str, Any]:
    """vm.metrics once the instance has `count` samples."""
    answer: dict[str, Any] = {}

    async def enough() -> bool:
        answer.update(await metrics(channel, md, reference))
        return int(answer["samples"]) >= count

    await eventually(enough, deadline=60)
    return answer
