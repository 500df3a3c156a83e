"""Exposed instances through the real Envoy: the body through the front door, the prefix
stripped, the URL kept across a restart on a new port, 503 JSON when stopped, 404 once
unexposed."""

from __future__ import annotations

import grpc
import httpx
from tests.support.auth import Md
from tests.support.network import answer, ship_echo
from tests.support.workloads import succeed

from formation_mcp.app import Application


async def test_an_exposed_instance_answers_through_the_front_door_with_the_prefix_stripped(
    channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    await ship_echo(channel, as_account, "site")
    route = await succeed(channel, as_account, "network.expose", id="site")
    assert route["path"] == "/apps/site/" and route["port"] == 8080
    assert route["url"] == front_door + "/apps/site/" and route["auth"] == "public"

    response = await answer(route["url"] + "hello?x=1")

    assert response.text == "site /hello?x=1"
    await succeed(channel, as_account, "vm.delete", id="site", force=True)


async def test_the_url_follows_the_instance_to_a_new_port_and_answers_503_json_when_stopped(
    channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    first = await ship_echo(channel, as_account, "mover")
    route = await succeed(channel, as_account, "network.expose", id="mover", path="/mover/")
    assert (await answer(route["url"])).text == "mover /"

    stopped = await succeed(channel, as_account, "vm.control", id="mover", operation="stop")
    assert stopped["state"] == "stopped"
    response = await answer(route["url"] + "page", 503, content_type="application/json")
    body = response.json()
    assert body["instance"] == "instances/" + first["instance_id"]
    assert (body["instance_name"], body["state"], body["code"]) == ("mover", "stopped", 503)

    started = await succeed(channel, as_account, "vm.control", id="mover", operation="start")
    assert started["ports"]["8080"] != first["ports"]["8080"]
    assert (await answer(route["url"] + "again")).text == "mover /again"
    listed = await succeed(channel, as_account, "network.list")
    assert [(r["path"], r["state"], r["target"]) for r in listed["routes"]] == [
        ("/mover/", "running", f"127.0.0.1:{started['ports']['8080']}")
    ]
    await succeed(channel, as_account, "vm.delete", id="mover", force=True)


async def test_an_unexposed_route_answers_404_and_leaves_the_list(
    channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    await ship_echo(channel, as_account, "gone")
    route = await succeed(channel, as_account, "network.expose", id="gone", path="/gone/")
    await answer(route["url"])

    removed = await succeed(channel, as_account, "network.unexpose", id="gone", path="/gone/")

    assert [r["path"] for r in removed["routes"]] == ["/gone/"]
    await answer(route["url"], 404)
    assert (await succeed(channel, as_account, "network.list"))["routes"] == []
    await succeed(channel, as_account, "vm.delete", id="gone", force=True)


async def test_a_deleted_instances_route_goes(
    channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    await ship_echo(channel, as_account, "brief")
    route = await succeed(channel, as_account, "network.expose", id="brief")
    await answer(route["url"])

    await succeed(channel, as_account, "vm.delete", id="brief", force=True)

    await answer(route["url"], 404)
    assert (await succeed(channel, as_account, "network.list"))["routes"] == []


async def test_the_servers_proxy_secret_never_reaches_an_instance(
    app: Application, channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    await ship_echo(channel, as_account, "nosy")
    route = await succeed(channel, as_account, "network.expose", id="nosy")

    response = await answer(
        route["url"] + "headers",
        headers={"x-fmcp-proxy-secret": "forged", "x-fmcp-bridge-secret": "x"},
    )

    assert "host: " in response.text
    assert "x-fmcp-" not in response.text
    assert app.settings.proxy_secret not in response.text
    await succeed(channel, as_account, "vm.delete", id="nosy", force=True)


async def test_a_route_update_does_not_cut_a_response_streaming_through_the_front_door(
    channel: grpc.aio.Channel, as_account: Md, front_door: str
) -> None:
    await ship_echo(channel, as_account, "streamer")
    route = await succeed(channel, as_account, "network.expose", id="streamer", path="/streamer/")
    await answer(route["url"])
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", route["url"] + "stream") as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert await anext(lines) == "line 0"

        # The routes and clusters change (another path, another cluster) while it streams.
        other = await succeed(
            channel, as_account, "network.expose", id="streamer", path="/other/", port=9090
        )
        await answer(other["url"], 503)  # routed to its cluster: nothing listens on 9090
        await succeed(channel, as_account, "network.unexpose", id="streamer", path="/other/")
        await answer(other["url"], 404)
        await answer(route["url"] + "stop-streams")

        rest = [line async for line in lines]
    assert rest[-1].startswith("end ")
    numbers = [int(line.split()[1]) for line in rest]
    assert numbers == list(range(1, len(rest) + 1))
    await succeed(channel, as_account, "vm.delete", id="streamer", force=True)
