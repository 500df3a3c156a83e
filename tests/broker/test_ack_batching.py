"""ChannelAcks: the acks of one turn go as one `basic.ack` with `multiple`, never covering a
delivery nobody acked (RabbitMQ's side of it is in test_broker_contract)."""

from __future__ import annotations

import asyncio

from formation_mcp.broker.ack_batching import ChannelAcks


class FakeMessage:
    """Records the acks sent for it into the channel's list of frames."""

    def __init__(self, tag: int, frames: list[tuple[int, bool]]) -> None:
        self.delivery_tag = tag
        self._frames = frames
        self.fail_with: Exception | None = None

    async def ack(self, multiple: bool = False) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self._frames.append((self.delivery_tag, multiple))


def delivered(acks: ChannelAcks, frames: list[tuple[int, bool]], *tags: int) -> list[FakeMessage]:
    messages = [FakeMessage(tag, frames) for tag in tags]
    for message in messages:
        acks.delivered(message)  # type: ignore[arg-type]
    return messages


async def ack_together(acks: ChannelAcks, *messages: FakeMessage) -> None:
    await asyncio.gather(*(acks.ack(message) for message in messages))  # type: ignore[arg-type]


async def test_acks_of_one_turn_go_as_one_multiple_ack() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    messages = delivered(acks, frames, 1, 2, 3, 4)
    await ack_together(acks, *messages)
    assert frames == [(4, True)]


async def test_a_lone_ack_is_not_multiple() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    first, _second = delivered(acks, frames, 1, 2)
    await acks.ack(first)  # type: ignore[arg-type]
    assert frames == [(1, False)]


async def test_an_ack_above_an_unacked_delivery_goes_on_its_own() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    one, _two, three, four = delivered(acks, frames, 1, 2, 3, 4)
    await ack_together(acks, one, three, four)
    assert frames == [(1, False), (3, False), (4, False)]


async def test_later_acks_cover_deliveries_acked_earlier() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    one, two, three, four = delivered(acks, frames, 1, 2, 3, 4)
    await ack_together(acks, one, three)
    await ack_together(acks, two, four)
    assert frames == [(1, False), (3, False), (4, True)]


async def test_a_requeued_delivery_does_not_hold_the_others_back() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    one, two, three = delivered(acks, frames, 1, 2, 3)
    acks.settled(two)  # type: ignore[arg-type]
    await ack_together(acks, one, three)
    assert frames == [(3, True)]


async def test_no_multiple_ack_covers_a_delivery_not_seen_yet() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    three, four = delivered(acks, frames, 3, 4)  # 1 and 2 were delivered, not yet seen
    await ack_together(acks, three, four)
    assert frames == [(3, False), (4, False)]


async def test_deliveries_seen_out_of_order_are_acked_together_once_all_are_seen() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    two, one, three = delivered(acks, frames, 2, 1, 3)
    await ack_together(acks, one, two, three)
    assert frames == [(3, True)]


async def test_a_failed_ack_fails_every_ack_it_carried() -> None:
    frames: list[tuple[int, bool]] = []
    acks = ChannelAcks(object())
    one, two = delivered(acks, frames, 1, 2)
    two.fail_with = ConnectionError("channel closed")
    results = await asyncio.gather(acks.ack(one), acks.ack(two), return_exceptions=True)  # type: ignore[arg-type]
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
