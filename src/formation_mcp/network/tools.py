"""The network tools: network.expose, network.unexpose, network.list.

They run inline on the API server (they write and read the routes table, which every
replica's Envoy is configured from); ownership is the instance tools' (another owner's
instance is NOT_FOUND unless the caller is an admin)."""

from __future__ import annotations

from typing import Any, Final

from formation_mcp.errors import PermissionDenied
from formation_mcp.network.routes import AUTH_MODES, MAX_LISTED, PATH_PATTERN, PUBLIC, RouteManager
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec

SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"

_ID: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "The instance id, or its name.",
}
_PATH_DESCRIPTION: Final = (
    "The path prefix on the front door, e.g. /apps/web/ (starts and ends with /); it is "
    "stripped before the request reaches the instance."
)
_PATH: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": PATH_PATTERN,
    "maxLength": 200,
    "description": _PATH_DESCRIPTION,
}
ROUTE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "url": {"type": "string", "description": "The route's full URL on the front door."},
        "instance_id": {"type": "string"},
        "instance": {"type": "string", "description": "instances/{id}"},
        "instance_name": {"type": "string"},
        "owner": {"type": "string"},
        "port": {"type": "integer", "description": "The instance's EXPOSE port."},
        "auth": {"enum": list(AUTH_MODES)},
        "state": {
            "enum": ["creating", "running", "stopped", "failed", "deleted"],
            "description": "The instance's state: only a running one is reached (others "
            "answer 503 with a JSON body naming the instance and its state).",
        },
        "target": {
            "type": "string",
            "description": "Where the front door sends requests now (running instances).",
        },
    },
    "required": ["path", "url", "instance_id", "instance", "owner", "port", "auth", "state"],
}
EXPOSE_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": _ID,
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "One of the instance's EXPOSE ports (default: the first).",
        },
        "path": {**_PATH, "description": _PATH_DESCRIPTION + " Default: /apps/{name}/."},
        "auth": {
            "enum": list(AUTH_MODES),
            "description": "public (default), or token: Envoy lets through only requests "
            "with a bearer access token of the instance's owner (or an admin).",
        },
    },
    "required": ["id"],
    "additionalProperties": False,
}
UNEXPOSE_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": _ID,
        "path": {**_PATH, "description": "The route to remove (default: all the instance's)."},
    },
    "required": ["id"],
    "additionalProperties": False,
}
LIST_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "all_users": {"type": "boolean", "description": "Every owner's routes (admins only)."}
    },
    "additionalProperties": False,
}
ROUTE_OUTPUT: Final = {"$schema": SCHEMA, **ROUTE_SCHEMA}
ROUTES_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "routes": {"type": "array", "items": ROUTE_SCHEMA},
        "truncated": {
            "type": "boolean",
            "description": f"More routes exist than the {MAX_LISTED} listed.",
        },
    },
    "required": ["count", "routes", "truncated"],
}


class NetworkTools:
    def __init__(self, routes: RouteManager) -> None:
        self._routes = routes

    async def expose(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        view = await self._routes.expose(
            context.owner,
            context.caller_is_admin,
            arguments["id"],
            port=arguments.get("port"),
            path=arguments.get("path"),
            auth=arguments.get("auth", PUBLIC),
        )
        return view.to_output(self._routes.base_url)

    async def unexpose(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        views = await self._routes.unexpose(
            context.owner, context.caller_is_admin, arguments["id"], arguments.get("path")
        )
        listed = [v.to_output(self._routes.base_url) for v in views]
        return {"count": len(listed), "routes": listed, "truncated": False}

    async def list(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        all_users = bool(arguments.get("all_users"))
        if all_users and not context.caller_is_admin:
            raise PermissionDenied(
                "all_users lists every owner's routes: admins only",
                reason="ADMIN_ONLY_ARGUMENT",
                metadata={"argument": "all_users"},
            )
        views, truncated = await self._routes.routes(None if all_users else context.owner)
        listed = [v.to_output(self._routes.base_url) for v in views]
        return {"count": len(listed), "routes": listed, "truncated": truncated}


def register(registry: ToolRegistry, routes: RouteManager) -> None:
    tools = NetworkTools(routes)

    def spec(**fields: Any) -> ToolSpec:
        return ToolSpec(version="1.0.0", category="network", **fields)

    registry.register(
        spec(
            name="network.expose",
            title="Expose an instance through the front door",
            description=(
                "Give an instance's EXPOSE port (default: the first) a URL on the front door: "
                "path (default /apps/{name}/, stripped before the request reaches the "
                "instance), auth public or token (only its owner's bearer access token, or an "
                "admin's). The URL follows the instance across restarts; a stopped instance "
                "answers 503. Returns the route with its full URL."
            ),
            input_schema=EXPOSE_INPUT,
            output_schema=ROUTE_OUTPUT,
            idempotent=True,
        ),
        tools.expose,
    )
    registry.register(
        spec(
            name="network.unexpose",
            title="Remove an instance's route",
            description=(
                "Remove the instance's route at path (without path: all its routes) from the "
                "front door. Returns the routes removed."
            ),
            input_schema=UNEXPOSE_INPUT,
            output_schema=ROUTES_OUTPUT,
            destructive=True,
        ),
        tools.unexpose,
    )
    registry.register(
        spec(
            name="network.list",
            title="List routes",
            description=(
                "Your routes on the front door, by path, with their URLs and the state of the "
                "instance behind each (admins: everyone's with all_users)."
            ),
            input_schema=LIST_INPUT,
            output_schema=ROUTES_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        tools.list,
    )
