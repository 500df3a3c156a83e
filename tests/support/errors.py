"""RPC errors as the tests read them: the one ErrorInfo, the BadRequest fields, refusals."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from formation_mcp.errors import ERROR_DOMAIN


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status details"
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1, "exactly one ErrorInfo"
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    return info


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


async def refused(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    """Await an RPC that must fail with `code` and exactly one ErrorInfo with `reason`."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return check_refusal(caught.value, code, reason)


def check_refusal(error: BaseException, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    """`error` is an RPC error with `code` and exactly one ErrorInfo with `reason`."""
    assert isinstance(error, grpc.aio.AioRpcError), repr(error)
    assert error.code() == code, f"{error.code()}: {error.details()}"
    info = error_info(error)
    assert info.reason == reason, f"{info.reason}: {error.details()}"
    assert info.domain == ERROR_DOMAIN
    return error
