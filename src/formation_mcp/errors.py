"""The one exception hierarchy. Each class declares its gRPC code and ErrorInfo reason.

Servicers and domain services raise these; `api.interceptors.ErrorInterceptor` turns them into
`google.rpc.Status` with exactly one `ErrorInfo` (domain `formation.mcp`), plus `BadRequest` for
field violations and `RetryInfo` when a retry delay is known. Nothing else builds statuses.
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
    """Base of every error a caller may see."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.retry_after_seconds = retry_after_seconds

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
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
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


class InvalidArgument(FmcpError):
    code = grpc.StatusCode.INVALID_ARGUMENT
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


class NotFound(FmcpError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(FmcpError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(FmcpError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(FmcpError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unauthenticated(FmcpError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(FmcpError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(FmcpError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(FmcpError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Unimplemented(FmcpError):
    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "NOT_IMPLEMENTED"


class Internal(FmcpError):
    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"
