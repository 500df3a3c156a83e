"""The one exception hierarchy, shared by the server and the SDK.

Each class declares its gRPC code, the HTTP status Envoy's transcoder answers for that code
(`grpcToHttpStatus`), and its default ErrorInfo reason.

On the server, servicers and domain services raise them; `api.interceptors.ErrorInterceptor`
turns them into `google.rpc.Status` (`to_status`) with exactly one `ErrorInfo` (domain
`formation.mcp`), plus `BadRequest` for field violations and `RetryInfo` when a retry delay is
known. Nothing else builds statuses.

In the SDK (`formation_mcp.client`, where the base is also called `FmcpClientError`),
`error_from_status` builds the same classes from a received status, with what it carries
(ErrorInfo reason, domain and metadata, BadRequest violations, RetryInfo delay), for a failed
call or for a long-running operation that ended with an error (`operation` names it). Such
errors are `client_side`: they report only what the server sent (no reason when it sent none),
and their `str()` names the code, reason and operation, as a person reading it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "formation.mcp"
MAX_MESSAGE_CHARS = 2048
"""Statuses travel in HTTP/2 trailers (16 KiB for all metadata): messages are capped."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: `field` is a path such as `page_size` or `arguments.vcpus`."""

    field: str
    description: str
    reason: str = ""


class FmcpError(Exception):
    """Base of every error a caller may see (its code is UNKNOWN, as `Unknown`'s)."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    http_status: ClassVar[int] = 500
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        retry_after_seconds: float | None = None,
        operation: str | None = None,
        client_side: bool = False,
    ) -> None:
        """Without a `reason` (or `domain`), the class's default (and `formation.mcp`); a
        `client_side` error keeps them empty instead: the server sent none."""
        super().__init__(message)
        self.message = message
        self.client_side = client_side
        self.reason = reason or ("" if client_side else self.default_reason)
        self.domain = domain or ("" if client_side else ERROR_DOMAIN)
        self.metadata = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.retry_after_seconds = retry_after_seconds
        self.operation = operation

    @property
    def retry_delay_seconds(self) -> float | None:
        """The SDK's name for `retry_after_seconds` (the received RetryInfo delay)."""
        return self.retry_after_seconds

    def __str__(self) -> str:
        if not self.client_side:
            return self.message
        label = self.code.name + (f" ({self.reason})" if self.reason else "")
        where = f" [{self.operation}]" if self.operation else ""
        return f"{label}{where}: {self.message}"

    def to_status(self, request_id: str | None = None) -> status_pb2.Status:
        """The `google.rpc.Status` a caller receives."""
        details = [_pack(self._error_info())]
        if self.field_violations:
            details.append(_pack(self._bad_request()))
        if self.retry_after_seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_seconds * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        if request_id:
            details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
        message = self.message
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        return status_pb2.Status(code=self.code.value[0], message=message, details=details)

    def _error_info(self) -> error_details_pb2.ErrorInfo:
        return error_details_pb2.ErrorInfo(
            reason=self.reason, domain=self.domain or ERROR_DOMAIN, metadata=self.metadata
        )

    def _bad_request(self) -> error_details_pb2.BadRequest:
        return error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field[:256], description=v.description[:512], reason=v.reason
                )
                for v in self.field_violations[:50]
            ]
        )


def _pack(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo
    | error_details_pb2.RequestInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class Cancelled(FmcpError):
    code = grpc.StatusCode.CANCELLED
    http_status = 499
    default_reason = "CANCELLED"


class Unknown(FmcpError):
    code = grpc.StatusCode.UNKNOWN
    http_status = 500
    default_reason = "UNKNOWN"


class InvalidArgument(FmcpError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    default_reason = "INVALID_ARGUMENT"

    @classmethod
    def for_field(cls, field: str, description: str, reason: str = "") -> InvalidArgument:
        """One bad field; the message names the field and says what to fix."""
        return cls(
            f"{field}: {description}",
            reason=reason or None,
            metadata={"field": field},
            field_violations=[FieldViolation(field, description, reason)],
        )


class DeadlineExceeded(FmcpError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504
    default_reason = "DEADLINE_EXCEEDED"


class NotFound(FmcpError):
    code = grpc.StatusCode.NOT_FOUND
    http_status = 404
    default_reason = "NOT_FOUND"


class AlreadyExists(FmcpError):
    code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(FmcpError):
    code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(FmcpError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    default_reason = "RESOURCE_EXHAUSTED"


class FailedPrecondition(FmcpError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    default_reason = "FAILED_PRECONDITION"


class Aborted(FmcpError):
    code = grpc.StatusCode.ABORTED
    http_status = 409
    default_reason = "ABORTED"


class OutOfRange(FmcpError):
    code = grpc.StatusCode.OUT_OF_RANGE
    http_status = 400
    default_reason = "OUT_OF_RANGE"


class Unimplemented(FmcpError):
    code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501
    default_reason = "NOT_IMPLEMENTED"


class Internal(FmcpError):
    code = grpc.StatusCode.INTERNAL
    http_status = 500
    default_reason = "INTERNAL"


class Unavailable(FmcpError):
    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_reason = "UNAVAILABLE"


class DataLoss(FmcpError):
    code = grpc.StatusCode.DATA_LOSS
    http_status = 500
    default_reason = "DATA_LOSS"


class Unauthenticated(FmcpError):
    code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    default_reason = "UNAUTHENTICATED"


ERROR_CLASSES: dict[grpc.StatusCode, type[FmcpError]] = {
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
"""The class of every gRPC error code (every code but OK)."""
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_from_status(status: status_pb2.Status, operation: str | None = None) -> FmcpError:
    """The client-side error for a received `google.rpc.Status` (an RPC's trailer, or the error
    of the long-running `operation`)."""
    code = _CODES_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
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
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            retry = retry_info.retry_delay.ToNanoseconds() / 1e9
    return ERROR_CLASSES.get(code, Unknown)(
        status.message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        retry_after_seconds=retry,
        operation=operation,
        client_side=True,
    )
