"""`vm.metrics` and `vm.recommend`: quick, read-only tools that run inline on the API server
over the samples each node writes (samples.SampleStore). Another owner's instance is
NOT_FOUND, as for every instance tool."""

from __future__ import annotations

from typing import Any, Final

from formation_mcp.clock import now_us
from formation_mcp.errors import InvalidArgument
from formation_mcp.settings import SettingsError, parse_duration
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec
from formation_mcp.workloads.instances import InstanceRecord, InstanceStore
from formation_mcp.workloads.metrics.failures import failures_in
from formation_mcp.workloads.metrics.rules import Observation, recommend
from formation_mcp.workloads.metrics.samples import SampleStore
from formation_mcp.workloads.metrics.series import (
    MAX_POINTS,
    SERIES,
    build_metrics,
    default_step,
    rfc3339,
)
from formation_mcp.workloads.pack_tools import WorkloadEnvironment

SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_METRICS_WINDOW: Final = "15m"
DEFAULT_RECOMMEND_WINDOW: Final = "1h"
MAX_RECOMMEND_INSTANCES: Final = 50
MAX_FINDINGS: Final = 100
_DURATION: Final = {
    "type": "string",
    "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$",
    "maxLength": 32,
}
_ID: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "The instance id, or its name.",
}
_SUMMARY: Final = {
    "type": "object",
    "properties": {k: {"type": "number"} for k in ("avg", "p95", "max", "last")},
}
_FINDING: Final = {
    "type": "object",
    "properties": {
        "instance": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"enum": ["oversized", "undersized", "idle", "crash_loop", "insufficient_data"]},
        "severity": {"enum": ["info", "warning", "critical"]},
        "current": {"type": "object"},
        "recommended": {"type": "object"},
        "reason": {"type": "string"},
        "evidence": {"type": "object"},
    },
    "required": ["instance", "kind", "severity", "current", "recommended", "reason", "evidence"],
}

VM_METRICS_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": _ID,
        "window": {
            **_DURATION,
            "description": "How far back: 15m (default), 1h, 24h ... (at most the retention).",
        },
        "step": {
            **_DURATION,
            "description": "One point per step (default: a round step "
            f"giving at most {MAX_POINTS} points).",
        },
    },
    "required": ["id"],
    "additionalProperties": False,
}
VM_METRICS_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "instance_id": {"type": "string"},
        "name": {"type": "string"},
        "state": {"type": "string"},
        "window_seconds": {"type": "number"},
        "step_seconds": {"type": "integer"},
        "interval_seconds": {"type": "number"},
        "limits": {"type": "object"},
        "samples": {"type": "integer", "description": "Samples in the window (running)."},
        "times": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_POINTS},
        "series": {
            "type": "object",
            "properties": {
                name: {
                    "type": "array",
                    "items": {"type": ["number", "null"]},
                    "maxItems": MAX_POINTS,
                }
                for name in SERIES
            },
        },
        "summary": {"type": "object", "properties": {name: _SUMMARY for name in SERIES}},
        "latest": {"type": "object"},
        "exits": {"type": "array", "items": {"type": "object"}},
        "message": {"type": "string"},
    },
    "required": ["instance_id", "name", "limits", "samples", "series", "summary"],
}
VM_RECOMMEND_INPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "id": {**_ID, "description": "One instance (id or name); none: all your live ones."},
        "window": {**_DURATION, "description": "How far back to judge: 1h (default)."},
    },
    "additionalProperties": False,
}
VM_RECOMMEND_OUTPUT: Final = {
    "$schema": SCHEMA,
    "type": "object",
    "properties": {
        "window_seconds": {"type": "number"},
        "instances_checked": {"type": "integer"},
        "findings": {"type": "array", "items": _FINDING, "maxItems": MAX_FINDINGS},
        "truncated": {"type": "boolean"},
    },
    "required": ["window_seconds", "instances_checked", "findings"],
}


class MetricsTools:
    def __init__(
        self,
        environment: WorkloadEnvironment,
        *,
        retention_seconds: float,
        interval_seconds: float,
    ) -> None:
        self._instances = InstanceStore(environment.database)
        self._samples = SampleStore(environment.database)
        self._db = environment.database
        self._retention = retention_seconds
        self._interval = interval_seconds

    def _window(self, arguments: dict[str, Any], default: str) -> float:
        text = arguments.get("window") or default
        try:
            seconds = parse_duration("window", text)
        except SettingsError:
            raise InvalidArgument.for_field(
                "arguments.window", "a duration such as 15m, 1h or 24h"
            ) from None
        if not 0 < seconds <= self._retention:
            raise InvalidArgument.for_field(
                "arguments.window",
                f"more than 0 and at most the retention ({self._retention / 3600:g}h)",
            )
        return seconds

    def _step(self, arguments: dict[str, Any], window: float) -> int:
        if "step" not in arguments:
            return default_step(window)
        try:
            step = round(parse_duration("step", arguments["step"]))
        except SettingsError:
            raise InvalidArgument.for_field(
                "arguments.step", "a duration such as 30s or 5m"
            ) from None
        if step < 1 or window / step > MAX_POINTS:
            raise InvalidArgument.for_field(
                "arguments.step",
                f"at least 1s and at least window/{MAX_POINTS} "
                f"({default_step(window)}s or more for this window)",
            )
        return step

    async def metrics(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        window = self._window(arguments, DEFAULT_METRICS_WINDOW)
        step = self._step(arguments, window)
        instance = await self._instances.find(
            arguments["id"], context.owner, any_owner=context.caller_is_admin
        )
        until = now_us()
        since = until - int(window * 1e6)
        samples = await self._samples.window(instance.instance_id, since, until)
        built = build_metrics(
            samples, instance.resources, since_us=since, until_us=until, step_seconds=step
        )
        answer: dict[str, Any] = {
            "instance_id": instance.instance_id,
            "name": instance.name,
            "state": instance.state.value,
            "window_seconds": window,
            "step_seconds": step,
            "interval_seconds": self._interval,
            "limits": instance.resources.to_json(),
            **built,
        }
        if samples:
            last = samples[-1]
            answer["latest"] = {
                "time": rfc3339(last.time_us),
                "cpu_seconds": last.cpu_seconds,
                "listening_ports": list(last.ports),
                "restarts": last.restarts,
                "failures": last.failures,
                "exit_code": last.exit_code,
            }
        if not built["samples"]:
            answer["times"] = []
            answer["series"] = {}
            answer["message"] = _no_samples(instance, self._interval)
        return answer

    async def recommend(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        window = self._window(arguments, DEFAULT_RECOMMEND_WINDOW)
        if arguments.get("id"):
            found = [
                await self._instances.find(
                    arguments["id"], context.owner, any_owner=context.caller_is_admin
                )
            ]
        else:
            found = await self._instances.list_live(context.owner, MAX_RECOMMEND_INSTANCES + 1)
        truncated = len(found) > MAX_RECOMMEND_INSTANCES
        until = now_us()
        since = until - int(window * 1e6)
        findings: list[dict[str, Any]] = []
        for instance in found[:MAX_RECOMMEND_INSTANCES]:
            samples = await self._samples.window(instance.instance_id, since, until)
            failures = await failures_in(self._db, instance.resource_name, since, until)
            findings.extend(
                recommend(
                    Observation(
                        instance_id=instance.instance_id,
                        name=instance.name,
                        state=instance.state.value,
                        limits=instance.resources,
                        samples=samples,
                        window_seconds=window,
                        failures=failures,
                    )
                )
            )
        truncated = truncated or len(findings) > MAX_FINDINGS
        return {
            "window_seconds": window,
            "instances_checked": min(len(found), MAX_RECOMMEND_INSTANCES),
            "findings": findings[:MAX_FINDINGS],
            "truncated": truncated,
        }


def _no_samples(instance: InstanceRecord, interval: float) -> str:
    if instance.state.value == "running":
        return f"no samples yet: its node samples every {interval:g}s; ask again in a moment"
    return f"no samples in the window: the instance is {instance.state.value}"


def register(
    registry: ToolRegistry,
    environment: WorkloadEnvironment,
    *,
    retention_seconds: float,
    interval_seconds: float,
) -> None:
    tools = MetricsTools(
        environment, retention_seconds=retention_seconds, interval_seconds=interval_seconds
    )
    registry.register(
        ToolSpec(
            name="vm.metrics",
            title="Instance metrics",
            description=(
                "CPU (percent of its vcpus), memory (MB and percent of memory_mb), disk, "
                "processes, threads and open files of an instance (by id or name) over a "
                f"window (default 15m): at most {MAX_POINTS} points per series, a summary per "
                "series (avg, p95, max, last), its limits, listening ports, restarts and how "
                "its recent runs ended."
            ),
            version="1.0.0",
            category="vm",
            input_schema=VM_METRICS_INPUT,
            output_schema=VM_METRICS_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        tools.metrics,
    )
    registry.register(
        ToolSpec(
            name="vm.recommend",
            title="Resource recommendations",
            description=(
                "Findings about an instance (id) or all your live instances over a window "
                "(default 1h): oversized or undersized (with the size to ship it with), "
                "idle (stop it), crash_loop (with its last error lines) or insufficient_data."
            ),
            version="1.0.0",
            category="vm",
            input_schema=VM_RECOMMEND_INPUT,
            output_schema=VM_RECOMMEND_OUTPUT,
            read_only=True,
            idempotent=True,
        ),
        tools.recommend,
    )
