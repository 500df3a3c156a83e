"""The events the local driver reports about its instances and its node (spooled and
published through the broker by `events.reporter.NodeEvents`)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from formation_mcp.events.model import NODE_ONLINE, Severity
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.workloads.instances import InstanceRecord
from formation_mcp.workloads.supervisor import Exit

log = logging.getLogger(__name__)


class InstanceEvents:
    def __init__(self, reporter: NodeEvents | None, node_id: str) -> None:
        self._reporter = reporter
        self._node_id = node_id

    def report(
        self, instance: InstanceRecord, kind: str, severity: Severity, message: str, **data: Any
    ) -> None:
        """Spool an event of the instance; a failure to spool is logged, never raised (the
        state change it reports has happened)."""
        if self._reporter is None:
            return
        try:
            self._reporter.report(
                kind,
                instance.resource_name,
                instance.owner,
                severity,
                message,
                name=instance.name,
                **data,
            )
        except OSError:
            log.exception("could not spool the %s event of %s", kind, instance.instance_id)

    def running(self, instance: InstanceRecord, kind: str, what: str) -> None:
        self.report(
            instance,
            kind,
            Severity.INFO,
            f"instance {instance.name} {what} on node {self._node_id} (pid {instance.pid})",
            pid=instance.pid,
            ports=dict(instance.ports),
        )

    def node(self, kind: str, message: str) -> None:
        if self._reporter is None:
            return
        severity = Severity.INFO if kind == NODE_ONLINE else Severity.WARNING
        try:
            self._reporter.report(kind, f"nodes/{self._node_id}", "", severity, message)
        except OSError:
            log.exception("could not spool the %s event", kind)


def exit_data(ended: Exit) -> dict[str, Any]:
    """`exit_code`, or `signal` for an entrypoint killed by one (nothing when unknown)."""
    if ended.code is None:
        return {}
    if ended.code < 0:
        try:
            return {"signal": signal.Signals(-ended.code).name}
        except ValueError:
            return {"signal": str(-ended.code)}
    return {"exit_code": ended.code}
