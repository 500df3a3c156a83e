"""LogThrottle: each kind of message at most once per interval, with a count of the rest."""

from __future__ import annotations

import logging

import pytest

from formation_mcp.log_throttle import LogThrottle

LOGGER = "tests.log_throttle"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LogThrottle:
    return LogThrottle(logging.getLogger(LOGGER), 10.0, clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_a_repeated_message_is_logged_once_per_interval(
    throttle: LogThrottle, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    logged = [throttle.warning("down", "database down: %s", n) for n in range(100)]
    assert logged == [True] + [False] * 99
    assert messages(caplog) == ["database down: 0"]


def test_the_next_message_after_the_interval_counts_those_held_back(
    throttle: LogThrottle, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    for n in range(5):
        throttle.warning("down", "database down: %s", n)
    clock.now += 10.0
    assert throttle.warning("down", "database down: %s", 5)
    assert messages(caplog)[-1] == "database down: 5 (and 4 more like it in the last 10s)"


def test_kinds_are_throttled_apart(throttle: LogThrottle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    throttle.warning("down", "database down")
    throttle.error("poison", "gave up on an event")
    assert messages(caplog) == ["database down", "gave up on an event"]
