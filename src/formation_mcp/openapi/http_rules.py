"""`google.api.http` rules: each RPC's HTTP bindings, their path templates expanded.

Path templates are expanded into plain OpenAPI paths: `/v1/{name=operations/*}` becomes
`/v1/operations/{operation}`, the resource name being `operations/{operation}`; one path
parameter per `*`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from formation_mcp.openapi.errors import OpenApiError

_HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One `google.api.http` rule (or one of its additional bindings)."""

    method: str
    template: str
    body: str
    response_body: str


def http_bindings(method: descriptor_pb2.MethodDescriptorProto) -> list[HttpBinding]:
    if not method.options.HasExtension(annotations_pb2.http):
        return []
    rule = method.options.Extensions[annotations_pb2.http]
    bindings = [_binding(rule)]
    bindings.extend(_binding(extra) for extra in rule.additional_bindings)
    return bindings


def _binding(rule: Any) -> HttpBinding:
    kind = str(rule.WhichOneof("pattern") or "")
    if kind == "custom":
        verb, template = str(rule.custom.kind).lower(), str(rule.custom.path)
    elif kind in _HTTP_METHODS:
        verb, template = kind, str(getattr(rule, kind))
    else:
        raise OpenApiError(f"unsupported google.api.http pattern {kind!r}")
    return HttpBinding(
        method=verb, template=template, body=str(rule.body), response_body=str(rule.response_body)
    )


@dataclass(frozen=True)
class PathParameter:
    """One OpenAPI path parameter: a `*` (or `**`) of a variable in the template."""

    name: str
    field_path: str
    value_template: str
    multi_segment: bool


@dataclass(frozen=True)
class PathTemplate:
    """A parsed `google.api.http` path template, expanded into an OpenAPI path."""

    openapi_path: str
    parameters: tuple[PathParameter, ...]
    bound_fields: frozenset[str]


def _singular(literal: str) -> str:
    """The parameter name for the `*` after a collection: `operations` -> `operation`."""
    word = re.sub(r"[^A-Za-z0-9_]", "_", literal)
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        return word[:-1]
    return f"{word}_id"


def _split_segments(body: str, template: str) -> list[str]:
    """Top-level `/`-separated segments; a `{...}` variable is one segment."""
    segments: list[str] = []
    current, depth = "", 0
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if depth not in (0, 1):
            raise OpenApiError(f"unbalanced braces in {template!r}")
        if char == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise OpenApiError(f"unbalanced braces in {template!r}")
    segments.append(current)
    return segments


def parse_path_template(template: str) -> PathTemplate:
    """`/v1/{name=operations/*}:cancel` -> `/v1/operations/{operation}:cancel`, with the
    path parameter `operation` standing for the `*` of the field `name`."""
    if not template.startswith("/"):
        raise OpenApiError(f"path template {template!r} must start with '/'")
    body, verb = template[1:], ""
    colon = body.rfind(":")
    if colon > body.rfind("/") and colon > body.rfind("}"):
        body, verb = body[:colon], body[colon + 1 :]
    pieces: list[str] = []
    parameters: list[PathParameter] = []
    bound: set[str] = set()

    def add_parameter(base: str, field_path: str, value: str, multi: bool) -> str:
        taken = {parameter.name for parameter in parameters}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        parameters.append(PathParameter(name, field_path, value, multi))
        return f"{{{name}}}"

    for segment in _split_segments(body, template):
        if not (segment.startswith("{") and segment.endswith("}")):
            if segment in ("*", "**"):  # a wildcard bound to no field
                pieces.append(add_parameter(f"segment{len(pieces) + 1}", "", "", segment == "**"))
            elif "{" in segment or "}" in segment or not segment:
                raise OpenApiError(f"bad segment {segment!r} in {template!r}")
            else:
                pieces.append(segment)
            continue
        field_path, _, sub_template = segment[1:-1].partition("=")
        bound.add(field_path)
        sub_segments = (sub_template or "*").split("/")
        first = len(parameters)
        previous = ""
        for i, sub in enumerate(sub_segments):
            if sub not in ("*", "**"):
                pieces.append(sub)
                previous = sub
                continue
            if sub == "**" and i != len(sub_segments) - 1:
                raise OpenApiError(f"'**' must be the last segment in {template!r}")
            if previous:
                base = _singular(previous)
            elif len(sub_segments) == 1:
                base = field_path.replace(".", "_")
            else:
                base = f"{field_path.replace('.', '_')}_{i + 1}"
            pieces.append(add_parameter(base, field_path, "", sub == "**"))
            previous = ""
        value = "/".join(pieces[len(pieces) - len(sub_segments) :])
        parameters[first:] = [
            PathParameter(p.name, p.field_path, value, p.multi_segment) for p in parameters[first:]
        ]
    path = "/" + "/".join(pieces) + (f":{verb}" if verb else "")
    return PathTemplate(
        openapi_path=path, parameters=tuple(parameters), bound_fields=frozenset(bound)
    )
