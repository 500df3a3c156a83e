"""`pack.list` and `pack.get`: the caller's packs, read from the packs table (quick,
read-only tools; they run inline in the API). `pack.get` returns the Formfile as the document
the build normalized it to, so agents (and the MCP resource `formation://packs/{build_id}/
formfile`) can read what a pack was built from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from formation_mcp.db.database import Database
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec
from formation_mcp.workloads.packs import PackStore

SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100

_BUILD_ID: Final = {
    "type": "string",
    "pattern": "^[0-9a-f]{64}$",
    "description": "A pack's build_id, as pack.build returned it.",
}
_SUMMARY: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "build_id": {"type": "string"},
        "name": {"type": "string"},
        "digest": {"type": "string"},
        "size_bytes": {"type": "integer"},
        "create_time": {"type": "string", "description": "RFC 3339, UTC."},
    },
    "required": ["build_id", "name", "digest", "size_bytes", "create_time"],
}
PACK_LIST_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "description": f"At most this many, newest first (default {DEFAULT_LIMIT}).",
        }
    },
    "additionalProperties": False,
}
PACK_LIST_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "packs": {"type": "array", "items": _SUMMARY},
        "truncated": {"type": "boolean", "description": "True when older packs were left out."},
    },
    "required": ["packs", "truncated"],
}
PACK_GET_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {"build_id": _BUILD_ID},
    "required": ["build_id"],
    "additionalProperties": False,
}
PACK_GET_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        **_SUMMARY["properties"],
        "formfile": {
            "type": "object",
            "description": "The Formfile as the build normalized it (the document form).",
        },
    },
    "required": [*_SUMMARY["required"], "formfile"],
}


def _time(microseconds: int) -> str:
    return datetime.fromtimestamp(microseconds / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


class PackCatalog:
    def __init__(self, database: Database) -> None:
        self._packs = PackStore(database)

    async def list(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        limit = int(arguments.get("limit", DEFAULT_LIMIT))
        found = await self._packs.list(context.owner, limit + 1)
        return {
            "packs": [
                {
                    "build_id": pack.build_id,
                    "name": pack.name,
                    "digest": pack.digest,
                    "size_bytes": pack.size_bytes,
                    "create_time": _time(pack.create_time),
                }
                for pack in found[:limit]
            ],
            "truncated": len(found) > limit,
        }

    async def get(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        pack = await self._packs.get(arguments["build_id"], context.owner)
        formfile: dict[str, Any] = json.loads(pack.formfile)
        return {
            "build_id": pack.build_id,
            "name": pack.name,
            "digest": pack.digest,
            "size_bytes": pack.size_bytes,
            "create_time": _time(pack.create_time),
            "formfile": formfile,
        }


def register(registry: ToolRegistry, database: Database) -> None:
    catalog = PackCatalog(database)
    registry.register(
        ToolSpec(
            name="pack.list",
            title="List packs",
            description="Your packs (builds), newest first: build_id, name, digest, size.",
            version="1.0.0",
            category="pack",
            input_schema=PACK_LIST_INPUT,
            output_schema=PACK_LIST_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        catalog.list,
    )
    registry.register(
        ToolSpec(
            name="pack.get",
            title="Get a pack",
            description=(
                "One of your packs by build_id, with the Formfile it was built from "
                "(normalized, as a JSON document)."
            ),
            version="1.0.0",
            category="pack",
            input_schema=PACK_GET_INPUT,
            output_schema=PACK_GET_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        catalog.get,
    )
