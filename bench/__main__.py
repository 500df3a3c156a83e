"""`python -m bench` runs every benchmark; `python -m bench NAME...` runs the named ones."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import (
    events,
    hostile,
    identity,
    list_ops,
    logins,
    mcp,
    metrics,
    oauth,
    policy,
    request_gate,
    rest,
    routes,
    scale,
    tool_calls,
    unary,
    watch,
    workloads,
)

BENCHMARKS: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
    "unary": unary.run,
    "list": list_ops.run,
    "watch": watch.run,
    "logins": logins.run,
    "calls": tool_calls.run,
    "rest": rest.run,
    "mcp": mcp.run,
    "oauth": oauth.run,
    "workloads": workloads.run,
    "metrics": metrics.run,
    "routes": routes.run,
    "gate": request_gate.run,
    "hostile": hostile.run,
    "policy": policy.run,
    "events": events.run,
}
ON_REQUEST = ("scale",)
"""Benchmarks that run only when named (`python -m bench` alone leaves them out)."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so SIGTERM also stops every server we started


def _load_average() -> str:
    """Other work on the machine skews every figure; this shows how much there was."""
    one, five, _ = os.getloadavg()
    return f"load average: {one:.2f} (1 min), {five:.2f} (5 min)"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=", ".join([*BENCHMARKS, *ON_REQUEST])
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="calls: also write its figures to FILE as JSON"
    )
    scale.add_arguments(parser)
    args = parser.parse_args()
    names = args.names or list(BENCHMARKS)
    runners: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        **BENCHMARKS,
        "calls": lambda: tool_calls.run(args.json),
        "scale": lambda: scale.run(scale.Options.from_args(args)),
    }
    unknown = [name for name in names if name not in runners]
    if unknown:
        known = ", ".join([*BENCHMARKS, *ON_REQUEST])
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {known}")
    signal.signal(signal.SIGTERM, _terminate)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"fmcp benchmarks, {stamp}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(_load_average(), flush=True)
    print(identity.describe(), flush=True)
    started = time.perf_counter()
    failed = []
    try:
        for name in names:
            began = time.perf_counter()
            try:
                asyncio.run(runners[name]())
            except Exception:  # report it, and go on with the others
                traceback.print_exc()
                print(f"({name} FAILED; see the error above)", flush=True)
                failed.append(name)
                continue
            print(f"({name} took {time.perf_counter() - began:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; every server started here has been stopped", file=sys.stderr)
        return 130
    print(f"\nall done in {time.perf_counter() - started:.0f} s; {_load_average()}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
