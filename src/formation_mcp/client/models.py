"""Plain Python values for what the API returns, so SDK users never handle protobuf messages:
tools, operations (metadata, log lines, result or error), accounts, grants and MCP hosts'
sign-in (authorization) requests.

Every dataclass has `to_dict()` giving JSON-ready data (times as RFC 3339 strings), which the
CLI prints as its stable JSON output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

from formation.mcp.v1 import auth_pb2, events_pb2, operations_pb2, tools_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from formation_mcp.client.errors import FmcpClientError, error_from_status


def _time(stamp: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name))
            for f in fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _plain_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as Python values; whole numbers as ints (Struct keeps every number as a
    double, so a port 8000 would otherwise read 8000.0)."""
    data: dict[str, Any] = _whole(json_format.MessageToDict(message))
    return data


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


class _Plain:
    """`to_dict()` for the dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(self)
        return data


@dataclass(frozen=True, slots=True)
class ToolAnnotations(_Plain):
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    long_running: bool = False


@dataclass(frozen=True, slots=True)
class Tool(_Plain):
    """A tool: `name` is the short name (`pack.build`), `resource_name` the API's
    (`tools/pack.build`)."""

    name: str
    resource_name: str
    title: str
    description: str
    version: str
    category: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    annotations: ToolAnnotations
    permission: str
    aliases: list[str]
    allowed: bool = True
    """Whether the caller may call it (its roles, grant and policy)."""
    refusal: str = ""
    """Why not, when it may not."""

    @classmethod
    def from_proto(cls, tool: tools_pb2.Tool) -> Tool:
        return cls(
            name=tool.name.removeprefix("tools/"),
            resource_name=tool.name,
            title=tool.title,
            description=tool.description,
            version=tool.version,
            category=tool.category,
            input_schema=_plain_struct(tool.input_schema),
            output_schema=_plain_struct(tool.output_schema),
            annotations=ToolAnnotations(
                read_only=tool.annotations.read_only,
                destructive=tool.annotations.destructive,
                idempotent=tool.annotations.idempotent,
                long_running=tool.annotations.long_running,
            ),
            permission=tool.permission,
            aliases=list(tool.aliases),
            allowed=tool.allowed,
            refusal=tool.refusal,
        )


@dataclass(frozen=True, slots=True)
class LogLine(_Plain):
    sequence: int
    time: datetime | None
    stream: str
    """STDOUT, STDERR, SYSTEM (or STREAM_UNSPECIFIED)."""
    text: str


@dataclass(frozen=True, slots=True)
class OperationMetadata(_Plain):
    tool: str
    owner: str
    state: str
    """PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED or AWAITING_APPROVAL."""
    progress_percent: int
    stage: str
    status_message: str
    create_time: datetime | None
    update_time: datetime | None
    end_time: datetime | None
    sequence: int
    cancel_requested: bool
    attempt: int
    logs: list[LogLine]
    request_id: str
    approval: dict[str, Any] = field(default_factory=dict)
    """The human approval the call needed (state, reason, rule, expire_time, decided_by,
    comment); empty when it needed none."""

    @classmethod
    def from_proto(cls, meta: operations_pb2.OperationMetadata) -> OperationMetadata:
        return cls(
            tool=meta.tool,
            owner=meta.owner,
            state=operations_pb2.OperationMetadata.State.Name(meta.state),
            approval=json_format.MessageToDict(meta.approval, preserving_proto_field_name=True)
            if meta.HasField("approval")
            else {},
            progress_percent=meta.progress_percent,
            stage=meta.stage,
            status_message=meta.status_message,
            create_time=_time(meta.create_time),
            update_time=_time(meta.update_time),
            end_time=_time(meta.end_time, meta.HasField("end_time")),
            sequence=meta.sequence,
            cancel_requested=meta.cancel_requested,
            attempt=meta.attempt,
            logs=[
                LogLine(
                    sequence=line.sequence,
                    time=_time(line.time),
                    stream=operations_pb2.LogLine.Stream.Name(line.stream),
                    text=line.text,
                )
                for line in meta.logs
            ],
            request_id=meta.request_id,
        )


@dataclass(frozen=True, slots=True)
class OperationError(_Plain):
    """Why an operation failed: the gRPC code's name, the message and the ErrorInfo reason."""

    code: str
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Operation(_Plain):
    """An operation: `result` is the tool's output once it succeeded, `error` once it failed
    or was cancelled."""

    name: str
    done: bool
    metadata: OperationMetadata
    result: dict[str, Any] | None = None
    error: OperationError | None = None
    _exception: FmcpClientError | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, operation: lro_pb2.Operation) -> Operation:
        meta = operations_pb2.OperationMetadata()
        if operation.HasField("metadata"):
            operation.metadata.Unpack(meta)
        result: dict[str, Any] | None = None
        error: OperationError | None = None
        exception: FmcpClientError | None = None
        if operation.HasField("response"):
            tool_result = operations_pb2.ToolResult()
            operation.response.Unpack(tool_result)
            result = _plain_struct(tool_result.output)
        elif operation.HasField("error"):
            exception = error_from_status(operation.error, operation=operation.name)
            error = OperationError(
                code=exception.code.name,
                message=exception.message,
                reason=exception.reason,
                metadata=exception.metadata,
            )
        return cls(
            name=operation.name,
            done=operation.done,
            metadata=OperationMetadata.from_proto(meta),
            result=result,
            error=error,
            _exception=exception,
        )

    @property
    def state(self) -> str:
        return self.metadata.state

    def exception(self) -> FmcpClientError | None:
        """The error as the SDK's exception class (e.g. `FailedPrecondition`), or None."""
        return self._exception


@dataclass(frozen=True, slots=True)
class Account(_Plain):
    name: str
    key_id: str
    roles: list[str]
    disabled: bool
    create_time: datetime | None

    @classmethod
    def from_proto(cls, account: auth_pb2.Account) -> Account:
        return cls(
            name=account.name,
            key_id=account.key_id,
            roles=list(account.roles),
            disabled=account.disabled,
            create_time=_time(account.create_time),
        )


@dataclass(frozen=True, slots=True)
class Grant(_Plain):
    """A login session or an MCP host the account approved (`fmcp account sessions`)."""

    name: str
    account: str
    kind: str
    """LOGIN or OAUTH."""
    client_id: str
    client_name: str
    scope: str
    resource: str
    state: str
    """ACTIVE, REVOKED or EXPIRED."""
    create_time: datetime | None
    last_use_time: datetime | None
    expire_time: datetime | None
    revoke_time: datetime | None
    revoke_reason: str

    @classmethod
    def from_proto(cls, grant: auth_pb2.Grant) -> Grant:
        return cls(
            name=grant.name,
            account=grant.account,
            kind=auth_pb2.Grant.Kind.Name(grant.kind),
            client_id=grant.client_id,
            client_name=grant.client_name,
            scope=grant.scope,
            resource=grant.resource,
            state=auth_pb2.Grant.State.Name(grant.state),
            create_time=_time(grant.create_time),
            last_use_time=_time(grant.last_use_time),
            expire_time=_time(grant.expire_time),
            revoke_time=_time(grant.revoke_time, grant.HasField("revoke_time")),
            revoke_reason=grant.revoke_reason,
        )


@dataclass(frozen=True, slots=True)
class Event(_Plain):
    """Something that happened to a resource (`fmcp events list`): `instance.failed`, ..."""

    name: str
    """`events/{id}`: pass it as `after` to resume a watch."""
    type: str
    resource: str
    owner: str
    time: datetime | None
    severity: str
    """INFO, WARNING or ERROR."""
    message: str
    data: dict[str, Any]
    node: str

    @classmethod
    def from_proto(cls, event: events_pb2.Event) -> Event:
        return cls(
            name=event.name,
            type=event.type,
            resource=event.resource,
            owner=event.owner,
            time=_time(event.time),
            severity=events_pb2.Event.Severity.Name(event.severity),
            message=event.message,
            data=_plain_struct(event.data),
            node=event.node,
        )


@dataclass(frozen=True, slots=True)
class AuthorizationRequest(_Plain):
    """An MCP host's sign-in request, by the code its page shows (`fmcp authorize CODE`)."""

    name: str
    user_code: str
    client_id: str
    client_name: str
    redirect_uri: str
    resource: str
    scope: str
    state: str
    """PENDING, APPROVED, DENIED, EXPIRED or COMPLETED."""
    account: str
    granted_scope: str
    requested_account: str
    create_time: datetime | None
    expire_time: datetime | None
    nonce: str
    domain: str

    @classmethod
    def from_proto(cls, request: auth_pb2.AuthorizationRequest) -> AuthorizationRequest:
        return cls(
            name=request.name,
            user_code=request.user_code,
            client_id=request.client_id,
            client_name=request.client_name,
            redirect_uri=request.redirect_uri,
            resource=request.resource,
            scope=request.scope,
            state=auth_pb2.AuthorizationRequest.State.Name(request.state),
            account=request.account,
            granted_scope=request.granted_scope,
            requested_account=request.requested_account,
            create_time=_time(request.create_time),
            expire_time=_time(request.expire_time),
            nonce=request.nonce,
            domain=request.domain,
        )
