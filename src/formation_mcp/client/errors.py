"""The SDK's one exception hierarchy: one class per gRPC code, carrying the server's
`google.rpc.Status` details (ErrorInfo reason and metadata, BadRequest field violations,
RetryInfo delay).

The same classes are raised for a failed RPC and for a long-running operation that ended with
an error (`Client.call_and_wait`): then `operation` names the operation, so callers catch
`NotFound` or `FailedPrecondition` the same way whether the call or the work failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request, e.g. `arguments.vcpus`."""

    field: str
    description: str
    reason: str = ""


class FmcpClientError(Exception):
    """Base of every error the SDK raises for the server's answers."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        retry_delay_seconds: float | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = field_violations
        self.retry_delay_seconds = retry_delay_seconds
        self.operation = operation

    def __str__(self) -> str:
        label = self.code.name + (f" ({self.reason})" if self.reason else "")
        where = f" [{self.operation}]" if self.operation else ""
        return f"{label}{where}: {self.message}"


class Cancelled(FmcpClientError):
    code = grpc.StatusCode.CANCELLED


class Unknown(FmcpClientError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(FmcpClientError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(FmcpClientError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(FmcpClientError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FmcpClientError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(FmcpClientError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(FmcpClientError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(FmcpClientError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(FmcpClientError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(FmcpClientError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(FmcpClientError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(FmcpClientError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(FmcpClientError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(FmcpClientError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(FmcpClientError):
    code = grpc.StatusCode.UNAUTHENTICATED


ERROR_CLASSES: dict[grpc.StatusCode, type[FmcpClientError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_from_status(status: status_pb2.Status, operation: str | None = None) -> FmcpClientError:
    """The exception for a `google.rpc.Status` (an RPC's trailer or an operation's error)."""
    code = _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend(
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            )
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_retry = error_details_pb2.RetryInfo()
            detail.Unpack(info_retry)
            retry = info_retry.retry_delay.ToNanoseconds() / 1e9
    cls = ERROR_CLASSES.get(code, Unknown)
    return cls(
        status.message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=tuple(violations),
        retry_delay_seconds=retry,
        operation=operation,
    )


def error_from_rpc(error: grpc.aio.AioRpcError) -> FmcpClientError:
    """The exception for a failed call, read from its `grpc-status-details-bin` trailer (or
    from the bare code and message when the server sent no details)."""
    status = rpc_status.from_call(error)
    if status is None:
        status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
    return error_from_status(status)
