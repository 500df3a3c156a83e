"""When and how long to wait before trying a call again.

Only UNAVAILABLE is retried (the server, or the way to it, is down for a moment), and only for
calls that are safe to repeat: reads, cancel, delete, wait, and CallTool with a `request_id`
(the server returns the first call's operation for a repeated id). The delay doubles from
`initial_seconds` up to `max_seconds`, with jitter; a server's RetryInfo delay wins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_seconds: float = 0.1
    max_seconds: float = 3.0
    multiplier: float = 2.0

    def delay(self, attempt: int, server_hint: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if server_hint is not None and server_hint > 0:
            return min(server_hint, self.max_seconds)
        ceiling = min(self.max_seconds, self.initial_seconds * self.multiplier ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
