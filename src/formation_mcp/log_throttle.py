"""Repeated errors logged at a bounded rate.

A failure that repeats for every message (the database down while hundreds of events wait, a
poison message retried) would otherwise write a line, or a traceback, per attempt: hundreds of
MB of log in an afternoon. A `LogThrottle` logs each kind of message at most once per interval
and says how many like it it held back meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_INTERVAL_SECONDS = 10.0
MAX_KINDS = 1_000


class LogThrottle:
    def __init__(
        self,
        logger: logging.Logger,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._clock = clock
        self._kinds: OrderedDict[str, tuple[float, int]] = OrderedDict()
        """kind -> (when it was last logged, how many were held back since)."""

    def log(self, level: int, kind: str, message: str, *args: object, **kwargs: Any) -> bool:
        """Log `message % args` unless a message of `kind` was logged less than the interval
        ago (then only count it). Returns whether it was logged."""
        now = self._clock()
        last, held_back = self._kinds.pop(kind, (None, 0))
        if last is not None and now - last < self._interval:
            self._kinds[kind] = (last, held_back + 1)
            return False
        self._kinds[kind] = (now, 0)
        while len(self._kinds) > MAX_KINDS:
            self._kinds.popitem(last=False)
        if held_back:
            message += f" (and {held_back} more like it in the last %.0fs)"
            args = (*args, now - last if last is not None else 0.0)
        self._logger.log(level, message, *args, **kwargs)
        return True

    def warning(self, kind: str, message: str, *args: object, **kwargs: Any) -> bool:
        return self.log(logging.WARNING, kind, message, *args, **kwargs)

    def error(self, kind: str, message: str, *args: object, **kwargs: Any) -> bool:
        return self.log(logging.ERROR, kind, message, *args, **kwargs)
