"""A tool's calls per minute as a sliding window: this minute's count plus the previous
minute's, weighted by how much of the previous minute the last 60 seconds still cover.
Fixed windows let twice the limit through around a boundary (N calls at 0:59, N more at
1:00); this estimate does not, at the cost of two counters per account and tool."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

RATE_WINDOW_US: Final = 60 * 1_000_000
MIN_RETRY_SECONDS: Final = 1.0


def window_of(now_us: int) -> int:
    return now_us - now_us % RATE_WINDOW_US


@dataclass(frozen=True, slots=True)
class RateCount:
    """Calls counted in this minute's window and the previous one, at `now_us`."""

    current: int
    previous: int
    now_us: int

    @property
    def elapsed(self) -> float:
        """How far into this window `now_us` is, 0 to 1."""
        return (self.now_us - window_of(self.now_us)) / RATE_WINDOW_US

    @property
    def estimate(self) -> float:
        """Calls in the last 60 seconds, estimated."""
        return self.previous * (1.0 - self.elapsed) + self.current

    def over(self, allowed: int) -> bool:
        return self.estimate > allowed

    def retry_seconds(self, allowed: int) -> float:
        """When a call would fit again, if no other call comes before it."""
        window_s = RATE_WINDOW_US / 1e6
        if self.current + 1 <= allowed and self.previous > 0:
            # This window's calls fit: wait for enough of the previous window to slide out.
            fraction = 1.0 - (allowed - self.current - 1) / self.previous
            wait = (fraction - self.elapsed) * window_s
        else:
            # This window's calls alone are too many: they weigh on the next window too.
            spare = max(allowed - 1, 0) / self.current if self.current else 1.0
            wait = (1.0 - self.elapsed) * window_s + (1.0 - min(spare, 1.0)) * window_s
        return max(MIN_RETRY_SECONDS, math.ceil(wait * 100) / 100)  # a little late, not early
