"""Token buckets keyed by caller (key id, peer): bounded memory, refilled continuously."""

from __future__ import annotations

import time
from collections import OrderedDict

from formation_mcp.errors import ResourceExhausted


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None, max_keys: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst if burst is not None else per_minute)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    def take(self, key: str, what: str) -> None:
        """Spend one token for `key`, or raise RESOURCE_EXHAUSTED with the wait in RetryInfo."""
        now = time.monotonic()
        tokens, stamp = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
            raise ResourceExhausted(
                f"too many {what} attempts; retry in {wait:.1f}s",
                reason="RATE_LIMITED",
                metadata={"limit": what, "retryAfterSeconds": f"{wait:.1f}"},
                retry_after_seconds=wait,
            )
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
