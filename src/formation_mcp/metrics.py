"""Prometheus metrics of this process (served at /metrics on FMCP_HTTP_LISTEN)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """One registry per application, so several apps in one process (tests) stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_calls = Counter(
            "fmcp_grpc_calls",
            "Finished RPCs by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "fmcp_grpc_call_seconds",
            "RPC latency by method (streams: their whole life).",
            ["method"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self._finished: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self.operations = Gauge(
            "fmcp_operations",
            "Stored operations by state (refreshed periodically).",
            ["state"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "fmcp_outbox_messages",
            "Messages written and not yet confirmed by the broker.",
            registry=self.registry,
        )
        self.watchers = Gauge(
            "fmcp_watchers",
            "Open WatchOperation and WaitOperation calls in this process.",
            registry=self.registry,
        )

    def rpc_finished(self, method: str, code: str, seconds: float) -> None:
        """Count a finished RPC and its latency (each label set's children looked up once:
        `labels()` takes a lock and builds keys on every call)."""
        children = self._finished.get((method, code))
        if children is None:
            children = (self.rpc_calls.labels(method, code), self.rpc_latency.labels(method))
            self._finished[method, code] = children
        children[0].inc()
        children[1].observe(seconds)
