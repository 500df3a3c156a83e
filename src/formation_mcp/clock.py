"""Time as integer microseconds since the Unix epoch (the unit the store keeps)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def now_us() -> int:
    return time.time_ns() // 1000


def to_timestamp(micros: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def datetime_to_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
