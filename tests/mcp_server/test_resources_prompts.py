"""Resources, prompts, completion and logging over Streamable HTTP through Envoy, with the
SDK's client: what an agent reads (operations, instances, a pack's Formfile), the two prompts,
completion of instance and build ids, and a long call's output lines as log messages."""

from __future__ import annotations

import json
from typing import Any, cast

import grpc
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from mcp.shared.exceptions import MCPError
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.auth import Md
from tests.support.mcp import LEGACY, MODERN, http_client, operation_of
from tests.support.waiting import eventually
from tests.support.workloads import build, ship

from formation_mcp.app import Application
from formation_mcp.client.auth import login
from formation_mcp.permissions import READ_ONLY_SCOPE

NOT_FOUND = -32002


def json_of(result: types.ReadResourceResult) -> Any:
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert content.mime_type == "application/json"
    return json.loads(content.text)


async def test_resource_templates_name_the_five_kinds(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        listed = await client.list_resource_templates()
    templates = {template.uri_template for template in listed.resource_templates}
    assert templates == {
        "formation://operations/{id}",
        "formation://instances/{id}",
        "formation://instances/{id}/logs",
        "formation://packs/{build_id}/formfile",
        "formation://tools/{name}",
    }


@pytest.mark.parametrize("mode", [LEGACY, MODERN])
async def test_an_operation_is_read_as_json(mode: str, mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=mode) as client:
        called = await client.call_tool("test.echo", {"text": "read me"})
        name = operation_of(called)
        read = await client.read_resource(f"formation://{name}")
    body = json_of(read)
    assert body["name"] == name and body["done"] is True
    assert body["response"]["output"] == {"echo": "read me"}
    assert body["metadata"]["tool"] == "test.echo"


async def test_the_list_pages_the_callers_operations_instances_and_packs(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    async with http_client(mcp_url, token) as client:
        names = [operation_of(await client.call_tool("test.echo", {"text": "x"})) for _ in range(2)]
        listed = await client.list_resources()
    uris = [resource.uri for resource in listed.resources]
    assert f"formation://packs/{build_id}/formfile" in uris
    assert uris.index(f"formation://{names[1]}") < uris.index(f"formation://{names[0]}")


async def test_a_packs_formfile_is_read_as_its_document(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    async with http_client(mcp_url, token) as client:
        read = await client.read_resource(f"formation://packs/{build_id}/formfile")
    formfile = json_of(read)
    assert formfile["name"] == "web"
    assert formfile["entrypoint"] == ["python3", "app.py"]


async def test_an_instance_is_read_as_its_status_and_completed_by_name(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance = await ship(channel, as_account, "resource-web")
    async with http_client(mcp_url, token) as client:
        read = await client.read_resource(f"formation://instances/{instance['instance_id']}")
        by_template = await client.complete(
            types.ResourceTemplateReference(uri="formation://instances/{id}"),
            {"name": "id", "value": "resource-"},
        )
        by_prompt = await client.complete(
            types.PromptReference(name="diagnose-instance"), {"name": "instance", "value": ""}
        )
        await client.call_tool("vm.delete", {"id": instance["instance_id"], "force": True})
    status = json_of(read)
    assert status["name"] == "resource-web" and status["state"] == "running"
    assert by_template.completion.values == ["resource-web"]
    assert {"resource-web", instance["instance_id"]} <= set(by_prompt.completion.values)


async def test_an_instances_logs_are_read_as_its_latest_lines(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance = await ship(channel, as_account, "logs-web")
    uri = f"formation://instances/{instance['instance_id']}/logs"
    async with http_client(mcp_url, token) as client:
        completed = await client.complete(
            types.ResourceTemplateReference(uri="formation://instances/{id}/logs"),
            {"name": "id", "value": "logs-"},
        )

        reads: list[Any] = []

        async def logged() -> bool:
            reads.append(json_of(await client.read_resource(uri)))
            return bool(reads[-1]["lines"])

        await eventually(logged, deadline=30)
        logs = reads[-1]
        await client.call_tool("vm.delete", {"id": instance["instance_id"], "force": True})
    assert completed.completion.values == ["logs-web"]
    assert logs["instance_id"] == instance["instance_id"]
    assert all({"time", "stream", "text"} <= set(line) for line in logs["lines"])
    assert "truncated" in logs and "next_cursor" in logs


async def test_build_ids_are_completed_by_prefix(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    async with http_client(mcp_url, token) as client:
        completed = await client.complete(
            types.ResourceTemplateReference(uri="formation://packs/{build_id}/formfile"),
            {"name": "build_id", "value": build_id[:6]},
        )
    assert completed.completion.values == [build_id]
    assert completed.completion.total == 1 and completed.completion.has_more is False


async def test_another_callers_resources_are_not_found(
    app: Application, mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    async with http_client(mcp_url, token) as client:
        name = operation_of(await client.call_tool("test.echo", {"text": "mine"}))
    other = mcp_token(
        app, (await login(channel, Ed25519PrivateKey.generate())).access_token, mcp_url
    )
    async with http_client(mcp_url, other) as client:
        for uri in (f"formation://{name}", f"formation://packs/{build_id}/formfile"):
            with pytest.raises(MCPError) as missing:
                await client.read_resource(uri)
            assert missing.value.error.code == NOT_FOUND, uri
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("formation://nothing/here")
    assert unknown.value.error.code == NOT_FOUND


async def test_the_prompts_are_listed_with_their_arguments(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        listed = await client.list_prompts()
    prompts = {prompt.name: prompt for prompt in listed.prompts}
    assert set(prompts) == {"deploy-web-app", "diagnose-instance"}
    deploy = {a.name: a.required for a in prompts["deploy-web-app"].arguments or []}
    assert deploy == {"formfile": True, "instance_name": True, "context": False}
    diagnose = {a.name: a.required for a in prompts["diagnose-instance"].arguments or []}
    assert diagnose == {"instance": True}


async def test_deploy_web_app_walks_through_build_ship_and_check(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        prompt = await client.get_prompt(
            "deploy-web-app", {"formfile": "NAME site\nEXPOSE 8080\n", "instance_name": "site"}
        )
    (message,) = prompt.messages
    assert isinstance(message.content, types.TextContent)
    text = message.content.text
    assert "NAME site" in text
    assert text.index("pack_build") < text.index("pack_ship") < text.index("vm_status")


async def test_diagnose_instance_embeds_its_status(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    instance = await ship(channel, as_account, "diagnosed")
    async with http_client(mcp_url, token) as client:
        prompt = await client.get_prompt("diagnose-instance", {"instance": "diagnosed"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("diagnose-instance", {"instance": "no-such-instance"})
        await client.call_tool("vm.delete", {"id": instance["instance_id"], "force": True})
    steps, status = prompt.messages
    assert isinstance(steps.content, types.TextContent) and "vm_logs" in steps.content.text
    assert isinstance(status.content, types.EmbeddedResource)
    embedded = status.content.resource
    assert isinstance(embedded, types.TextResourceContents)
    assert json.loads(embedded.text)["name"] == "diagnosed"
    assert missing.value.error.code == types.INVALID_PARAMS


class Messages:
    def __init__(self) -> None:
        self.seen: list[types.LoggingMessageNotificationParams] = []

    async def __call__(self, params: types.LoggingMessageNotificationParams) -> None:
        self.seen.append(params)


# The SDK's client warns that 2026-07-28 dropped logging/setLevel; 2025-11-25 has it.
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_2025_11_25_output_lines_are_log_messages_after_set_level(
    mcp_url: str, token: str
) -> None:
    messages = Messages()
    async with http_client(mcp_url, token, logging_callback=messages) as client:
        await client.call_tool("test.sleep", {"steps": 2, "delay_ms": 1})
        assert messages.seen == []  # no setLevel yet: nothing is sent
        await client.set_logging_level("info")
        await client.call_tool("test.sleep", {"steps": 3, "delay_ms": 1})
        await client.set_logging_level("error")
        await client.call_tool("test.sleep", {"steps": 2, "delay_ms": 1})
    texts = [message.data for message in messages.seen]
    assert texts == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    assert {message.logger for message in messages.seen} == {"test.sleep"}


async def test_2026_07_28_output_lines_are_log_messages_when_the_request_asks(
    mcp_url: str, token: str
) -> None:
    messages = Messages()
    async with http_client(mcp_url, token, mode=MODERN, logging_callback=messages) as client:
        await client.call_tool("test.sleep", {"steps": 2, "delay_ms": 1})
        asked = await client.call_tool(
            "test.sleep",
            {"steps": 2, "delay_ms": 1},
            meta=cast(types.RequestParamsMeta, {types.LOG_LEVEL_META_KEY: "debug"}),
        )
    assert asked.is_error is False
    assert [message.data for message in messages.seen] == ["step 1 of 2", "step 2 of 2"]


async def test_a_read_only_grant_lists_and_reads_resources(
    app: Application, session: auth_pb2.Session, mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token) as client:
        name = operation_of(await client.call_tool("test.echo", {"text": "ro"}))
    read_only = mcp_token(app, session.access_token, mcp_url, scope=READ_ONLY_SCOPE)
    async with http_client(mcp_url, read_only) as client:
        listed = await client.list_resources()
        read = await client.read_resource(f"formation://{name}")
    assert f"formation://{name}" in [resource.uri for resource in listed.resources]
    assert json_of(read)["name"] == name
