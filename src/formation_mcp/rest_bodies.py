"""Writes `generated/rest_bodies.lua`: what Envoy needs to refuse a REST body with a field its
request message does not have (the gRPC-JSON transcoder drops such fields silently, so a
forgotten `arguments` wrapper read as "'text' is a required property" although text was sent).

The file is the REST routes with a body (method, a Lua pattern of the path, the message the
body is, from the protos' `google.api.http` bindings) and every field each such message
accepts (proto and JSON names; where to descend), followed by the checker itself,
`envoy/rest_bodies.lua`, which reads them. `make proto` writes it; `make check-generated`
fails when it is stale. Envoy loads it as a Lua filter (envoy/envoy.yaml).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from google.protobuf import descriptor_pb2

from formation_mcp.envoy import DESCRIPTOR, REPOSITORY, TEMPLATE
from formation_mcp.openapi import (
    DescriptorIndex,
    OpenApiError,
    load_transcoder_config,
    rest_operations,
)

CHECKER = REPOSITORY / "envoy" / "rest_bodies.lua"
OUTPUT = DESCRIPTOR.parent / "rest_bodies.lua"
FREE_FORM = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
    | {"google.protobuf.Any"}
)
"""JSON with keys of the caller's choosing: nothing below them is checked."""
SCALAR_MESSAGES = re.compile(r"google\.protobuf\.(Timestamp|Duration|FieldMask|\w+Value|Empty)")
"""Messages whose JSON form is a string, number or bool (Empty: no fields to name)."""
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_PARAMETER = re.compile(r"\{([^}]*)\}")


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def path_pattern(openapi_path: str, multi_segment: frozenset[str]) -> str:
    """`/v1/tools/{tool}:call` -> `^/v1/tools/[^/]+:call$` (a `**` parameter: `.+`)."""
    pattern, position = "^", 0
    for match in _PARAMETER.finditer(openapi_path):
        pattern += re.sub(r"([%^$().\[\]*+?-])", r"%\1", openapi_path[position : match.start()])
        pattern += ".+" if match.group(1) in multi_segment else "[^/]+"
        position = match.end()
    return pattern + re.sub(r"([%^$().\[\]*+?-])", r"%\1", openapi_path[position:]) + "$"


class _Schema:
    """The routes with a body and the fields of every message a body may hold."""

    def __init__(self, index: DescriptorIndex) -> None:
        self.index = index
        self.messages: dict[str, list[tuple[str, str]]] = {}

    def body_message(self, request: str, body: str) -> str:
        """The message a body is: the request (`*`) or the type of the `body` field."""
        message = self.index.message(request)
        for name in body.split(".") if body != "*" else []:
            proto = next((f for f in message.proto.field if f.name == name), None)
            if proto is None or proto.type != _MESSAGE:
                raise OpenApiError(f"{request}: body {body!r} is not a message field")
            message = self.index.message(proto.type_name)
        return message.full_name

    def routes(self, services: Sequence[str]) -> Iterator[tuple[str, str, str]]:
        """(HTTP method, path pattern, body message) of every binding that takes a body;
        the body messages (and what they hold) are added to `messages`."""
        for operation in rest_operations(self.index, services):
            if not operation.binding.body:
                continue
            service = self.index.services[operation.service].proto
            method = next(m for m in service.method if m.name == operation.method)
            message = self.body_message(method.input_type.lstrip("."), operation.binding.body)
            self.add(message)
            multi = frozenset(p.name for p in operation.path.parameters if p.multi_segment)
            pattern = path_pattern(operation.path.openapi_path, multi)
            yield operation.binding.method.upper(), pattern, message

    def add(self, full_name: str) -> None:
        """`full_name` and every message below it that is checked."""
        if full_name in self.messages or full_name in FREE_FORM:
            return
        message = self.index.message(full_name)
        entries: list[tuple[str, str]] = []
        self.messages[full_name] = entries
        for proto in message.proto.field:
            child = self._child(proto)
            for key in dict.fromkeys((proto.name, proto.json_name or proto.name)):
                entries.append((key, child))
            if child not in ("", "*"):
                self.add(child)

    def _child(self, proto: descriptor_pb2.FieldDescriptorProto) -> str:
        """ "" for a scalar, "*" for free-form JSON, else the message to descend into."""
        if proto.type != _MESSAGE:
            return ""
        name = proto.type_name.lstrip(".")
        if name in FREE_FORM:
            return "*"
        if SCALAR_MESSAGES.fullmatch(name):
            return ""
        if self.index.message(name).proto.options.map_entry:
            return "*"
        return name


def generate_text(descriptor: Path = DESCRIPTOR, envoy_config: Path = TEMPLATE) -> str:
    index = DescriptorIndex.load(descriptor)
    services = load_transcoder_config(envoy_config).services
    schema = _Schema(index)
    routes = list(schema.routes(services))
    lines = [
        "-- Generated by `python -m formation_mcp.rest_bodies` (make proto) from the protos and",
        "-- envoy/rest_bodies.lua. Do not edit.",
        "",
        "-- REST routes that take a body: method, path pattern, the message the body is.",
        "local REST_ROUTES = {",
    ]
    for method, pattern, message in routes:
        lines.append(f"  {{{lua_string(method)}, {lua_string(pattern)}, {lua_string(message)}}},")
    lines += [
        "}",
        "",
        '-- Fields each message takes: key -> "" (a scalar), "*" (free-form JSON) or the',
        "-- message to check below it.",
        "local REST_MESSAGES = {",
    ]
    for name in sorted(schema.messages):
        lines.append(f"  [{lua_string(name)}] = {{")
        lines.extend(
            f"    [{lua_string(key)}] = {lua_string(child)},"
            for key, child in schema.messages[name]
        )
        lines.append("  },")
    lines += ["}", "", CHECKER.read_text().rstrip("\n"), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m formation_mcp.rest_bodies",
        description="Write the Lua filter that refuses REST bodies with unknown fields.",
    )
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR, help="descriptor set")
    parser.add_argument("--envoy-config", type=Path, default=TEMPLATE, help="envoy.yaml")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Lua file")
    args = parser.parse_args(argv)
    try:
        text = generate_text(args.descriptor, args.envoy_config)
    except (OpenApiError, OSError) as exc:
        print(f"rest_bodies: {exc}", file=sys.stderr)
        return 2
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
