"""h2load as the load generator (pinned to its own core), and curl to check grpc-status,
which h2load cannot see (it only counts HTTP statuses)."""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from bench.common import LOAD_CORE
from bench.processes import pinned

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, payload."""
    payload = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def require_tools() -> None:
    missing = [tool for tool in ("h2load", "curl", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"bench needs {', '.join(missing)}: apt-get install -y nghttp2-client curl util-linux"
        )


async def _run(argv: list[str], timeout: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def grpc_status(url: str, body: Path, headers: tuple[str, ...] = ()) -> str:
    """The grpc-status of one call made with curl over HTTP/2 (prior knowledge)."""
    argv = ["curl", "-s", "-v", "--http2-prior-knowledge", "-o", "/dev/null"]
    for header in (*GRPC_HEADERS, *headers):
        argv += ["-H", header]
    _, _, err = await _run([*argv, "--data-binary", f"@{body}", url], timeout=30)
    match = re.search(r"^< grpc-status: *(\d+)", err, re.MULTILINE)
    return match.group(1) if match else "missing"


@dataclass(frozen=True, slots=True)
class LoadResult:
    rate: float  # requests per second over the measured period
    succeeded: int
    failed: int
    mean_ms: float
    output: str


_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _parse(output: str) -> LoadResult:
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    requests = re.search(r"requests: .*?(\d+) succeeded, (\d+) failed", output)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", output)
    if rate is None or requests is None:
        raise RuntimeError(f"cannot read h2load's output:\n{output}")
    mean_ms = float(mean.group(1)) * _TIME_UNITS_MS[mean.group(2)] if mean else float("nan")
    return LoadResult(
        float(rate.group(1)), int(requests.group(1)), int(requests.group(2)), mean_ms, output
    )


async def load(
    url: str,
    body: Path,
    *,
    headers: tuple[str, ...] = (),
    seconds: int,
    warm_up: int,
    clients: int = 50,
    streams: int = 10,
) -> LoadResult:
    """A duration-based h2load run (`-c clients -m streams`) pinned to the load core."""
    argv = [
        "h2load",
        f"-D{seconds}",
        f"--warm-up-time={warm_up}",
        f"-c{clients}",
        f"-m{streams}",
        "-d",
        str(body),
    ]
    for header in (*GRPC_HEADERS, *headers):
        argv += ["-H", header]
    code, out, err = await _run(pinned([*argv, url], LOAD_CORE), timeout=seconds + warm_up + 60)
    if code != 0:
        raise RuntimeError(f"h2load exited with {code}:\n{out}\n{err}")
    return _parse(out)
