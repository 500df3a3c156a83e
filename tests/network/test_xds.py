"""The routes rendered as Envoy resources (pure): order, targets, unavailable instances,
token routes; and the publisher writes a file only when what it holds changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from formation_mcp.envoy import base_route_config
from formation_mcp.network.publisher import CDS_FILE, RDS_FILE, RoutePublisher
from formation_mcp.network.routes import RouteRecord, RouteView
from formation_mcp.network.xds import clusters, rds_document, route_configuration
from formation_mcp.workloads.instances import InstanceRecord, InstanceState, Resources


def view(
    path: str,
    state: InstanceState = InstanceState.RUNNING,
    auth: str = "public",
    instance_id: str = "i1",
    loopback: int = 40000,
) -> RouteView:
    instance = InstanceRecord(
        instance_id=instance_id,
        owner="accounts/owner",
        name="web",
        build_id="b" * 64,
        node="n",
        state=state,
        resources=Resources(1, 64, 1),
        ports={"8080": loopback},
    )
    route = RouteRecord(path, instance_id, "accounts/owner", 8080, auth, 0)
    return RouteView(route, instance)


def instance_routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in config["virtual_hosts"][0]["routes"] if r.get("name", "").startswith("/")]


def test_exposed_paths_go_before_the_catch_all_longest_first() -> None:
    base = base_route_config()
    config = route_configuration(base, [view("/a/"), view("/a/b/", instance_id="i2")])
    routes = config["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes[-3:]] == [
        {"prefix": "/a/b/"},
        {"prefix": "/a/"},
        {"prefix": "/"},
    ]
    assert (
        routes[: len(base["virtual_hosts"][0]["routes"]) - 1]
        == base["virtual_hosts"][0]["routes"][:-1]
    )


def test_a_running_instance_is_proxied_with_the_prefix_stripped_and_no_timeout() -> None:
    [route] = instance_routes(route_configuration(base_route_config(), [view("/web/")]))
    assert route["route"] == {
        "cluster": "instance_i1_8080",
        "prefix_rewrite": "/",
        "timeout": "0s",
        "idle_timeout": "0s",
    }
    [cluster] = clusters([view("/web/")])
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 40000}


def test_an_instance_not_running_answers_503_json_and_has_no_cluster() -> None:
    stopped = view("/web/", InstanceState.STOPPED)
    [route] = instance_routes(route_configuration(base_route_config(), [stopped]))
    assert route["direct_response"]["status"] == 503
    body = json.loads(route["direct_response"]["body"]["inline_string"])
    assert (body["instance"], body["state"]) == ("instances/i1", "stopped")
    assert clusters([stopped]) == []


def test_a_token_route_requires_our_jwt_and_the_owner_or_an_admin() -> None:
    [route] = instance_routes(route_configuration(base_route_config(), [view("/p/", auth="token")]))
    filters = route["typed_per_filter_config"]
    assert filters["envoy.filters.http.jwt_authn"]["requirement_name"] == "fmcp_token"
    policy = filters["envoy.filters.http.rbac"]["rbac"]["rules"]["policies"]["owner_or_admin"]
    [principal] = policy["principals"]
    owner, admin = principal["or_ids"]["ids"]
    assert owner["metadata"]["value"] == {"string_match": {"exact": "accounts/owner"}}
    assert admin["metadata"]["value"]["list_match"]["one_of"] == {
        "string_match": {"exact": "admin"}
    }
    [public] = instance_routes(route_configuration(base_route_config(), [view("/q/")]))
    assert "envoy.filters.http.jwt_authn" not in public["typed_per_filter_config"]


class Views:
    def __init__(self, views: list[RouteView]) -> None:
        self.current = views

    async def views(self) -> list[RouteView]:
        return self.current

    async def sweep_deleted(self) -> int:
        return 0


async def test_the_publisher_writes_only_what_changed(tmp_path: Path) -> None:
    store = Views([view("/web/")])
    publisher = RoutePublisher(store, tmp_path, base_route_config(), 0.5)  # type: ignore[arg-type]

    assert await publisher.publish() is True
    assert await publisher.publish() is False
    store.current = [view("/web/", loopback=40001)]  # a restart on another port
    before = files(tmp_path)
    assert await publisher.publish() is True
    after = files(tmp_path)

    assert sorted(after) == [CDS_FILE, RDS_FILE]  # nothing left beside them
    assert after[RDS_FILE] == before[RDS_FILE]  # the route stays, its cluster moves
    [cluster] = json.loads(after[CDS_FILE])["resources"]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == 40001
    assert rds_document(base_route_config(), store.current)["version_info"] in after[RDS_FILE]


def files(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in directory.iterdir()}
