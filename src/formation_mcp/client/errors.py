"""The SDK's errors: the project's one hierarchy (`formation_mcp.errors`), one class per gRPC
code, each carrying the server's `google.rpc.Status` details (ErrorInfo reason and metadata,
BadRequest field violations, RetryInfo delay). `FmcpClientError` is the SDK's name for its base.

The same classes are raised for a failed RPC and for a long-running operation that ended with
an error (`Client.call_and_wait`): then `operation` names the operation, so callers catch
`NotFound` or `FailedPrecondition` the same way whether the call or the work failed.
"""

from __future__ import annotations

import grpc
from google.rpc import status_pb2
from grpc_status import rpc_status

from formation_mcp.errors import (
    ERROR_CLASSES,
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    FmcpError,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    error_from_status,
)

FmcpClientError = FmcpError
"""Base of every error the SDK raises for the server's answers (the same class as the server's
`FmcpError`: `except FmcpClientError` catches every class here)."""


def error_from_rpc(error: grpc.aio.AioRpcError) -> FmcpError:
    """The exception for a failed call, read from its `grpc-status-details-bin` trailer (or
    from the bare code and message when the server sent no details)."""
    status = rpc_status.from_call(error)
    if status is None:
        status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    return error_from_status(status)


__all__ = [
    "ERROR_CLASSES",
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "FmcpClientError",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "error_from_rpc",
    "error_from_status",
]
