"""The per-instance Prometheus series of a node: a collector over what the sampler saw at its
last tick, labelled `instance`, `name`, `owner` and `node`. Only the node's live instances are
there (a deleted one drops out at the next tick), so the label sets stay bounded by them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from formation_mcp.workloads.metrics.sampler import Observed, Sampler

Value = Callable[[Observed], float | None]
LABELS: Final = ["instance", "name", "owner", "node"]
MIB: Final = 1024**2
GIB: Final = 1024**3


class InstanceCollector(Collector):
    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        observed = list(self._sampler.observed.values())

        def gauge(name: str, documentation: str, value: Value) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation, labels=LABELS)
            for seen in observed:
                v = value(seen)
                if v is not None:
                    family.add_metric(_labels(seen), float(v))
            return family

        def counter(name: str, documentation: str, value: Value) -> CounterMetricFamily:
            family = CounterMetricFamily(name, documentation, labels=LABELS)
            for seen in observed:
                family.add_metric(_labels(seen), float(value(seen) or 0))
            return family

        yield gauge(
            "fmcp_instance_up",
            "1 while the instance runs, 0 otherwise.",
            lambda o: 1 if o.sample.state == "running" else 0,
        )
        yield counter(
            "fmcp_instance_cpu_seconds",
            "CPU time of the instance's process group in its current run.",
            lambda o: o.sample.cpu_seconds,
        )
        yield gauge(
            "fmcp_instance_cpu_percent",
            "CPU use over the last sampling interval, in percent of the instance's vcpus.",
            lambda o: o.sample.cpu_percent,
        )
        yield gauge(
            "fmcp_instance_vcpus", "The instance's vcpus.", lambda o: o.instance.resources.vcpus
        )
        yield gauge(
            "fmcp_instance_memory_rss_bytes",
            "Resident memory of the instance's processes (sum).",
            lambda o: o.sample.rss_bytes,
        )
        yield gauge(
            "fmcp_instance_memory_limit_bytes",
            "The instance's memory_mb in bytes.",
            lambda o: o.instance.resources.memory_mb * MIB,
        )
        yield gauge(
            "fmcp_instance_disk_bytes",
            "Bytes the instance's directory uses on disk.",
            lambda o: o.sample.disk_bytes,
        )
        yield gauge(
            "fmcp_instance_disk_limit_bytes",
            "The instance's disk_gb in bytes.",
            lambda o: o.instance.resources.disk_gb * GIB,
        )
        yield gauge("fmcp_instance_processes", "Processes.", lambda o: o.sample.processes)
        yield gauge("fmcp_instance_threads", "Threads.", lambda o: o.sample.threads)
        yield gauge("fmcp_instance_open_fds", "Open file descriptors.", lambda o: o.sample.open_fds)
        yield gauge(
            "fmcp_instance_listening_ports",
            "TCP ports it listens on.",
            lambda o: len(o.sample.ports),
        )
        yield counter(
            "fmcp_instance_restarts", "Starts after the first.", lambda o: o.sample.restarts
        )
        yield counter(
            "fmcp_instance_failures",
            "Runs that ended with a non-zero exit code or a signal.",
            lambda o: o.sample.failures,
        )
        yield gauge(
            "fmcp_instance_last_exit_code",
            "How the last run ended (minus the signal number for a signal).",
            lambda o: o.sample.exit_code,
        )
        ticks = CounterMetricFamily(
            "fmcp_metrics_sampling_cpu_seconds", "CPU time this process spent sampling."
        )
        ticks.add_metric([], self._sampler.cpu_seconds)
        yield ticks


def _labels(observed: Observed) -> list[str]:
    record = observed.instance
    return [record.instance_id, record.name, record.owner, record.node]
