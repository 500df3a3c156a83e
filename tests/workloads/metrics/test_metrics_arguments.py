"""vm.metrics' window and step: at most the retention, at most 60 points; refused as
INVALID_ARGUMENT naming the field before the instance is looked up."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.workloads import call


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"window": "48h"}, "arguments.window"),
        ({"window": "0s"}, "arguments.window"),
        ({"window": "15m", "step": "1s"}, "arguments.step"),
        ({"window": "1h", "step": "59s"}, "arguments.step"),
    ],
)
async def test_a_window_past_the_retention_or_too_many_points_is_refused(
    channel: grpc.aio.Channel, as_account: Md, arguments: dict[str, str], field: str
) -> None:
    operation = await call(channel, as_account, "vm.metrics", id="any", **arguments)
    assert operation.error.code == code_pb2.INVALID_ARGUMENT
    assert operation.error.message.startswith(f"{field}: ")
