"""The error hierarchy and the google.rpc.Status each error becomes."""

from __future__ import annotations

from typing import TypeVar

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from formation_mcp.errors import (
    ERROR_CLASSES,
    ERROR_DOMAIN,
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

CLASSES: list[tuple[type[FmcpError], grpc.StatusCode, int, str]] = [
    (FmcpError, grpc.StatusCode.UNKNOWN, code_pb2.UNKNOWN, "UNKNOWN"),
    (
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        code_pb2.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    ),
    (NotFound, grpc.StatusCode.NOT_FOUND, code_pb2.NOT_FOUND, "NOT_FOUND"),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, code_pb2.ALREADY_EXISTS, "ALREADY_EXISTS"),
    (
        FailedPrecondition,
        grpc.StatusCode.FAILED_PRECONDITION,
        code_pb2.FAILED_PRECONDITION,
        "FAILED_PRECONDITION",
    ),
    (Aborted, grpc.StatusCode.ABORTED, code_pb2.ABORTED, "ABORTED"),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, code_pb2.UNAUTHENTICATED, "UNAUTHENTICATED"),
    (
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        code_pb2.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    ),
    (
        ResourceExhausted,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        code_pb2.RESOURCE_EXHAUSTED,
        "RESOURCE_EXHAUSTED",
    ),
    (Unavailable, grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE, "UNAVAILABLE"),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED, code_pb2.UNIMPLEMENTED, "NOT_IMPLEMENTED"),
    (Internal, grpc.StatusCode.INTERNAL, code_pb2.INTERNAL, "INTERNAL"),
    (Cancelled, grpc.StatusCode.CANCELLED, code_pb2.CANCELLED, "CANCELLED"),
    (Unknown, grpc.StatusCode.UNKNOWN, code_pb2.UNKNOWN, "UNKNOWN"),
    (
        DeadlineExceeded,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        code_pb2.DEADLINE_EXCEEDED,
        "DEADLINE_EXCEEDED",
    ),
    (OutOfRange, grpc.StatusCode.OUT_OF_RANGE, code_pb2.OUT_OF_RANGE, "OUT_OF_RANGE"),
    (DataLoss, grpc.StatusCode.DATA_LOSS, code_pb2.DATA_LOSS, "DATA_LOSS"),
]
CLASS_IDS = [cls.__name__ for cls, *_ in CLASSES]
ENVOY_HTTP_STATUSES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
}
"""The HTTP status Envoy's gRPC-JSON transcoder answers for each gRPC code (grpcToHttpStatus)."""
T = TypeVar("T", bound=Message)
DETAIL_TYPES = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.RequestInfo,
)


def _of_type(status: status_pb2.Status, kind: type[T]) -> list[T]:
    found: list[T] = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            assert detail.Unpack(message)
            found.append(message)
    return found


def _kinds(status: status_pb2.Status) -> list[str]:
    return [_kind(detail) for detail in status.details]


def _kind(detail: any_pb2.Any) -> str:
    return detail.TypeName().rsplit(".", 1)[-1]


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    (info,) = _of_type(status, error_details_pb2.ErrorInfo)
    return info


# --------------------------------------------------------------------------- classes


@pytest.mark.parametrize(("cls", "code", "_number", "_reason"), CLASSES, ids=CLASS_IDS)
def test_class_grpc_code(
    cls: type[FmcpError], code: grpc.StatusCode, _number: int, _reason: str
) -> None:
    assert cls.code is code


@pytest.mark.parametrize(("cls", "_code", "_number", "reason"), CLASSES, ids=CLASS_IDS)
def test_class_default_reason(
    cls: type[FmcpError], _code: grpc.StatusCode, _number: int, reason: str
) -> None:
    assert cls("x").reason == reason


@pytest.mark.parametrize(("cls", "_code", "number", "_reason"), CLASSES, ids=CLASS_IDS)
def test_status_code_is_the_numeric_grpc_code(
    cls: type[FmcpError], _code: grpc.StatusCode, number: int, _reason: str
) -> None:
    status = cls("x").to_status()
    assert status.code == number
    assert status.code == cls.code.value[0]


@pytest.mark.parametrize(("cls", "_code", "_number", "_reason"), CLASSES, ids=CLASS_IDS)
def test_every_class_is_an_fmcp_error(
    cls: type[FmcpError], _code: grpc.StatusCode, _number: int, _reason: str
) -> None:
    assert issubclass(cls, FmcpError)
    assert issubclass(cls, Exception)


def test_message_is_the_exception_text_and_status_message() -> None:
    error = NotFound("operations/abc was not found")
    assert str(error) == "operations/abc was not found"
    assert error.message == "operations/abc was not found"
    assert error.to_status().message == "operations/abc was not found"


def test_error_can_be_raised_and_caught_as_fmcp_error() -> None:
    with pytest.raises(FmcpError) as info:
        raise Unavailable("down")
    assert isinstance(info.value, Unavailable)


def test_every_grpc_error_code_has_one_class() -> None:
    assert set(ERROR_CLASSES) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert all(cls.code is code for code, cls in ERROR_CLASSES.items())


@pytest.mark.parametrize("code", list(ERROR_CLASSES), ids=lambda code: code.name)
def test_class_http_status_is_the_one_envoy_answers(code: grpc.StatusCode) -> None:
    assert ERROR_CLASSES[code].http_status == ENVOY_HTTP_STATUSES[code.name]


def test_the_base_class_is_an_unknown_error_as_500() -> None:
    assert (FmcpError.code, FmcpError.http_status) == (grpc.StatusCode.UNKNOWN, 500)


# --------------------------------------------------------------------------- received statuses


def test_a_received_status_becomes_the_same_class_with_its_details() -> None:
    sent = ResourceExhausted(
        "slow down",
        reason="RATE_LIMITED",
        metadata={"limit": "30"},
        field_violations=[FieldViolation("arguments.x", "too big", "TOO_BIG")],
        retry_after_seconds=1.5,
    )
    received = error_from_status(sent.to_status("req-1"))
    assert type(received) is ResourceExhausted
    assert (received.message, received.reason, received.domain, received.metadata) == (
        "slow down",
        "RATE_LIMITED",
        ERROR_DOMAIN,
        {"limit": "30"},
    )
    assert received.field_violations == (FieldViolation("arguments.x", "too big", "TOO_BIG"),)
    assert received.retry_after_seconds == received.retry_delay_seconds == 1.5


def test_a_received_status_without_error_info_has_no_reason_or_domain() -> None:
    received = error_from_status(status_pb2.Status(code=code_pb2.UNAVAILABLE, message="down"))
    assert (type(received), received.reason, received.domain) == (Unavailable, "", "")


def test_an_unknown_received_code_is_unknown() -> None:
    received = error_from_status(status_pb2.Status(code=99, message="what"))
    assert (type(received), received.code) == (Unknown, grpc.StatusCode.UNKNOWN)


def test_a_received_error_names_its_code_reason_and_operation() -> None:
    status = NotFound("no such pack", reason="PACK_NOT_FOUND").to_status()
    received = error_from_status(status, operation="operations/abc")
    assert received.operation == "operations/abc"
    assert str(received) == "NOT_FOUND (PACK_NOT_FOUND) [operations/abc]: no such pack"


def test_a_received_error_without_reason_is_named_by_its_code() -> None:
    received = error_from_status(status_pb2.Status(code=code_pb2.CANCELLED, message="stopped"))
    assert str(received) == "CANCELLED: stopped"


# --------------------------------------------------------------------------- ErrorInfo


@pytest.mark.parametrize(("cls", "_code", "_number", "reason"), CLASSES, ids=CLASS_IDS)
def test_status_has_exactly_one_error_info_with_domain_and_reason(
    cls: type[FmcpError], _code: grpc.StatusCode, _number: int, reason: str
) -> None:
    info = _error_info(cls("x").to_status())
    assert (info.domain, info.reason) == (ERROR_DOMAIN, reason)
    assert ERROR_DOMAIN == "formation.mcp"


def test_custom_reason_goes_into_error_info() -> None:
    status = Unavailable("down", reason="DATABASE_UNAVAILABLE").to_status()
    assert _error_info(status).reason == "DATABASE_UNAVAILABLE"


def test_metadata_goes_into_error_info() -> None:
    status = NotFound("gone", metadata={"operation": "operations/abc"}).to_status()
    assert dict(_error_info(status).metadata) == {"operation": "operations/abc"}


def test_metadata_is_copied() -> None:
    metadata = {"k": "v"}
    error = NotFound("gone", metadata=metadata)
    metadata["k"] = "changed"
    assert error.metadata == {"k": "v"}


def test_plain_error_has_only_error_info() -> None:
    assert _kinds(NotFound("gone").to_status()) == ["ErrorInfo"]


def test_error_info_comes_first() -> None:
    error = InvalidArgument(
        "bad", field_violations=[FieldViolation("page_size", "bad")], retry_after_seconds=1.0
    )
    assert _kinds(error.to_status("req-1")) == [
        "ErrorInfo",
        "BadRequest",
        "RetryInfo",
        "RequestInfo",
    ]


# --------------------------------------------------------------------------- BadRequest


def test_for_field_adds_bad_request_with_the_field() -> None:
    status = InvalidArgument.for_field("page_size", "must not be negative").to_status()
    (bad,) = _of_type(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("page_size", "must not be negative")
    ]


def test_for_field_message_names_the_field() -> None:
    error = InvalidArgument.for_field("page_size", "must not be negative")
    assert error.message == "page_size: must not be negative"


def test_for_field_puts_the_field_in_error_info_metadata() -> None:
    status = InvalidArgument.for_field("filter", "bad syntax").to_status()
    assert dict(_error_info(status).metadata) == {"field": "filter"}


def test_for_field_default_reason() -> None:
    status = InvalidArgument.for_field("filter", "bad syntax").to_status()
    assert _error_info(status).reason == "INVALID_ARGUMENT"


def test_for_field_custom_reason_goes_into_error_info_and_violation() -> None:
    status = InvalidArgument.for_field("filter", "too long", reason="FILTER_TOO_LONG").to_status()
    (bad,) = _of_type(status, error_details_pb2.BadRequest)
    assert _error_info(status).reason == "FILTER_TOO_LONG"
    assert bad.field_violations[0].reason == "FILTER_TOO_LONG"


def test_for_field_has_still_exactly_one_error_info() -> None:
    status = InvalidArgument.for_field("name", "required").to_status()
    assert len(_of_type(status, error_details_pb2.ErrorInfo)) == 1


def test_several_field_violations_share_one_bad_request() -> None:
    error = InvalidArgument(
        "two bad fields",
        field_violations=[FieldViolation("a", "bad a"), FieldViolation("b.c", "bad c", "R")],
    )
    (bad,) = _of_type(error.to_status(), error_details_pb2.BadRequest)
    assert [(v.field, v.description, v.reason) for v in bad.field_violations] == [
        ("a", "bad a", ""),
        ("b.c", "bad c", "R"),
    ]


# --------------------------------------------------------------------------- RetryInfo


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1.5, (1, 500_000_000)), (30.0, (30, 0)), (0.25, (0, 250_000_000)), (0.0, (0, 0))],
)
def test_retry_after_seconds_adds_retry_info(seconds: float, expected: tuple[int, int]) -> None:
    status = Unavailable("busy", retry_after_seconds=seconds).to_status()
    (retry,) = _of_type(status, error_details_pb2.RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == expected


def test_no_retry_after_means_no_retry_info() -> None:
    assert _of_type(Unavailable("busy").to_status(), error_details_pb2.RetryInfo) == []


# --------------------------------------------------------------------------- RequestInfo


def test_request_id_adds_request_info() -> None:
    status = NotFound("gone").to_status(request_id="req-42")
    (info,) = _of_type(status, error_details_pb2.RequestInfo)
    assert info.request_id == "req-42"


@pytest.mark.parametrize("request_id", [None, ""])
def test_no_request_id_means_no_request_info(request_id: str | None) -> None:
    status = NotFound("gone").to_status(request_id=request_id)
    assert _of_type(status, error_details_pb2.RequestInfo) == []


def test_detail_types_are_the_google_rpc_ones() -> None:
    error = InvalidArgument(
        "bad", field_violations=[FieldViolation("x", "bad")], retry_after_seconds=2.0
    )
    names = {detail.TypeName() for detail in error.to_status("r").details}
    assert names == {kind.DESCRIPTOR.full_name for kind in DETAIL_TYPES}
