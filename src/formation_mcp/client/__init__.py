"""The Python SDK for Formation MCP: `Client` (async) and `SyncClient` (blocking), plain
dataclasses for results (`Tool`, `Operation`, `Grant`, ...), one exception class per gRPC code
(`NotFound`, `InvalidArgument`, ...), and workload helpers (`FormfileBuilder`,
`pack_context`)."""

from formation_mcp.client.client import Client, OperationsAPI, ToolsAPI, result_of
from formation_mcp.client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    FmcpClientError,
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
)
from formation_mcp.client.events import EventsAPI
from formation_mcp.client.grants import AuthorizationsAPI, ConsoleLink, GrantsAPI
from formation_mcp.client.models import (
    Account,
    AuthorizationRequest,
    Event,
    Grant,
    LogLine,
    Operation,
    OperationError,
    OperationMetadata,
    Tool,
    ToolAnnotations,
)
from formation_mcp.client.policies import EffectivePolicy, PoliciesAPI, Policy, QuotaUsage
from formation_mcp.client.retry import RetryPolicy
from formation_mcp.client.sync import SyncClient
from formation_mcp.client.workloads import FormfileBuilder, find_formfile, pack_context

__all__ = [
    "Aborted",
    "Account",
    "AlreadyExists",
    "AuthorizationRequest",
    "AuthorizationsAPI",
    "Cancelled",
    "Client",
    "ConsoleLink",
    "DataLoss",
    "DeadlineExceeded",
    "EffectivePolicy",
    "Event",
    "EventsAPI",
    "FailedPrecondition",
    "FieldViolation",
    "FmcpClientError",
    "FormfileBuilder",
    "Grant",
    "GrantsAPI",
    "Internal",
    "InvalidArgument",
    "LogLine",
    "NotFound",
    "Operation",
    "OperationError",
    "OperationMetadata",
    "OperationsAPI",
    "OutOfRange",
    "PermissionDenied",
    "PoliciesAPI",
    "Policy",
    "QuotaUsage",
    "ResourceExhausted",
    "RetryPolicy",
    "SyncClient",
    "Tool",
    "ToolAnnotations",
    "ToolsAPI",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "find_formfile",
    "pack_context",
    "result_of",
]
