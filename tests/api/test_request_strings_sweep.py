"""The edge rule for strings, swept over the whole API of a real server, on SQLite and on
PostgreSQL (which cannot store a NUL): every string field of every RPC of the services the
server registers (found by reflection over their descriptors, so a new RPC or field is swept
without touching this file), and every string that a registered tool's input schema admits
(listed through ListTools: the built-in pack.* and vm.* tools and the test tools), keys
included, each with NUL and with other control characters.

Nothing answers INTERNAL or UNKNOWN. A control character where it makes no sense is
INVALID_ARGUMENT naming the field as the client wrote it; tab, newline and carriage return
where they are text (`request_strings.TEXT_FIELDS`) get whatever the call normally answers.
The server runs no worker, so that nothing a call queues ever runs.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from tests.support.errors import error_info, field_violations
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, make_settings

from formation_mcp.api.request_strings import REASON, TEXT_FIELDS, key_segment
from formation_mcp.api.server import SERVICE_NAMES
from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import bearer, login

REFUSED_EVERYWHERE = {"NUL": "\x00", "SOH": "\x01", "ESC": "\x1b", "DEL": "\x7f", "APC": "\x9f"}
TEXT_WHITESPACE = {"TAB": "\t", "LF": "\n", "CR": "\r"}
CHARACTERS = {**REFUSED_EVERYWHERE, **TEXT_WHITESPACE}
NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
CALL_TOOL = "formation.mcp.v1.CallToolRequest"
Json = dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SOME_KEY = _b64(public_bytes(Ed25519PrivateKey.generate()))
BASE_REQUESTS: dict[str, Json] = {
    "formation.mcp.v1.AuthService.Login": {
        "challenge_id": "sweep",
        "public_key": SOME_KEY,
        "signature": _b64(bytes(64)),
    },
    "formation.mcp.v1.AccountsService.CreateAccount": {"account": {"public_key": SOME_KEY}},
    "formation.mcp.v1.AccountsService.UpdateAccount": {
        "account": {"name": "accounts/nobody", "roles": ["user"]},
        "update_mask": "roles",
    },
    "formation.mcp.v1.ToolsService.CallTool": {
        "name": "tools/test.echo",
        "arguments": {"text": "hi"},
    },
}
"""Requests the poisoned string is put into, so that it gets past the other checks of the call
and as far as it can (each case first checks that its base request does). Others start empty."""

VALUE_TEMPLATES: dict[tuple[str, str], str] = {
    ("ListOperations", "filter"): 'tool = "a{}b"',
    ("ListTools", "filter"): 'category = "a{}b"',
    ("GetAccount", "name"): "accounts/a{}b",
    ("UpdateAccount", "account.name"): "accounts/a{}b",
    ("GetTool", "name"): "tools/a{}b",
    ("CallTool", "name"): "tools/a{}b",
}
"""The poisoned string per place (a value in a filter, an id in a name); others: a{}b."""

BASE_ARGUMENTS: dict[str, Json] = {
    "pack.build": {"formfile": "NAME sweep\n"},
    "pack.ship": {"build_id": "0" * 64, "instance_name": "sweep"},
    "vm.create": {"name": "sweep", "image": "0" * 64},
    "vm.status": {"id": "sweep"},
    "vm.control": {"id": "sweep", "operation": "stop"},
    "vm.delete": {"id": "sweep"},
    "pack.get": {"build_id": "0" * 64},
}
"""The same for tool arguments (checked first in each sweep). Others start empty."""


def is_text(request_type: str, segments: tuple[str, ...]) -> bool:
    """Whether TEXT_FIELDS makes the place at `segments` (keys; `*` for any) text."""
    for pattern in TEXT_FIELDS.get(request_type, ()):
        parts = pattern.split(".")
        if len(parts) <= len(segments) and all(
            p in ("*", s) for p, s in zip(parts, segments, strict=False)
        ):
            return True
    return False


# -- where a string can go in a request message -------------------------------------------------

Plant = Callable[[Any, str], str]
"""Puts a value into a request; returns the field path the server must name."""


@dataclass(frozen=True)
class Spot:
    label: str
    segments: tuple[str, ...]  # for TEXT_FIELDS; "*key*" where the poisoned string is a key
    plant: Plant


def _set(name: str) -> Plant:
    def plant(message: Any, value: str) -> str:
        setattr(message, name, value)
        return name

    return plant


def _append(name: str) -> Plant:
    def plant(message: Any, value: str) -> str:
        values = getattr(message, name)
        values.append(value)
        return f"{name}[{len(values) - 1}]"

    return plant


def _json_value(name: str) -> Plant:
    def plant(message: Any, value: str) -> str:
        getattr(message, name).update({"sweep": value})
        return f"{name}.sweep"

    return plant


def _json_key(name: str) -> Plant:
    def plant(message: Any, value: str) -> str:
        getattr(message, name).update({value: "x"})
        return name + key_segment(value)

    return plant


def _map_value(name: str) -> Plant:
    def plant(message: Any, value: str) -> str:
        getattr(message, name)["sweep"] = value
        return f"{name}.sweep"

    return plant


def _map_key(name: str, sample: Any) -> Plant:
    def plant(message: Any, value: str) -> str:
        if isinstance(sample, type):
            getattr(message, name)[value].SetInParent()
        else:
            getattr(message, name)[value] = sample
        return name + key_segment(value)

    return plant


def _inside(name: str, repeated: bool, inner: Plant) -> Plant:
    def plant(message: Any, value: str) -> str:
        child = getattr(message, name).add() if repeated else getattr(message, name)
        path = inner(child, value)
        return f"{name}[0].{path}" if repeated else f"{name}.{path}"

    return plant


def _message_type(field: FieldDescriptor) -> Descriptor:
    """The type of a message field (the stubs allow None: a scalar field has none)."""
    assert field.message_type is not None, f"{field.full_name} is not a message field"
    return field.message_type


def _map_spots(field: FieldDescriptor) -> Iterator[Spot]:
    entry = _message_type(field)
    key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
    if key.type == FieldDescriptor.TYPE_STRING:
        sample: Any = "x" if value.type == FieldDescriptor.TYPE_STRING else 0
        if value.type == FieldDescriptor.TYPE_MESSAGE:
            sample = message_factory.GetMessageClass(_message_type(value))
        yield Spot(f"{field.name}[key]", (field.name, "*key*"), _map_key(field.name, sample))
    if value.type == FieldDescriptor.TYPE_STRING:
        yield Spot(f"{field.name}.sweep", (field.name, "sweep"), _map_value(field.name))


def request_spots(descriptor: Descriptor, depth: int = 0) -> Iterator[Spot]:
    """Every place of a request type that holds a string (nested messages to a few levels)."""
    for field in descriptor.fields:
        name = field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                yield Spot(f"{name}[0]", (name, "0"), _append(name))
            else:
                yield Spot(name, (name,), _set(name))
            continue
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        inner_type = _message_type(field)
        if inner_type.full_name == "google.protobuf.Struct":
            yield Spot(f"{name}.sweep", (name, "sweep"), _json_value(name))
            yield Spot(f"{name}[key]", (name, "*key*"), _json_key(name))
        elif inner_type.GetOptions().map_entry:
            yield from _map_spots(field)
        elif depth < 3:
            for inner in request_spots(inner_type, depth + 1):
                yield Spot(
                    f"{name}.{inner.label}",
                    (name, *inner.segments),
                    _inside(name, field.is_repeated, inner.plant),
                )


def methods() -> Iterator[MethodDescriptor]:
    pool = descriptor_pool.Default()
    for service in SERVICE_NAMES:
        yield from pool.FindServiceByName(service).methods


RPC_SPOTS = [(method, spot) for method in methods() for spot in request_spots(method.input_type)]
RPC_CASES = [
    pytest.param(method, spot, character, id=f"{method.name}-{spot.label}-{label}")
    for method, spot in RPC_SPOTS
    for label, character in CHARACTERS.items()
]
# The enumeration itself: it reaches nested fields, repeated ones and the JSON in arguments.
_SWEPT = {(method.name, spot.label) for method, spot in RPC_SPOTS}
assert {("Login", "challenge_id"), ("ListOperations", "filter"), ("CallTool", "name")} <= _SWEPT
assert {("CallTool", "arguments.sweep"), ("CallTool", "arguments[key]")} <= _SWEPT
assert {("UpdateAccount", "account.roles[0]"), ("UpdateAccount", "update_mask.paths[0]")} <= _SWEPT


# -- where a string can go in a tool's arguments --------------------------------------------------


@dataclass(frozen=True)
class ArgumentSpot:
    segments: tuple[str, ...]  # keys from `arguments`; "*key*" marks a poisoned key
    build: Callable[[str], tuple[Any, str]]  # value -> (JSON to put at the spot, its path)


def _leaf(value: str) -> tuple[Any, str]:
    return value, ""


def _keyed(sample: Any) -> Callable[[str], tuple[Any, str]]:
    def build(value: str) -> tuple[Any, str]:
        return {value: sample}, key_segment(value)

    return build


def _under(key: str | int, inner: Callable[[str], tuple[Any, str]]) -> Callable[[str], Any]:
    def build(value: str) -> tuple[Any, str]:
        content, path = inner(value)
        if isinstance(key, int):
            return [content], f"[{key}]{path}"
        return {key: content}, key_segment(key) + path

    return build


def _sample(schema: Json) -> Any:
    """A value of the schema's type, for the value beside a poisoned key."""
    return {"integer": 1, "number": 1, "boolean": True, "object": {}, "array": []}.get(
        schema.get("type", "string"), "x"
    )


def argument_spots(schema: Json, segments: tuple[str, ...] = ()) -> Iterator[ArgumentSpot]:
    kind = schema.get("type")
    if kind == "string" or (kind is None and "enum" in schema):
        yield ArgumentSpot(segments, _leaf)
        return
    if kind == "array" and isinstance(schema.get("items"), dict):
        for inner in argument_spots(schema["items"], (*segments, "0")):
            yield ArgumentSpot(inner.segments, _under(0, inner.build))
        return
    if kind != "object":
        return
    for key, property_schema in schema.get("properties", {}).items():
        for inner in argument_spots(property_schema, (*segments, key)):
            yield ArgumentSpot(inner.segments, _under(key, inner.build))
    extra = schema.get("additionalProperties", True)
    if extra is False:
        return
    extra_schema: Json = extra if isinstance(extra, dict) else {"type": "string"}
    yield ArgumentSpot((*segments, "*key*"), _keyed(_sample(extra_schema)))
    for inner in argument_spots(extra_schema, (*segments, "sweep")):
        yield ArgumentSpot(inner.segments, _under("sweep", inner.build))


def merged(base: Any, poison: Any) -> Any:
    if isinstance(base, dict) and isinstance(poison, dict):
        result = dict(base)
        for key, value in poison.items():
            result[key] = merged(base.get(key), value) if key in base else value
        return result
    return poison


# -- the server, and what a call answers -------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_admin_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
async def sweep_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, sweep_admin_key: Any
) -> AsyncIterator[Application]:
    data_dir: Path = tmp_path_factory.mktemp("sweep")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    settings = make_settings(
        data_dir,
        database_url,
        admin_keys=(b64url(public_bytes(sweep_admin_key)),),
        login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
    )
    application = Application(settings, run_worker=False)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture(scope="module")
async def sweep_channel(sweep_app: Application) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(sweep_app.grpc.address) as channel:
        yield channel


@pytest.fixture
async def admin_metadata(sweep_channel: grpc.aio.Channel, sweep_admin_key: Any) -> Any:
    """A fresh session per test: a call that gets through may end it (RevokeToken does)."""
    return bearer((await login(sweep_channel, sweep_admin_key)).access_token)


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    fields: list[str]
    reason: str
    details: str


async def answer(
    channel: grpc.aio.Channel, method: MethodDescriptor, request: Message, metadata: Any
) -> Answer:
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize = type(request).SerializeToString
    try:
        if method.server_streaming:
            streaming: grpc.aio.UnaryStreamMultiCallable[Message, bytes] = channel.unary_stream(
                path, serialize, None
            )
            stream = streaming(request, metadata=metadata)
            async for _ in stream:
                stream.cancel()  # one message says it works; a watch would not end by itself
                break
        else:
            await channel.unary_unary(path, serialize, None)(request, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.CANCELLED:
            return Answer(grpc.StatusCode.OK, [], "", "")
        reason = error_info(error).reason if error.code() not in NEVER else ""
        return Answer(error.code(), field_violations(error), reason, error.details() or "")
    return Answer(grpc.StatusCode.OK, [], "", "")


def verdict(answer: Answer, field: str, character: str, text: bool) -> str | None:
    """What is wrong with an answer, or None."""
    if answer.code in NEVER:
        return f"{field}: {answer.code.name} {answer.details}"
    if text and character in TEXT_WHITESPACE.values():
        if answer.reason == REASON:
            return f"{field}: text refused: {answer.details}"
        return None
    if (answer.code, answer.fields, answer.reason) != (
        grpc.StatusCode.INVALID_ARGUMENT,
        [field],
        REASON,
    ):
        return f"{field}: {answer.code.name} {answer.fields} {answer.reason} {answer.details}"
    return None


# -- the sweeps ---------------------------------------------------------------------------------


def base_request(method: MethodDescriptor) -> Message:
    request = message_factory.GetMessageClass(method.input_type)()
    json_format.ParseDict(BASE_REQUESTS.get(method.full_name, {}), request)
    return request


@pytest.mark.parametrize(("method", "spot", "character"), RPC_CASES)
async def test_every_string_field_of_every_rpc(
    sweep_channel: grpc.aio.Channel,
    admin_metadata: Any,
    method: MethodDescriptor,
    spot: Spot,
    character: str,
) -> None:
    if method.full_name in BASE_REQUESTS:  # the control: without the poison, it gets through
        control = await answer(sweep_channel, method, base_request(method), admin_metadata)
        assert control.code != grpc.StatusCode.INVALID_ARGUMENT, control.details
    request = base_request(method)
    template = VALUE_TEMPLATES.get((method.name, spot.label), "a{}b")
    field = spot.plant(request, template.format(character))
    text = "*key*" not in spot.segments and is_text(method.input_type.full_name, spot.segments)
    result = await answer(sweep_channel, method, request, admin_metadata)
    assert verdict(result, field, character, text) is None


async def tool_schemas(channel: grpc.aio.Channel, metadata: Any) -> dict[str, Json]:
    stub = tools_pb2_grpc.ToolsServiceStub(channel)
    listed = await stub.ListTools(tools_pb2.ListToolsRequest(page_size=1000), metadata=metadata)
    assert not listed.next_page_token
    return {
        tool.name.removeprefix("tools/"): json_format.MessageToDict(tool.input_schema)
        for tool in listed.tools
    }


CALL_TOOL_METHOD = descriptor_pool.Default().FindMethodByName(
    "formation.mcp.v1.ToolsService.CallTool"
)


@pytest.mark.parametrize("character", CHARACTERS.values(), ids=CHARACTERS.keys())
async def test_every_string_of_every_tools_arguments(
    sweep_channel: grpc.aio.Channel, admin_metadata: Any, character: str
) -> None:
    schemas = await tool_schemas(sweep_channel, admin_metadata)
    assert {"pack.build", "vm.create", "vm.status", "test.echo"} <= schemas.keys()
    problems, swept = [], 0
    for tool, schema in sorted(schemas.items()):
        if tool in BASE_ARGUMENTS:  # the control: without the poison, they pass the schema
            control = tools_pb2.CallToolRequest(name=f"tools/{tool}", validate_only=True)
            control.arguments.update(BASE_ARGUMENTS[tool])
            result = await answer(sweep_channel, CALL_TOOL_METHOD, control, admin_metadata)
            assert result.code != grpc.StatusCode.INVALID_ARGUMENT, f"{tool}: {result.details}"
        for spot in argument_spots(schema):
            poison, path = spot.build(f"a{character}b")
            request = tools_pb2.CallToolRequest(name=f"tools/{tool}")
            request.arguments.update(merged(BASE_ARGUMENTS.get(tool, {}), poison))
            text = "*key*" not in spot.segments and is_text(
                CALL_TOOL, ("arguments", *spot.segments)
            )
            result = await answer(sweep_channel, CALL_TOOL_METHOD, request, admin_metadata)
            problem = verdict(result, f"arguments{path}", character, text)
            if problem is not None:
                problems.append(f"{tool} {problem}")
            swept += 1
    assert problems == []
    assert swept >= 20  # every tool's strings, keys of free-form objects included
