"""The network tools' refusals: another caller's instance, a path in use, a port the instance
does not expose, a path the front door keeps; and what they leave unchanged."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from google.rpc import code_pb2, error_details_pb2
from tests.support.auth import Md
from tests.support.errors import field_violations
from tests.support.network import ship_echo
from tests.support.workloads import call, succeed

from formation_mcp.client.auth import bearer, login


async def failure(
    channel: grpc.aio.Channel, md: Md, tool: str, **arguments: object
) -> tuple[int, str, str]:
    """(code, reason, message) of a tool call that must fail."""
    operation = await call(channel, md, tool, **arguments)
    assert operation.HasField("error"), operation
    reasons = []
    for detail in operation.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
    assert len(reasons) == 1, operation.error
    return operation.error.code, reasons[0], operation.error.message


async def test_another_callers_instance_is_not_found(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    owned = await ship_echo(channel, as_account, "mine")
    stranger = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)

    for reference in ("mine", owned["instance_id"]):
        code, reason, _ = await failure(channel, stranger, "network.expose", id=reference)
        assert (code, reason) == (code_pb2.NOT_FOUND, "INSTANCE_NOT_FOUND")
    await succeed(channel, as_account, "network.expose", id="mine")
    code, reason, _ = await failure(channel, stranger, "network.unexpose", id=owned["instance_id"])
    assert (code, reason) == (code_pb2.NOT_FOUND, "INSTANCE_NOT_FOUND")
    assert (await succeed(channel, stranger, "network.list"))["routes"] == []
    await succeed(channel, as_account, "vm.delete", id="mine", force=True)


async def test_a_path_in_use_is_already_exists_and_the_same_route_again_is_no_change(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship_echo(channel, as_account, "one")
    await ship_echo(channel, as_account, "two")
    first = await succeed(channel, as_account, "network.expose", id="one", path="/shared/")

    again = await succeed(channel, as_account, "network.expose", id="one", path="/shared/")
    code, reason, message = await failure(
        channel, as_account, "network.expose", id="two", path="/shared/"
    )
    other_port = await failure(
        channel, as_account, "network.expose", id="one", path="/shared/", port=9090
    )

    assert again == first
    assert (code, reason) == (code_pb2.ALREADY_EXISTS, "ROUTE_PATH_TAKEN")
    assert "/shared/" in message
    assert other_port[:2] == (code_pb2.ALREADY_EXISTS, "ROUTE_PATH_TAKEN")
    listed = await succeed(channel, as_account, "network.list")
    assert [(r["path"], r["instance_name"]) for r in listed["routes"]] == [("/shared/", "one")]
    for name in ("one", "two"):
        await succeed(channel, as_account, "vm.delete", id=name, force=True)


async def test_a_port_the_instance_does_not_expose_names_its_ports(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship_echo(channel, as_account, "ports")

    code, reason, message = await failure(
        channel, as_account, "network.expose", id="ports", port=22
    )
    second = await succeed(channel, as_account, "network.expose", id="ports", port=9090)

    assert (code, reason) == (code_pb2.INVALID_ARGUMENT, "PORT_NOT_EXPOSED")
    assert "arguments.port" in message and "8080, 9090" in message
    assert (second["port"], second["path"]) == (9090, "/apps/ports/")
    await succeed(channel, as_account, "vm.delete", id="ports", force=True)


async def test_paths_of_the_front_door_itself_are_refused(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship_echo(channel, as_account, "greedy")

    for path in ("/v1/", "/oauth/x/", "/formation.mcp.v1.ToolsService/", "/mcp/", "/.well-known/"):
        code, reason, _ = await failure(
            channel, as_account, "network.expose", id="greedy", path=path
        )
        assert (code, reason) == (code_pb2.INVALID_ARGUMENT, "ROUTE_PATH_RESERVED"), path
    code, reason, _ = await failure(
        channel, as_account, "network.expose", id="greedy", path="/a/../"
    )
    assert (code, reason) == (code_pb2.INVALID_ARGUMENT, "ROUTE_PATH_INVALID")
    for path in ("/", "no-slash/", "/a b/", "/apps/x", "/" + "a/" * 9):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(channel, as_account, "network.expose", id="greedy", path=path)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, path
        assert field_violations(refused.value) == ["arguments.path"]
    assert (await succeed(channel, as_account, "network.list"))["routes"] == []
    await succeed(channel, as_account, "vm.delete", id="greedy", force=True)


async def test_admins_list_every_owners_routes_only_when_asked(
    channel: grpc.aio.Channel, as_account: Md, admin: auth_pb2.Session, account: str
) -> None:
    await ship_echo(channel, as_account, "listed")
    await succeed(channel, as_account, "network.expose", id="listed", path="/listed-by-admin/")
    as_admin = bearer(admin.access_token)

    own = await succeed(channel, as_admin, "network.list")
    everyone = await succeed(channel, as_admin, "network.list", all_users=True)
    code, reason, _ = await failure(channel, as_account, "network.list", all_users=True)

    assert "/listed-by-admin/" not in [r["path"] for r in own["routes"]]
    mine = [r for r in everyone["routes"] if r["path"] == "/listed-by-admin/"]
    assert [r["owner"] for r in mine] == [account]
    assert (code, reason) == (code_pb2.PERMISSION_DENIED, "ADMIN_ONLY_ARGUMENT")
    await succeed(channel, as_account, "vm.delete", id="listed", force=True)


async def test_an_instance_has_at_most_16_routes(channel: grpc.aio.Channel, as_account: Md) -> None:
    await ship_echo(channel, as_account, "many")
    for n in range(16):
        await succeed(channel, as_account, "network.expose", id="many", path=f"/many-{n}/")

    code, reason, message = await failure(
        channel, as_account, "network.expose", id="many", path="/many-16/"
    )
    again = await succeed(channel, as_account, "network.expose", id="many", path="/many-0/")

    assert (code, reason) == (code_pb2.RESOURCE_EXHAUSTED, "TOO_MANY_ROUTES")
    assert "network.unexpose" in message and again["path"] == "/many-0/"
    removed = await succeed(channel, as_account, "network.unexpose", id="many")
    assert removed["count"] == 16
    await succeed(channel, as_account, "vm.delete", id="many", force=True)


async def test_exposing_and_unexposing_are_events_of_the_instance(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    await ship_echo(channel, as_account, "told")
    route = await succeed(channel, as_account, "network.expose", id="told", path="/told/")
    await succeed(channel, as_account, "network.unexpose", id="told")

    answer = await succeed(channel, as_account, "vm.events", id="told", filter='type = "network.*"')
    await succeed(channel, as_account, "vm.delete", id="told", force=True)
    told = [(event["type"], event["data"]["path"]) for event in answer["events"]]
    assert told == [("network.unexposed", "/told/"), ("network.exposed", "/told/")]
    assert answer["events"][1]["data"]["url"] == route["url"]
