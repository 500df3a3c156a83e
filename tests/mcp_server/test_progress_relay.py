"""Progress as MCP needs it: every notification rises, heartbeats included."""

from __future__ import annotations

from formation_mcp.mcp_server.convert import Progress, ProgressRelay


def test_a_rise_in_percent_is_sent_as_it_is() -> None:
    relay = ProgressRelay(Progress(0, None))
    assert relay.next(Progress(40, "build: step 2")) == 40.0


def test_a_new_message_at_the_same_percent_is_sent_as_a_fraction_towards_the_next() -> None:
    relay = ProgressRelay(Progress(40, "step 2"))
    values = [relay.next(Progress(40, f"step 2 ({n} s so far)")) for n in (5, 10, 15)]
    assert values == [40.5, 40 + 2 / 3, 40.75]
    assert relay.next(Progress(41, "step 3")) == 41.0


def test_nothing_new_sends_nothing() -> None:
    relay = ProgressRelay(Progress(40, "step 2"))
    assert relay.next(Progress(40, "step 2")) is None
    assert relay.next(Progress(30, "older")) is None
    assert relay.next(Progress(40, None)) is None


def test_nothing_is_sent_past_the_end() -> None:
    relay = ProgressRelay(Progress(100, "done"))
    assert relay.next(Progress(100, "done, again")) is None
