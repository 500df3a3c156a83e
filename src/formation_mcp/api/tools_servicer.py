"""ToolsService: thin over `ToolManager`; JSON (Struct) in and out."""

from __future__ import annotations

from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format

from formation_mcp.api.wrapping import Context
from formation_mcp.errors import FmcpError, InvalidArgument
from formation_mcp.identity import current_caller
from formation_mcp.structs import arguments_from_struct
from formation_mcp.tools.manager import ToolManager
from formation_mcp.tools.registry import ToolSpec


def to_tool_message(spec: ToolSpec, refusal: FmcpError | None = None) -> tools_pb2.Tool:
    """`refusal`: why the caller may not call it (None: it may)."""
    tool = tools_pb2.Tool(
        name=spec.resource_name,
        title=spec.title,
        description=spec.description,
        version=spec.version,
        category=spec.category,
        permission=spec.permission,
        aliases=list(spec.aliases),
        annotations=tools_pb2.ToolAnnotations(
            read_only=spec.read_only,
            destructive=spec.destructive,
            idempotent=spec.idempotent,
            long_running=spec.long_running,
        ),
        allowed=refusal is None,
    )
    if refusal is not None:
        rule = refusal.metadata.get("rule")
        label = f"{refusal.reason}: {rule}" if rule else refusal.reason
        tool.refusal = f"{label}: {refusal.message}"[:512]
    json_format.ParseDict(spec.input_schema, tool.input_schema)
    json_format.ParseDict(spec.output_schema, tool.output_schema)
    return tool


class ToolsServicer(tools_pb2_grpc.ToolsServiceServicer):
    def __init__(self, tools: ToolManager) -> None:
        self._tools = tools

    async def ListTools(
        self, request: tools_pb2.ListToolsRequest, context: Context
    ) -> tools_pb2.ListToolsResponse:
        listed, token = self._tools.list_tools(
            current_caller(), request.filter, request.page_size, request.page_token
        )
        return tools_pb2.ListToolsResponse(
            tools=[to_tool_message(spec, why) for spec, why in listed], next_page_token=token
        )

    async def GetTool(self, request: tools_pb2.GetToolRequest, context: Context) -> tools_pb2.Tool:
        spec = self._tools.get_tool(request.name)
        return to_tool_message(spec, self._tools.refusal(current_caller(), spec))

    async def CallTool(
        self, request: tools_pb2.CallToolRequest, context: Context
    ) -> lro_pb2.Operation:
        arguments, size = arguments_from_struct(request.arguments)
        wait = request.wait.ToTimedelta().total_seconds()
        if wait < 0:
            raise InvalidArgument.for_field("wait", "must not be negative (0 answers at once)")
        remaining = context.time_remaining()
        if wait > 0 and remaining is not None:  # answer before the caller's deadline passes
            wait = min(wait, max(remaining - 0.05, 0.001))
        return await self._tools.call(
            current_caller(),
            request.name,
            arguments,
            request.request_id,
            request.validate_only,
            size=size,
            wait=wait,
            reason=request.reason,
        )
