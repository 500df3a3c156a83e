"""The instance tools: pack.ship, vm.create, vm.list, vm.status, vm.control, vm.delete.

Calls are placed on nodes when they are made (the Tools service asks `placement`):
- pack.ship and vm.create run on the node that built the pack (its artifact store has it);
  the instance then lives on that node;
- vm.status, vm.control and vm.delete run on the node that runs the instance;
- vm.list reads the database and runs inline on the API server.
Placement also checks ownership (another owner's pack or instance is NOT_FOUND unless the
caller is an admin) and that the node is alive (FAILED_PRECONDITION `NODE_OFFLINE`), so a bad
call fails at once instead of as a queued operation.
"""

from __future__ import annotations

import json
from typing import Any, Final

from formation_mcp.clock import now_us
from formation_mcp.errors import FailedPrecondition, PermissionDenied
from formation_mcp.identity import Caller
from formation_mcp.policies.quotas import Demand
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import Placement, ToolRegistry, ToolSpec
from formation_mcp.workloads import observe_tools
from formation_mcp.workloads.driver import Action, CreateRequest, InstanceDriver
from formation_mcp.workloads.instances import (
    RESOURCE_PREFIX,
    InstanceStore,
    NodeRegistry,
    Resources,
    formfile_resources,
)
from formation_mcp.workloads.pack_tools import WorkloadEnvironment
from formation_mcp.workloads.packs import PackStore

PACK_PREFIX: Final = "packs/"
NODE_OFFLINE_SECONDS: Final = 60.0
STATUS_LOG_LINES: Final = 50
SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"

_NAME: Final = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
    "description": "Instance name: letters, digits, _ . - (up to 63), unique among yours.",
}
_ID: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "The instance id, or its name.",
}
_BUILD_ID: Final = {
    "type": "string",
    "pattern": "^[0-9a-f]{64}$",
    "description": "A pack's build_id, as pack.build returned it.",
}
_METADATA: Final = {
    "type": "object",
    "maxProperties": 64,
    "additionalProperties": {"type": "string", "maxLength": 1024},
}
_VCPUS: Final = {"type": "integer", "minimum": 1, "maximum": 128}
_MEMORY_MB: Final = {"type": "integer", "minimum": 64, "maximum": 256_000}
_DISK_GB: Final = {"type": "integer", "minimum": 1, "maximum": 65_535}

INSTANCE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "instance_id": {"type": "string"},
        "name": {"type": "string"},
        "owner": {"type": "string"},
        "build_id": {"type": "string"},
        "node": {"type": "string", "description": "The node that runs it."},
        "state": {"enum": ["creating", "running", "stopped", "failed", "deleted"]},
        "pid": {"type": "integer"},
        "exit_code": {
            "type": "integer",
            "description": "How it last ended: exit code, or minus the signal number.",
        },
        "uptime_seconds": {"type": "number"},
        "ports": {
            "type": "object",
            "additionalProperties": {"type": "integer"},
            "description": "Exposed port -> loopback port on the node (also $PORT, "
            "$FMCP_PORT_<port> inside the instance).",
        },
        "resources": {
            "type": "object",
            "properties": {"vcpus": _VCPUS, "memory_mb": _MEMORY_MB, "disk_gb": _DISK_GB},
        },
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "network": {
            "type": "object",
            "description": "The Formfile's NETWORK settings (join_formnet, external_networks) "
            "where they differ from the defaults: recorded, not applied by the local driver "
            "(its instances get loopback ports only; network.expose gives them a URL).",
        },
        "not_applied": {
            "type": "array",
            "items": {"type": "string"},
            "description": "What was recorded but not applied (`network`).",
        },
        "status_message": {"type": "string"},
        "create_time": {"type": "string", "format": "date-time"},
        "update_time": {"type": "string", "format": "date-time"},
        "logs": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The last lines of its output (vm.status).",
        },
    },
    "required": ["instance_id", "name", "owner", "build_id", "node", "state", "ports"],
}


def _output(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA, **schema}


def _input(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


PACK_SHIP_INPUT: Final = _input(
    {
        "build_id": _BUILD_ID,
        "instance_name": _NAME,
        "vm_config": {
            "type": "object",
            "properties": {
                "vcpus": _VCPUS,
                "memory_mb": _MEMORY_MB,
                "disk_gb": _DISK_GB,
                "metadata": _METADATA,
                "network": {
                    "type": "object",
                    "description": "Accepted for Formation compatibility; the local driver "
                    "gives instances loopback ports only.",
                },
            },
            "additionalProperties": False,
        },
    },
    ["build_id", "instance_name"],
)
VM_CREATE_INPUT: Final = _input(
    {
        "name": _NAME,
        "image": {**_BUILD_ID, "description": "The pack to run: a build_id from pack.build."},
        "vcpus": _VCPUS,
        "memory_mb": _MEMORY_MB,
        "disk_gb": _DISK_GB,
        "metadata": _METADATA,
    },
    ["name", "image"],
)
VM_LIST_INPUT: Final = _input(
    {"all_users": {"type": "boolean", "description": "Every owner's instances (admins only)."}},
    [],
)
VM_ID_INPUT: Final = _input({"id": _ID}, ["id"])
VM_CONTROL_INPUT: Final = _input(
    {"id": _ID, "operation": {"enum": ["start", "stop", "restart"]}}, ["id", "operation"]
)
VM_DELETE_INPUT: Final = _input(
    {
        "id": _ID,
        "force": {
            "type": "boolean",
            "description": "Kill at once (SIGKILL) instead of SIGTERM and a grace period.",
        },
    },
    ["id"],
)
VM_LIST_OUTPUT: Final = _output(
    {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "instances": {"type": "array", "items": INSTANCE_SCHEMA},
        },
        "required": ["count", "instances"],
    }
)


class Placer:
    """Resolves a call's pack or instance and its node when the call is made."""

    def __init__(self, environment: WorkloadEnvironment) -> None:
        self._instances = InstanceStore(environment.database)
        self._nodes = NodeRegistry(environment.database)
        self._packs = PackStore(environment.database)

    async def pack(self, caller: Caller, build_id: str) -> Placement:
        pack = await self._packs.get(build_id, caller.account)
        await self._require_online(pack.node, f"pack {build_id[:12]}…")
        return Placement(node=pack.node, resource=PACK_PREFIX + build_id)

    async def instance(self, caller: Caller, reference: str) -> Placement:
        instance = await self._instances.find(reference, caller.account, any_owner=caller.is_admin)
        await self._require_online(instance.node, f"instance {instance.name}")
        return Placement(node=instance.node, resource=instance.resource_name)

    async def demand(
        self, caller: Caller, build_id: str, name: str, given: dict[str, Any]
    ) -> Demand:
        """What creating instance `name` from the pack uses: the resources given, or the
        pack's Formfile's (as the driver will decide)."""
        resources = _resources(given)
        if resources is None:
            pack = await self._packs.get(build_id, caller.account)
            resources = formfile_resources(json.loads(pack.formfile))
        return Demand(
            instance_name=name,
            vcpus=resources.vcpus,
            memory_mb=resources.memory_mb,
            disk_gb=resources.disk_gb,
        )

    async def _require_online(self, node: str, what: str) -> None:
        seen = await self._nodes.last_seen(node)
        if seen is None or now_us() - seen > NODE_OFFLINE_SECONDS * 1e6:
            raise FailedPrecondition(
                f"node {node}, which holds {what}, is offline (no heartbeat for over "
                f"{NODE_OFFLINE_SECONDS:.0f}s); start its worker again",
                reason="NODE_OFFLINE",
                metadata={"node": node},
            )


class InstanceTools:
    """The executors; `driver` is None in a process that runs no worker (the placed tools
    never run there)."""

    def __init__(self, environment: WorkloadEnvironment, driver: InstanceDriver | None) -> None:
        self._instances = InstanceStore(environment.database)
        self._driver = driver

    def _require_driver(self) -> InstanceDriver:
        if self._driver is None:
            raise FailedPrecondition(
                "this process runs no instance driver (no worker)", reason="NO_DRIVER"
            )
        return self._driver

    async def ship(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        config = arguments.get("vm_config") or {}
        request = CreateRequest(
            owner=context.owner,
            name=arguments["instance_name"],
            build_id=arguments["build_id"],
            resources=_resources(config),
            metadata=dict(config.get("metadata") or {}),
        )
        instance = await self._require_driver().create(context, request)
        return instance.to_output()

    async def create(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        request = CreateRequest(
            owner=context.owner,
            name=arguments["name"],
            build_id=arguments["image"],
            resources=_resources(arguments),
            metadata=dict(arguments.get("metadata") or {}),
        )
        instance = await self._require_driver().create(context, request)
        return instance.to_output()

    async def list(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        all_users = bool(arguments.get("all_users"))
        if all_users and not context.caller_is_admin:
            raise PermissionDenied(
                "all_users lists every owner's instances: admins only",
                reason="ADMIN_ONLY_ARGUMENT",
                metadata={"argument": "all_users"},
            )
        found = await self._instances.list_live(None if all_users else context.owner)
        now = now_us()
        return {"count": len(found), "instances": [i.to_output(now) for i in found]}

    async def status(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        status = await self._require_driver().status(_instance_id(context), STATUS_LOG_LINES)
        return {**status.instance.to_output(), "logs": status.logs}

    async def control(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        action = Action(arguments["operation"])
        instance = await self._require_driver().control(context, _instance_id(context), action)
        return instance.to_output()

    async def delete(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        force = bool(arguments.get("force"))
        instance = await self._require_driver().delete(context, _instance_id(context), force)
        return instance.to_output()


def _instance_id(context: ToolContext) -> str:
    if not context.resource.startswith(RESOURCE_PREFIX):
        raise FailedPrecondition(
            "this work names no instance (it was not placed by the API)", reason="NOT_PLACED"
        )
    return context.resource.removeprefix(RESOURCE_PREFIX)


def _resources(given: dict[str, Any]) -> Resources | None:
    if not any(key in given for key in ("vcpus", "memory_mb", "disk_gb")):
        return None
    return Resources(
        vcpus=int(given.get("vcpus", 1)),
        memory_mb=int(given.get("memory_mb", 1024)),
        disk_gb=int(given.get("disk_gb", 10)),
    )


def register(
    registry: ToolRegistry, environment: WorkloadEnvironment, driver: InstanceDriver | None
) -> None:
    placer = Placer(environment)
    tools = InstanceTools(environment, driver)
    instance_output = _output(INSTANCE_SCHEMA)

    async def place_ship(caller: Caller, arguments: dict[str, Any]) -> Placement:
        return await placer.pack(caller, arguments["build_id"])

    async def place_create(caller: Caller, arguments: dict[str, Any]) -> Placement:
        return await placer.pack(caller, arguments["image"])

    async def ship_demand(caller: Caller, arguments: dict[str, Any]) -> Demand:
        config = arguments.get("vm_config") or {}
        return await placer.demand(
            caller, arguments["build_id"], arguments["instance_name"], config
        )

    async def create_demand(caller: Caller, arguments: dict[str, Any]) -> Demand:
        return await placer.demand(caller, arguments["image"], arguments["name"], arguments)

    async def place_instance(caller: Caller, arguments: dict[str, Any]) -> Placement:
        return await placer.instance(caller, arguments["id"])

    def spec(**fields: Any) -> ToolSpec:
        fields.setdefault("category", "vm")
        return ToolSpec(version="1.0.0", **fields)

    registry.register(
        spec(
            name="pack.ship",
            title="Ship a pack as an instance",
            description=(
                "Deploy a built pack (build_id from pack.build) as a running instance named "
                "instance_name: unpack it on the node that built it and start its entrypoint "
                "with loopback ports for every exposed port. Returns the instance (state, "
                "ports, node)."
            ),
            category="pack",
            input_schema=PACK_SHIP_INPUT,
            output_schema=instance_output,
            long_running=True,
            aliases=("form_pack_ship",),
            placement=place_ship,
            demand=ship_demand,
        ),
        tools.ship,
    )
    registry.register(
        spec(
            name="vm.create",
            title="Create an instance",
            description=(
                "Create an instance from a pack (image = build_id) with the given resources "
                "(vcpus, memory_mb, disk_gb; default: the Formfile's) and start it."
            ),
            input_schema=VM_CREATE_INPUT,
            output_schema=instance_output,
            long_running=True,
            placement=place_create,
            demand=create_demand,
        ),
        tools.create,
    )
    registry.register(
        spec(
            name="vm.list",
            title="List instances",
            description="Your live instances, newest first (admins: everyone's with all_users).",
            input_schema=VM_LIST_INPUT,
            output_schema=VM_LIST_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        tools.list,
    )
    registry.register(
        spec(
            name="vm.status",
            title="Instance status",
            description=(
                "State, pid, uptime, exit code, ports, resources and the last lines of output "
                "of an instance (by id or name), read on the node that runs it."
            ),
            input_schema=VM_ID_INPUT,
            output_schema=instance_output,
            read_only=True,
            idempotent=True,
            placement=place_instance,
        ),
        tools.status,
    )
    observe_tools.register(registry, environment, driver, place_instance)
    registry.register(
        spec(
            name="vm.control",
            title="Start, stop or restart an instance",
            description=(
                "start | stop | restart an instance (by id or name). Stop sends SIGTERM to its "
                "process group and SIGKILL after the grace period."
            ),
            input_schema=VM_CONTROL_INPUT,
            output_schema=instance_output,
            idempotent=True,
            long_running=True,
            placement=place_instance,
        ),
        tools.control,
    )
    registry.register(
        spec(
            name="vm.delete",
            title="Delete an instance",
            description=("Stop an instance (force: SIGKILL at once) and remove it and its files."),
            input_schema=VM_DELETE_INPUT,
            output_schema=instance_output,
            destructive=True,
            idempotent=True,
            long_running=True,
            placement=place_instance,
        ),
        tools.delete,
    )
