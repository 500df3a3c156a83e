"""The sliding minute of tool_calls_per_minute: the previous window's calls weigh by how much
of it the last 60 seconds still cover, so a boundary does not let twice the limit through."""

from __future__ import annotations

from formation_mcp.policies.rate_count import RATE_WINDOW_US, RateCount

START = 1_800_000_000 * 1_000_000 - (1_800_000_000 * 1_000_000) % RATE_WINDOW_US


def at(seconds: float, current: int, previous: int) -> RateCount:
    return RateCount(current=current, previous=previous, now_us=START + int(seconds * 1e6))


def test_a_fresh_window_counts_its_own_calls() -> None:
    assert at(30, current=3, previous=0).estimate == 3
    assert not at(30, current=2, previous=0).over(2)
    assert at(30, current=3, previous=0).over(2)


def test_calls_just_before_a_boundary_still_count_just_after_it() -> None:
    # 10 calls at 0:59 (previous window), then one at 1:00.5 with a limit of 10: refused.
    assert at(0.5, current=1, previous=10).over(10)


def test_the_previous_window_weighs_less_as_this_one_goes_on() -> None:
    assert at(45, current=1, previous=10).estimate == 10 * 0.25 + 1
    assert not at(45, current=1, previous=10).over(10)


def test_the_retry_delay_is_when_a_call_fits_again() -> None:
    count = at(0, current=1, previous=10)  # over 10: 10 + 1
    wait = count.retry_seconds(10)
    later = at(wait, current=count.current + 1, previous=10)
    assert not later.over(10)
    assert at(wait - 2, current=count.current + 1, previous=10).over(10)


def test_too_many_in_this_window_waits_into_the_next() -> None:
    count = at(50, current=12, previous=0)
    wait = count.retry_seconds(10)
    assert wait > 10  # past this window's end
    after = RateCount(current=1, previous=12, now_us=count.now_us + int(wait * 1e6))
    assert not after.over(10)


def test_the_retry_delay_is_at_least_a_second() -> None:
    assert at(59.9, current=11, previous=0).retry_seconds(10) >= 1.0
