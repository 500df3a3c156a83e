"""`python -m formation_mcp.openapi`: write the document, or check the committed one.

`--check` (run by `make check-generated`) exits 1 with a diff when the committed document is
stale, 2 when the descriptor set or Envoy's configuration cannot be read.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from google.protobuf.message import DecodeError

from formation_mcp.envoy import DESCRIPTOR, REPOSITORY, TEMPLATE
from formation_mcp.openapi.document import generate_text
from formation_mcp.openapi.errors import OpenApiError

OUTPUT = REPOSITORY / "openapi" / "formation_mcp.openapi.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m formation_mcp.openapi",
        description="Write the OpenAPI document of the REST API (Envoy's transcoding of the "
        "gRPC API), or check that the committed one is current.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff when stale")
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR, help="descriptor set")
    parser.add_argument("--envoy-config", type=Path, default=TEMPLATE, help="envoy.yaml")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the document")
    args = parser.parse_args(argv)
    try:
        text = generate_text(args.descriptor, args.envoy_config)
    except (OpenApiError, OSError, DecodeError, yaml.YAMLError) as exc:
        print(f"openapi: {exc}", file=sys.stderr)
        return 2
    output: Path = args.output
    if args.check:
        current = output.read_text() if output.exists() else ""
        if current == text:
            return 0
        sys.stderr.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{output} (committed)",
                tofile=f"{output} (generated)",
            )
        )
        print(
            f"{output} is stale: run 'make proto' (or python -m formation_mcp.openapi) and commit",
            file=sys.stderr,
        )
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return 0
