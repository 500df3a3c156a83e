"""Workloads in tests: who they run as, and the instance tools' shared steps (call a tool to
its end, build the tiny HTTP app, ship it, fetch from it)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from tests.support.auth import Md
from tests.support.operations import struct
from tests.support.waiting import eventually

from formation_mcp.settings import Settings
from formation_mcp.structs import struct_to_dict

WORKLOAD_USER = Settings().effective_run_as or None
"""Who workloads run as here: `nobody` when the tests run as root, else the tests' user."""

APP = """\
import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + os.environ["FMCP_INSTANCE_NAME"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello)
print("listening on", os.environ["FMCP_PORT_8080"], flush=True)
server.serve_forever()
"""
WEB_FORMFILE = """\
NAME web
RUN python3 -m py_compile app.py
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080
"""


def output_of(operation: lro_pb2.Operation) -> dict[str, Any]:
    """The tool's output as plain JSON values (whole numbers as int)."""
    result = operations_pb2.ToolResult()
    assert operation.response.Unpack(result)
    return struct_to_dict(result.output)


async def call(channel: grpc.aio.Channel, md: Md, tool: str, **arguments: Any) -> lro_pb2.Operation:
    """Call a tool and wait for its operation to finish."""
    operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
        tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)), metadata=md
    )
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    async with asyncio.timeout(60):
        while not operation.done:
            operation = await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=operation.name), metadata=md
            )
    return operation


async def succeed(channel: grpc.aio.Channel, md: Md, tool: str, **arguments: Any) -> dict[str, Any]:
    operation = await call(channel, md, tool, **arguments)
    assert not operation.HasField("error"), operation.error.message
    return output_of(operation)


async def build(
    channel: grpc.aio.Channel, md: Md, formfile: str = WEB_FORMFILE, app: str = APP
) -> str:
    result = await succeed(
        channel, md, "pack.build", formfile=formfile, context_files={"app.py": app}
    )
    build_id: str = result["build_id"]
    return build_id


async def ship(channel: grpc.aio.Channel, md: Md, name: str, **extra: Any) -> dict[str, Any]:
    build_id = await build(channel, md)
    return await succeed(channel, md, "pack.ship", build_id=build_id, instance_name=name, **extra)


async def fetch(port: int) -> str:
    """The instance's answer, once it listens (it starts asynchronously)."""
    answer: list[str] = []

    async def answered() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.TransportError:
            return False
        answer.append(response.text)
        return True

    await eventually(answered, deadline=20)
    return answer[0]


async def status(channel: grpc.aio.Channel, md: Md, reference: str) -> dict[str, Any]:
    return await succeed(channel, md, "vm.status", id=reference)
