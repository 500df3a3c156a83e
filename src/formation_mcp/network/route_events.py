"""The events of routes: `network.exposed` when an instance gets a URL on the front door,
`network.unexposed` when it loses one (recorded in the transaction that writes the route, so
exactly once; a route that goes with its deleted instance is told by `instance.deleted`)."""

from __future__ import annotations

from formation_mcp.events.model import NETWORK_EXPOSED, NETWORK_UNEXPOSED, NewEvent, Severity
from formation_mcp.workloads.instances import InstanceRecord


def exposed_event(
    instance: InstanceRecord, path: str, port: int, auth: str, url: str, time: int
) -> NewEvent:
    return NewEvent(
        key=f"route:{path}:{time}:exposed",
        type=NETWORK_EXPOSED,
        resource=instance.resource_name,
        owner=instance.owner,
        time=time,
        severity=Severity.INFO,
        message=f"instance {instance.name} port {port} exposed at {url} ({auth})",
        data={"path": path, "port": port, "auth": auth, "url": url},
    )


def unexposed_event(
    instance: InstanceRecord, path: str, port: int, created: int, time: int
) -> NewEvent:
    return NewEvent(
        key=f"route:{path}:{created}:unexposed",
        type=NETWORK_UNEXPOSED,
        resource=instance.resource_name,
        owner=instance.owner,
        time=time,
        severity=Severity.INFO,
        message=f"instance {instance.name} no longer exposed at {path}",
        data={"path": path, "port": port},
    )
