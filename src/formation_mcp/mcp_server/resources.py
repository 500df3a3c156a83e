"""MCP resources: what an agent can read without calling a tool, through our API with the
caller's credentials (so a resource is found only by its owner).

- `formation://operations/{id}`: the operation as JSON (GetOperation; its recent log lines).
- `formation://instances/{id}`: an instance's status (`vm.status`: state, ports, last lines).
- `formation://instances/{id}/logs`: its latest output lines (`vm.logs`: at most LOG_LINES
  lines and LOG_BYTES bytes, with `truncated` and the cursors to page on with `vm.logs`).
- `formation://packs/{build_id}/formfile`: the Formfile a pack was built from (`pack.get`).
- `formation://tools/{name}`: a tool as GetTool describes it (schemas, annotations, aliases,
  and `refusal` when the caller's roles or policy would refuse a call).

`resources/list` pages the caller's recent ones: the first page has their live instances and
newest packs, then every page a page of their operations (newest first). Every body is
bounded: an operation's log lines are trimmed (oldest first) to fit MAX_BODY_CHARS.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2, tools_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from google.rpc import code_pb2
from mcp.shared.exceptions import MCPError

from formation_mcp.mcp_server.backend import UNARY_TIMEOUT_SECONDS, Api, Context, ToolError

log = logging.getLogger(__name__)

SCHEME: Final = "formation://"
OPERATION_TEMPLATE: Final = SCHEME + "operations/{id}"
INSTANCE_TEMPLATE: Final = SCHEME + "instances/{id}"
LOGS_TEMPLATE: Final = SCHEME + "instances/{id}/logs"
FORMFILE_TEMPLATE: Final = SCHEME + "packs/{build_id}/formfile"
TOOL_TEMPLATE: Final = SCHEME + "tools/{name}"
JSON: Final = "application/json"
RESOURCE_NOT_FOUND: Final = -32002
"""The spec's error code for an unknown resource."""
MAX_BODY_CHARS: Final = 256 * 1024
LIST_OPERATIONS: Final = 50
LIST_INSTANCES: Final = 50
LIST_PACKS: Final = 50
LOG_LINES: Final = 500
LOG_BYTES: Final = 64 * 1024

_OPERATION = re.compile(r"^formation://operations/([A-Za-z0-9_-]{1,128})$")
_INSTANCE = re.compile(r"^formation://instances/([A-Za-z0-9_.-]{1,255})$")
_LOGS = re.compile(r"^formation://instances/([A-Za-z0-9_.-]{1,255})/logs$")
_FORMFILE = re.compile(r"^formation://packs/([0-9a-f]{64})/formfile$")
_TOOL = re.compile(r"^formation://tools/([A-Za-z0-9_.-]{1,128})$")

TEMPLATES: Final = (
    types.ResourceTemplate(
        uri_template=OPERATION_TEMPLATE,
        name="operation",
        title="Operation",
        description="A long-running operation (an MCP task): state, progress, result or error, "
        "its most recent log lines.",
        mime_type=JSON,
    ),
    types.ResourceTemplate(
        uri_template=INSTANCE_TEMPLATE,
        name="instance",
        title="Instance",
        description="An instance's status (by id or name): state, pid, uptime, ports, exit "
        "code, resources and its last lines of output.",
        mime_type=JSON,
    ),
    types.ResourceTemplate(
        uri_template=LOGS_TEMPLATE,
        name="instance-logs",
        title="Instance logs",
        description=f"An instance's latest output lines (by id or name), at most {LOG_LINES} "
        f"lines and {LOG_BYTES // 1024} KiB, each with its time and stream; `truncated`, "
        "`start_cursor` and `hint` say how to read further back with the vm.logs tool.",
        mime_type=JSON,
    ),
    types.ResourceTemplate(
        uri_template=FORMFILE_TEMPLATE,
        name="pack-formfile",
        title="Pack Formfile",
        description="The Formfile a pack was built from, normalized, as a JSON document.",
        mime_type=JSON,
    ),
    types.ResourceTemplate(
        uri_template=TOOL_TEMPLATE,
        name="tool",
        title="Tool",
        description="A tool (by its name, e.g. vm.create, or its MCP name, e.g. vm_create): "
        "description, input and output schemas, annotations, and `refusal` when your roles "
        "or policy would refuse a call (e.g. it needs approval).",
        mime_type=JSON,
    ),
)


class Resources:
    def __init__(self, api: Api) -> None:
        self._api = api

    async def templates(
        self, _ctx: Context, _params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=list(TEMPLATES))

    async def listing(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        cursor = params.cursor if params is not None else None
        listed: list[types.Resource] = []
        if not cursor:
            listed += await self._instances(ctx)
            listed += await self._packs(ctx)
        try:
            page: operations_pb2.ListOperationsResponse = (
                await self._api.operations().ListOperations(
                    operations_pb2.ListOperationsRequest(
                        page_size=LIST_OPERATIONS, page_token=cursor or ""
                    ),
                    metadata=await self._api.metadata(ctx),
                    timeout=UNARY_TIMEOUT_SECONDS,
                )
            )
        except grpc.aio.AioRpcError as error:
            code = types.INVALID_PARAMS if cursor else types.INTERNAL_ERROR
            raise MCPError(code, f"listing operations failed: {error.details()}") from None
        listed += [_operation_resource(operation) for operation in page.operations]
        return types.ListResourcesResult(resources=listed, next_cursor=page.next_page_token or None)

    async def read(
        self, ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if match := _OPERATION.fullmatch(uri):
            body = await self._operation(ctx, "operations/" + match[1], uri)
        elif match := _INSTANCE.fullmatch(uri):
            body = await self._tool(ctx, uri, "vm.status", {"id": match[1]})
        elif match := _LOGS.fullmatch(uri):
            arguments = {"id": match[1], "tail": LOG_LINES, "max_bytes": LOG_BYTES}
            body = await self._tool(ctx, uri, "vm.logs", arguments)
        elif match := _FORMFILE.fullmatch(uri):
            pack = await self._tool(ctx, uri, "pack.get", {"build_id": match[1]})
            body = pack["formfile"]
        elif match := _TOOL.fullmatch(uri):
            body = await self._tool_description(ctx, "tools/" + match[1], uri)
        else:
            raise MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})
        text = _bounded_json(body)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=JSON, text=text)]
        )

    async def _operation(self, ctx: Context, name: str, uri: str) -> dict[str, Any]:
        try:
            operation: lro_pb2.Operation = await self._api.operations().GetOperation(
                operations_pb2.GetOperationRequest(name=name),
                metadata=await self._api.metadata(ctx),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _read_error(uri, error.code(), str(error.details())) from None
        return json_format.MessageToDict(operation)

    async def _tool_description(self, ctx: Context, name: str, uri: str) -> dict[str, Any]:
        try:
            tool = await self._api.tools().GetTool(
                tools_pb2.GetToolRequest(name=name),
                metadata=await self._api.metadata(ctx),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _read_error(uri, error.code(), str(error.details())) from None
        return json_format.MessageToDict(tool)

    async def _tool(
        self, ctx: Context, uri: str, tool: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return await self._api.call(ctx, tool, arguments)
        except grpc.aio.AioRpcError as error:
            raise _read_error(uri, error.code(), str(error.details())) from None
        except ToolError as error:
            code = grpc.StatusCode.NOT_FOUND if error.code == code_pb2.NOT_FOUND else None
            raise _read_error(uri, code, str(error)) from None

    async def _listed(self, ctx: Context, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A listing tool's output; nothing when the caller may not call it (a viewer)."""
        try:
            return await self._api.call(ctx, tool, arguments)
        except (grpc.aio.AioRpcError, ToolError) as error:
            log.info("resources/list leaves out %s: %s", tool, error)
            return {}

    async def _instances(self, ctx: Context) -> list[types.Resource]:
        listed = await self._listed(ctx, "vm.list", {})
        instances = listed.get("instances", [])[:LIST_INSTANCES]
        return [
            types.Resource(
                uri=f"{SCHEME}instances/{instance['instance_id']}",
                name=f"instance {instance['name']}",
                title=f"Instance {instance['name']} ({instance['state']})",
                mime_type=JSON,
            )
            for instance in instances
        ]

    async def _packs(self, ctx: Context) -> list[types.Resource]:
        listed = await self._listed(ctx, "pack.list", {"limit": LIST_PACKS})
        return [
            types.Resource(
                uri=f"{SCHEME}packs/{pack['build_id']}/formfile",
                name=f"formfile of {pack['name']}",
                title=f"Formfile of pack {pack['name']} ({pack['build_id'][:12]})",
                mime_type=JSON,
                size=None,
            )
            for pack in listed.get("packs", [])
        ]


def _operation_resource(operation: lro_pb2.Operation) -> types.Resource:
    metadata = operations_pb2.OperationMetadata()
    operation.metadata.Unpack(metadata)
    state = operations_pb2.OperationMetadata.State.Name(metadata.state).lower()
    return types.Resource(
        uri=SCHEME + operation.name,
        name=operation.name,
        title=f"{metadata.tool} ({state})",
        mime_type=JSON,
    )


def _read_error(uri: str, code: grpc.StatusCode | None, details: str) -> MCPError:
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri} ({details})", {"uri": uri})
    return MCPError(types.INTERNAL_ERROR, f"reading {uri} failed: {details}")


def _bounded_json(body: dict[str, Any]) -> str:
    """JSON within MAX_BODY_CHARS: an operation's log lines go first (oldest first), marked."""
    text = json.dumps(body, indent=1, sort_keys=True)
    logs = body.get("metadata", {}).get("logs") if isinstance(body.get("metadata"), dict) else None
    dropped = 0
    while len(text) > MAX_BODY_CHARS and logs:
        half = max(1, len(logs) // 2)
        dropped += half
        del logs[:half]
        body["metadata"]["logsTruncated"] = f"{dropped} older lines left out"
        text = json.dumps(body, indent=1, sort_keys=True)
    if len(text) > MAX_BODY_CHARS:
        raise MCPError(types.INTERNAL_ERROR, f"the resource is over {MAX_BODY_CHARS} characters")
    return text
