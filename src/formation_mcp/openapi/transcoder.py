"""Envoy's gRPC-JSON transcoder configuration, as far as it shapes the REST API.

From `envoy/envoy.yaml`: which services are transcoded, and the print options (field names as
in the proto with `preserve_proto_field_names`, zero values printed with
`always_print_primitive_fields`, server streams as NDJSON with `stream_newline_delimited`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from formation_mcp.envoy import TEMPLATE
from formation_mcp.openapi.errors import OpenApiError

TRANSCODER = "envoy.filters.http.grpc_json_transcoder"


@dataclass(frozen=True)
class TranscoderConfig:
    """What of the transcoder's configuration shapes the REST API."""

    services: tuple[str, ...]
    preserve_proto_field_names: bool = True
    always_print_primitive_fields: bool = True
    always_print_enums_as_ints: bool = False
    stream_newline_delimited: bool = True
    max_request_body_size: int | None = None


def _find_transcoder(node: object) -> dict[str, Any] | None:
    if isinstance(node, dict):
        if node.get("name") == TRANSCODER and isinstance(node.get("typed_config"), dict):
            found: dict[str, Any] = node["typed_config"]
            return found
        children: Iterable[object] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        result = _find_transcoder(child)
        if result is not None:
            return result
    return None


def load_transcoder_config(path: Path = TEMPLATE) -> TranscoderConfig:
    """The transcoder filter's settings in an Envoy configuration file."""
    config = _find_transcoder(yaml.safe_load(path.read_text()))
    if config is None:
        raise OpenApiError(f"{path}: no {TRANSCODER} filter")
    services = config.get("services") or []
    if not services:
        raise OpenApiError(f"{path}: the transcoder lists no services")
    printing = config.get("print_options") or {}
    size = config.get("max_request_body_size")
    return TranscoderConfig(
        services=tuple(str(name) for name in services),
        preserve_proto_field_names=bool(printing.get("preserve_proto_field_names", False)),
        always_print_primitive_fields=bool(printing.get("always_print_primitive_fields", False)),
        always_print_enums_as_ints=bool(printing.get("always_print_enums_as_ints", False)),
        stream_newline_delimited=bool(printing.get("stream_newline_delimited", False)),
        max_request_body_size=int(size) if size is not None else None,
    )
