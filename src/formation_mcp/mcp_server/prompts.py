"""MCP prompts and argument completion.

- `deploy-web-app`: a Formfile and the app's files become a running instance (`pack_build`,
  then `pack_ship`, then a check that it answers).
- `diagnose-instance`: the instance's current status (embedded, read at once) and the steps
  to find out what is wrong and what to do.

Completion proposes what names things, from the caller's own: instance ids and names (the
`instance` argument, `formation://instances/{id}`), build ids (`formation://packs/{build_id}/
formfile`), operation ids (`formation://operations/{id}`), and the names of the tools the
caller may call (`formation://tools/{name}`); at most MAX_COMPLETIONS, by prefix.
"""

from __future__ import annotations

from typing import Any, Final

import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2, tools_pb2
from mcp.shared.exceptions import MCPError

from formation_mcp.mcp_server.backend import (
    CALLABLE,
    UNARY_TIMEOUT_SECONDS,
    Api,
    Context,
    ToolError,
)
from formation_mcp.mcp_server.resources import (
    FORMFILE_TEMPLATE,
    INSTANCE_TEMPLATE,
    LOGS_TEMPLATE,
    OPERATION_TEMPLATE,
    RESOURCE_NOT_FOUND,
    TOOL_TEMPLATE,
    Resources,
)

DEPLOY: Final = "deploy-web-app"
DIAGNOSE: Final = "diagnose-instance"
MAX_COMPLETIONS: Final = 100
MAX_ARGUMENT_CHARS: Final = 65_536

PROMPTS: Final = (
    types.Prompt(
        name=DEPLOY,
        title="Deploy a web app",
        description="Build a pack from a Formfile and the app's files, ship it as an instance, "
        "and check that it answers.",
        arguments=[
            types.PromptArgument(
                name="formfile",
                description="The Formfile: text (NAME, RUN, COPY, EXPOSE, ENTRYPOINT ...) or the "
                "JSON document (name, run, include, expose, entrypoint, resources).",
                required=True,
            ),
            types.PromptArgument(
                name="instance_name",
                description="Name of the instance to create: letters, digits, _ . - (up to 63).",
                required=True,
            ),
            types.PromptArgument(
                name="context",
                description="The app's files to build with (paths and contents), or where to "
                "find them.",
                required=False,
            ),
        ],
    ),
    types.Prompt(
        name=DIAGNOSE,
        title="Diagnose an instance",
        description="Read an instance's status, events, logs and metrics, and say what is wrong "
        "and what to do.",
        arguments=[
            types.PromptArgument(
                name="instance", description="The instance id, or its name.", required=True
            )
        ],
    ),
)


class Prompts:
    def __init__(self, api: Api, resources: Resources) -> None:
        self._api = api
        self._resources = resources

    async def listing(
        self, _ctx: Context, _params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=list(PROMPTS))

    async def get(
        self, ctx: Context, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        arguments = params.arguments or {}
        for name, value in arguments.items():
            if len(value) > MAX_ARGUMENT_CHARS:
                raise MCPError(
                    types.INVALID_PARAMS, f"argument {name} is over {MAX_ARGUMENT_CHARS} characters"
                )
        if params.name == DEPLOY:
            return _deploy(
                _required(arguments, "formfile"),
                _required(arguments, "instance_name"),
                arguments.get("context"),
            )
        if params.name == DIAGNOSE:
            return await self._diagnose(ctx, _required(arguments, "instance"))
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")

    async def _diagnose(self, ctx: Context, instance: str) -> types.GetPromptResult:
        uri = f"formation://instances/{instance}"
        try:
            status = await self._resources.read(ctx, types.ReadResourceRequestParams(uri=uri))
        except MCPError as error:
            if error.error.code == RESOURCE_NOT_FOUND:
                raise MCPError(
                    types.INVALID_PARAMS, f"no instance {instance!r} among yours"
                ) from None
            raise
        steps = (
            f"Diagnose the Formation instance {instance!r}. Its status, read just now, follows "
            "(state, exit code, ports, resources and its last lines of output).\n"
            "1. From the status: is it running? If it stopped or failed, what do the last lines "
            "of output and the exit code say (a negative exit code is the signal that ended "
            "it)?\n"
            f"2. If this server lists them, call `vm_events` (id {instance!r}) for what happened "
            "to it, `vm_logs` for more of its output and `vm_metrics` for its CPU and memory "
            f"use; otherwise read `vm_status` again, or the resource {uri}, to see what changes.\n"
            "3. Say what is wrong, and what to do: restart it (`vm_control` with operation "
            "restart), give it more memory or CPUs (a new instance with `vm_create`), or fix "
            "the app or its Formfile and build and ship it again (`pack_build`, `pack_ship`).\n"
            "Do not delete the instance unless asked to."
        )
        return types.GetPromptResult(
            description=f"Diagnose instance {instance}",
            messages=[
                types.PromptMessage(role="user", content=types.TextContent(text=steps)),
                types.PromptMessage(
                    role="user",
                    content=types.EmbeddedResource(resource=status.contents[0]),
                ),
            ],
        )

    async def complete(
        self, ctx: Context, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref, argument = params.ref, params.argument
        candidates: list[str] = []
        if isinstance(ref, types.PromptReference):
            if ref.name == DIAGNOSE and argument.name == "instance":
                candidates = await self._instance_names(ctx)
        elif ref.uri in (INSTANCE_TEMPLATE, LOGS_TEMPLATE) and argument.name == "id":
            candidates = await self._instance_names(ctx)
        elif ref.uri == FORMFILE_TEMPLATE and argument.name == "build_id":
            candidates = await self._build_ids(ctx)
        elif ref.uri == OPERATION_TEMPLATE and argument.name == "id":
            candidates = await self._operation_ids(ctx)
        elif ref.uri == TOOL_TEMPLATE and argument.name == "name":
            candidates = await self._tool_names(ctx)
        prefix = argument.value.lower()
        matches = [value for value in dict.fromkeys(candidates) if value.lower().startswith(prefix)]
        return types.CompleteResult(
            completion=types.Completion(
                values=matches[:MAX_COMPLETIONS],
                total=len(matches),
                has_more=len(matches) > MAX_COMPLETIONS,
            )
        )

    async def _instance_names(self, ctx: Context) -> list[str]:
        listed = await self._quick(ctx, "vm.list", {})
        instances: list[dict[str, Any]] = listed.get("instances", [])
        return [value for i in instances for value in (i["name"], i["instance_id"])]

    async def _build_ids(self, ctx: Context) -> list[str]:
        listed = await self._quick(ctx, "pack.list", {"limit": MAX_COMPLETIONS})
        return [pack["build_id"] for pack in listed.get("packs", [])]

    async def _operation_ids(self, ctx: Context) -> list[str]:
        try:
            page = await self._api.operations().ListOperations(
                operations_pb2.ListOperationsRequest(page_size=MAX_COMPLETIONS),
                metadata=await self._api.metadata(ctx),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise MCPError(
                types.INTERNAL_ERROR, f"listing operations failed: {error.details()}"
            ) from None
        return [operation.name.removeprefix("operations/") for operation in page.operations]

    async def _tool_names(self, ctx: Context) -> list[str]:
        """The tools the caller may call (one page holds the catalog)."""
        try:
            page = await self._api.tools().ListTools(
                tools_pb2.ListToolsRequest(page_size=1000, filter=CALLABLE),
                metadata=await self._api.metadata(ctx),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise MCPError(
                types.INTERNAL_ERROR, f"listing tools failed: {error.details()}"
            ) from None
        return sorted(tool.name.removeprefix("tools/") for tool in page.tools)

    async def _quick(self, ctx: Context, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._api.call(ctx, tool, arguments)
        except (grpc.aio.AioRpcError, ToolError) as error:
            raise MCPError(types.INTERNAL_ERROR, f"{tool} failed: {error}") from None


def _required(arguments: dict[str, str], name: str) -> str:
    value = arguments.get(name, "").strip()
    if not value:
        raise MCPError(types.INVALID_PARAMS, f"the argument {name} is required")
    return value


def _deploy(formfile: str, instance_name: str, context: str | None) -> types.GetPromptResult:
    files = (
        f"The app's files (context_files: relative path -> content): {context}"
        if context
        else "Put the app's files in context_files (relative path -> content)."
    )
    steps = (
        "Deploy this web app on Formation, step by step, checking each result.\n"
        "1. Call `pack_build` with this Formfile as `formfile` (a string, or the same as a JSON "
        f"object):\n\n{formfile}\n\n{files}\n"
        "It is long-running: it reports progress (as an MCP task, poll it until it is done). "
        "If the build fails, read its error and output lines, fix the Formfile or the files, "
        "and build again. Keep the `build_id` it returns.\n"
        f"2. Call `pack_ship` with that `build_id` and `instance_name` {instance_name!r}.\n"
        f"3. Check that it answers: call `vm_status` with id {instance_name!r}. Its state must "
        "be running, and `ports` maps each exposed port to the loopback port that serves it. "
        "If it is not running, its last lines of output (in `logs`) say why: fix, build and "
        "ship again.\n"
        "4. Report the instance id, its state and its ports."
    )
    return types.GetPromptResult(
        description=f"Deploy a web app as instance {instance_name}",
        messages=[types.PromptMessage(role="user", content=types.TextContent(text=steps))],
    )
