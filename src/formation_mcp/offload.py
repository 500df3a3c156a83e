"""Running CPU-heavy work on big or hostile input off the event loop, with a bound.

One event loop serves every call of a process (and, on the embedded default, its in-process
worker too): a call that parses a Formfile, checks megabytes of arguments against a JSON
Schema or stages a build context on the loop makes every other call wait until it is done.
`Offload.run` hands such work to a small thread pool of its own and awaits it, so the loop
keeps answering meanwhile. Threads share the GIL, but the interpreter switches between them
every few milliseconds, and file I/O, hashing and decompression release it altogether.

Each pool runs at most `threads` jobs at once. A pool with `max_waiting` refuses a job when
that many already wait, with RESOURCE_EXHAUSTED and a retry delay: a flood of big calls gets
told to come back instead of piling up. The pools are per process (`ARGUMENT_CHECKS`,
`CONTEXT_STAGING`), their threads started when first needed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from formation_mcp.errors import ResourceExhausted

_P = ParamSpec("_P")
_T = TypeVar("_T")

BUSY_RETRY_SECONDS = 1.0


class Offload:
    def __init__(self, name: str, *, threads: int, max_waiting: int | None = None) -> None:
        if threads < 1:
            raise ValueError("an offload pool needs at least one thread")
        self.name = name
        self.threads = threads
        self.max_waiting = max_waiting
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs running or waiting now."""
        return self._pending

    async def run(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """`function(*args, **kwargs)` on one of the pool's threads; its result or exception.

        Cancelling the caller does not stop a job already running: keep jobs bounded."""
        with self._lock:
            if self.max_waiting is not None and self._pending >= self.threads + self.max_waiting:
                raise ResourceExhausted(
                    f"the server has {self._pending} large jobs ({self.name}) under way or"
                    " waiting; retry in a moment",
                    reason="SERVER_BUSY",
                    metadata={"pool": self.name},
                    retry_after_seconds=BUSY_RETRY_SECONDS,
                )
            self._pending += 1
        try:
            job = functools.partial(function, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._executor(), job)
        finally:
            with self._lock:
                self._pending -= 1

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.threads, thread_name_prefix=f"fmcp-{self.name}"
                )
            return self._pool

    def close(self) -> None:
        """Stop the threads once their jobs are done (a later `run` starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


ARGUMENT_CHECKS = Offload("argument-checks", threads=2, max_waiting=32)
"""Tool arguments checked at CallTool time: schema validation of big arguments, prechecks
(a Formfile's grammar), their audit digest and queue message."""
CONTEXT_STAGING = Offload("context-staging", threads=2)
"""A worker's build contexts: base64 and gzip decoding, writing files, digests (the worker's
prefetch bounds how many wait)."""
