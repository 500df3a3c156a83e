"""`gate`: what the request gate (`api/request_gate.py`: the decoding guard and the edge rule
for strings) costs per call, in-process and in CPU time, so other load on the machine skews it
little: the gate's interceptor, deserializer and check around a no-op behaviour, against the
same call with the handler's own deserializer and no interceptor. The server's share of a call
is in `unary` (about 385 us per GetOperation at 2,600 calls/s on these machines).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import grpc
from formation.mcp.v1 import operations_pb2, tools_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from bench.common import figure, heading, note, ratio
from formation_mcp.api.request_gate import RequestGate
from formation_mcp.api.wrapping import Handler

CALLS = 20_000
ROUNDS = 3  # the best of three: the least disturbed by other work


def _call_tool(tool: str, arguments: dict[str, Any]) -> tools_pb2.CallToolRequest:
    request = tools_pb2.CallToolRequest(name=f"tools/{tool}", request_id="bench-0001")
    json_format.ParseDict(arguments, request.arguments)
    return request


REQUESTS: list[tuple[str, str, Message]] = [
    (
        "GetOperation",
        "/formation.mcp.v1.OperationsService/GetOperation",
        operations_pb2.GetOperationRequest(name="operations/" + "0123456789abcdef" * 2),
    ),
    (
        "ListOperations with a filter",
        "/formation.mcp.v1.OperationsService/ListOperations",
        operations_pb2.ListOperationsRequest(filter='state = "RUNNING" AND tool = "vm.*"'),
    ),
    (
        "CallTool vm.create",
        "/formation.mcp.v1.ToolsService/CallTool",
        _call_tool(
            "vm.create",
            {"name": "web", "image": "0" * 64, "vcpus": 2, "metadata": {"team": "a", "env": "b"}},
        ),
    ),
    (
        "CallTool pack.build, 200 context files of 1 KiB",
        "/formation.mcp.v1.ToolsService/CallTool",
        _call_tool(
            "pack.build",
            {
                "formfile": "NAME site\nRUN make\nENTRYPOINT ./serve\n",
                "context_files": {f"src/file{i}.txt": "line\n" * 200 for i in range(200)},
            },
        ),
    ),
]


@dataclass(frozen=True)
class _Details:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


async def _no_op(request: Any, context: Any) -> Any:
    return request


class _Continuation:
    """The rest of the server: always the same handler, as grpcio's lookup returns it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, details: Any) -> Handler:
        return self.handler


class _Gated:
    def __init__(self, gate: RequestGate, rest: _Continuation) -> None:
        self.gate = gate
        self.rest = rest

    async def __call__(self, details: Any) -> Handler | None:
        return await self.gate.intercept_service(self.rest, details)


async def _seconds_per_call(handler_for: Any, details: _Details, data: bytes, calls: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(calls):
            handler = await handler_for(details)
            await handler.unary_unary(handler.request_deserializer(data), None)
        best = min(best, (time.process_time() - start) / calls)
    return best


async def run() -> None:
    heading(f"gate: the request gate's CPU cost per call, best of {ROUNDS} rounds")
    gate = RequestGate()
    for label, method, request in REQUESTS:
        plain = _Continuation(
            grpc.unary_unary_rpc_method_handler(
                _no_op, request_deserializer=type(request).FromString
            )
        )
        data = request.SerializeToString()
        calls = max(CALLS * 200 // max(len(data), 200), 200)
        details = _Details(method)
        bare = await _seconds_per_call(plain, details, data, calls)
        gated = await _seconds_per_call(_Gated(gate, plain), details, data, calls)
        figure(f"{label} ({len(data):,} bytes): decode alone", bare * 1e6, "us", 2)
        figure(f"{label}: with the gate", gated * 1e6, "us", 2)
        figure(f"{label}: the gate's cost", (gated - bare) * 1e6, "us", 2)
        ratio(f"{label}: with the gate / decode alone", gated, bare)
    note("GetOperation is the unary bench's call: its gate cost over ~385 us is the share lost")
