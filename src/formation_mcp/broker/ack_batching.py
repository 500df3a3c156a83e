"""One `basic.ack` for the deliveries of a channel acked in the same turn of the event loop.

A consumer's handlers ack their deliveries one at a time (an API server acks a whole batch
of events once it is committed; a worker acks each piece of work once its result is
confirmed). Sent one by one, every ack is a frame to build and a socket write on both sides.
Here the acks asked for during one turn of the loop are sent together at the end of it: the
highest delivery tag at or below which every delivery of the channel is settled goes as one
`basic.ack` with `multiple` set (AMQP 0-9-1: "up to and including"); an ack above a delivery
still being handled goes on its own (waiting for that one could hold the prefetch window shut).

`multiple` must never cover a delivery nobody acked: delivery tags of a channel are 1, 2, 3 …
in delivery order, and a tag counts only once its delivery was seen (`delivered`), so an ack
covers tags up to the highest one below which every tag was seen and is acked or settled.
After a reconnect the channel is a new one, with tags from 1 again (`ChannelAcks` per channel);
an ack on a channel that is gone fails, and the broker delivers the message again, as before.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractIncomingMessage


class ChannelAcks:
    """The deliveries of one (underlying) channel that are not settled yet."""

    def __init__(self, channel: object) -> None:
        self.channel = channel
        self._unsettled: dict[int, AbstractIncomingMessage] = {}
        self._seen_through = 0
        """Every tag from 1 to this one was delivered (seen)."""
        self._seen_ahead: set[int] = set()
        """Tags seen above a tag not seen yet (deliveries whose callbacks ran out of order)."""
        self._ready: dict[int, asyncio.Future[None]] = {}
        self._flush_task: asyncio.Task[None] | None = None

    def delivered(self, message: AbstractIncomingMessage) -> None:
        tag = _tag(message)
        self._unsettled[tag] = message
        if tag != self._seen_through + 1:
            self._seen_ahead.add(tag)
            return
        self._seen_through = tag
        while self._seen_through + 1 in self._seen_ahead:
            self._seen_through += 1
            self._seen_ahead.discard(self._seen_through)

    def settled(self, message: AbstractIncomingMessage) -> None:
        """The delivery was settled another way (requeued): no ack covers it any more."""
        self._unsettled.pop(_tag(message), None)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        """Returns once the ack (alone or with others) is written; raises what writing it
        raised."""
        tag = _tag(message)
        if tag not in self._unsettled or tag in self._ready:
            await message.ack()  # not one of ours: nothing to batch it with
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._ready[tag] = future
        if self._flush_task is None:
            self._flush_task = loop.create_task(self._flush())  # after this turn's callbacks
        await future

    async def _flush(self) -> None:
        ready, self._ready = self._ready, {}
        self._flush_task = None
        blocking = [tag for tag in self._unsettled if tag not in ready]
        below = min(blocking, default=self._seen_through + 1)
        covered_through = min(below - 1, self._seen_through)
        together = sorted(tag for tag in ready if tag <= covered_through)
        alone = sorted(tag for tag in ready if tag > covered_through)
        messages = {tag: self._unsettled.pop(tag) for tag in ready}
        if together:
            top = together[-1]
            await _send(messages[top], [ready[tag] for tag in together], multiple=len(together) > 1)
        for tag in alone:
            await _send(messages[tag], [ready[tag]], multiple=False)


def _tag(message: AbstractIncomingMessage) -> int:
    tag = message.delivery_tag
    assert tag is not None, "a consumed message has a delivery tag"
    return tag


async def _send(
    message: AbstractIncomingMessage, waiting: list[asyncio.Future[None]], *, multiple: bool
) -> None:
    try:
        await message.ack(multiple=multiple)
    except BaseException as exc:  # each waiting ack raises it (the channel is gone)
        for future in waiting:
            if future.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for future in waiting:
        if not future.done():
            future.set_result(None)
