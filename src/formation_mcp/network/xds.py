"""Envoy's dynamic configuration for the routes: pure functions from routes to xDS resources.

- RDS: the front door's route configuration, the server's own routes (given: the template's)
  with one route per exposed path before the catch-all gRPC route, longest path first. A
  running instance's route goes to its cluster with the prefix rewritten to `/`; any other
  state answers 503 with a JSON body naming the instance and its state (a direct response).
  None of the server's filters touch these routes (transcoder, REST body checks, buffer), and
  nothing of the server's (the proxy secret) reaches them. Routes with auth `token` carry the
  JWT filter's requirement (a bearer access token of ours) and an RBAC policy: its `sub` is
  the owner, or its roles hold `admin`.
- CDS: one cluster per exposed instance port, to the loopback port the instance listens on
  now; a restart on another port changes the cluster's endpoint, not the route.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Final

from formation_mcp.network.routes import TOKEN, RouteView
from formation_mcp.permissions import ADMIN
from formation_mcp.workloads.instances import InstanceState

ROUTE_CONFIG_NAME: Final = "fmcp"
JWT_FILTER: Final = "envoy.filters.http.jwt_authn"
RBAC_FILTER: Final = "envoy.filters.http.rbac"
JWT_REQUIREMENT: Final = "fmcp_token"
JWT_PAYLOAD_KEY: Final = "jwt_payload"
"""Where the JWT filter writes the verified token's claims (its dynamic metadata)."""
SERVER_FILTERS_OFF: Final[dict[str, Any]] = {
    "envoy.filters.http.grpc_json_transcoder": {
        "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
        "disabled": True,
    },
    "rest_body_limit": {
        "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
        "disabled": True,
    },
    "envoy.filters.http.lua": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
        "disabled": True,
    },
    "fmcp.rest_bodies": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
        "disabled": True,
    },
}
_JWT_PER_ROUTE: Final = (
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
)
_ROUTE_TYPE: Final = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_CLUSTER_TYPE: Final = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
UPSTREAM_HOST: Final = "127.0.0.1"
"""The local driver's instances listen on the node's loopback."""


def cluster_name(view: RouteView) -> str:
    return f"instance_{view.route.instance_id}_{view.route.port}"


def target_port(view: RouteView) -> int | None:
    """The loopback port a running instance serves the route's port on; None otherwise."""
    instance = view.instance
    if instance is None or instance.state is not InstanceState.RUNNING:
        return None
    return instance.ports.get(str(view.route.port))


def _unavailable_body(view: RouteView) -> str:
    instance = view.instance
    name = instance.name if instance is not None else view.route.instance_id
    state = view.state
    if state == InstanceState.RUNNING.value:
        state = "unreachable"  # running without a loopback port for this route's port
    return json.dumps(
        {
            "code": 503,
            "status": "UNAVAILABLE",
            "message": f"instance {name} is {state}; vm.control starts it",
            "instance": "instances/" + view.route.instance_id,
            "instance_name": name,
            "state": state,
            "path": view.route.path,
        },
        sort_keys=True,
    )


def _auth_config(view: RouteView) -> dict[str, Any]:
    if view.route.auth != TOKEN:
        return {}
    claim = [{"key": JWT_PAYLOAD_KEY}]
    owner = {
        "metadata": {
            "filter": JWT_FILTER,
            "path": [*claim, {"key": "sub"}],
            "value": {"string_match": {"exact": view.route.owner}},
        }
    }
    admin = {
        "metadata": {
            "filter": JWT_FILTER,
            "path": [*claim, {"key": "roles"}],
            "value": {"list_match": {"one_of": {"string_match": {"exact": ADMIN}}}},
        }
    }
    return {
        JWT_FILTER: {
            "@type": _JWT_PER_ROUTE,
            "requirement_name": JWT_REQUIREMENT,
        },
        RBAC_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
            "rbac": {
                "rules": {
                    "action": "ALLOW",
                    "policies": {
                        "owner_or_admin": {
                            "permissions": [{"any": True}],
                            "principals": [{"or_ids": {"ids": [owner, admin]}}],
                        }
                    },
                }
            },
        },
    }


def instance_route(view: RouteView) -> dict[str, Any]:
    """The Envoy route of one exposed path."""
    route: dict[str, Any] = {
        "name": view.route.path,
        "match": {"prefix": view.route.path},
        "typed_per_filter_config": {**SERVER_FILTERS_OFF, **_auth_config(view)},
    }
    if target_port(view) is None:
        route["direct_response"] = {
            "status": 503,
            "body": {"inline_string": _unavailable_body(view)},
        }
        route["response_headers_to_add"] = [
            {
                "header": {"key": "content-type", "value": "application/json"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]
    else:
        # No timeouts: a long download or an event stream stays open.
        route["route"] = {
            "cluster": cluster_name(view),
            "prefix_rewrite": "/",
            "timeout": "0s",
            "idle_timeout": "0s",
        }
    return route


def route_configuration(base: dict[str, Any], views: Iterable[RouteView]) -> dict[str, Any]:
    """`base` (the server's route configuration, one virtual host ending with the catch-all)
    with the exposed paths inserted before its last route, longest path first."""
    config = copy.deepcopy(base)
    config["name"] = ROUTE_CONFIG_NAME
    host = config["virtual_hosts"][0]
    own = host["routes"]
    exposed = sorted(
        (v for v in views if v.instance is not None),
        key=lambda v: (-len(v.route.path), v.route.path),
    )
    host["routes"] = [*own[:-1], *(instance_route(v) for v in exposed), own[-1]]
    return config


def clusters(views: Iterable[RouteView]) -> list[dict[str, Any]]:
    """One cluster per running instance port that a route uses, by name."""
    found: dict[str, dict[str, Any]] = {}
    for view in views:
        port = target_port(view)
        if port is None:
            continue
        name = cluster_name(view)
        found[name] = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {
                                            "address": UPSTREAM_HOST,
                                            "port_value": port,
                                        }
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
    return [found[name] for name in sorted(found)]


def discovery_response(type_url: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A DiscoveryResponse as Envoy reads it from a file; the version is the content's digest."""
    typed = [{"@type": type_url, **resource} for resource in resources]
    digest = hashlib.sha256(json.dumps(typed, sort_keys=True).encode()).hexdigest()[:16]
    return {"version_info": digest, "resources": typed}


def rds_document(base: dict[str, Any], views: list[RouteView]) -> dict[str, Any]:
    return discovery_response(_ROUTE_TYPE, [route_configuration(base, views)])


def cds_document(views: list[RouteView]) -> dict[str, Any]:
    return discovery_response(_CLUSTER_TYPE, clusters(views))
