"""Metrics across the node's life: a worker restart keeps the history (`fmcp serve`, and `fmcp
worker` sending its samples through RabbitMQ), the Prometheus side carries the node's live
instances only (`fmcp serve` with its in-process worker, and `fmcp worker` on its own HTTP
side), and an instance without samples says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families
from tests.support.auth import Md
from tests.support.metrics import (
    METRICS_INTERVAL,
    build_workload,
    create,
    metrics,
    wait_for_samples,
)
from tests.support.servers import StartApp, make_settings
from tests.support.waiting import eventually
from tests.support.workloads import succeed

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.settings import Settings
from formation_mcp.worker_app import WorkerApplication

Series = dict[tuple[str, str], float]


def instance_series(text: str) -> Series:
    """(metric, instance name) -> value of the fmcp_instance_* samples."""
    found: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("fmcp_instance_"):
                found[(sample.name, sample.labels["name"])] = sample.value
    return found


async def scrape(address: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/metrics", timeout=5)
    response.raise_for_status()
    return response.text


async def signed_in(application: Application) -> tuple[grpc.aio.Channel, Md]:
    channel = grpc.aio.insecure_channel(application.grpc.address)
    session = await login(channel, Ed25519PrivateKey.generate())
    return channel, bearer(session.access_token)


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for channel in opened:
        await channel.close()


async def test_a_worker_restart_keeps_the_history(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    overrides = {"node_id": node, "metrics_interval_seconds": METRICS_INTERVAL}
    first = await start_app(stop_instances_on_exit=False, **overrides)
    channel, md = await signed_in(first)
    channels.append(channel)
    build_id = await build_workload(channel, md)
    await create(channel, md, build_id, "idle-kept", memory_mb=128)
    before = await wait_for_samples(channel, md, "idle-kept", 8)
    await first.stop()

    second = await start_app(**overrides)
    again = grpc.aio.insecure_channel(second.grpc.address)
    channels.append(again)
    after = await wait_for_samples(again, md, "idle-kept", before["samples"] + 4)
    assert after["latest"]["restarts"] == 0  # adopted, not restarted
    assert after["summary"]["memory_mb"]["max"] >= before["summary"]["memory_mb"]["max"]
    await succeed(again, md, "vm.delete", id="idle-kept", force=True)


async def test_the_servers_metrics_carry_live_instances_and_drop_deleted_ones(
    metrics_app: Application, metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "idle-scraped", memory_mb=128)
    await wait_for_samples(metrics_channel, user, "idle-scraped", 2)
    series = instance_series(await scrape(metrics_app.http.address))
    assert series[("fmcp_instance_up", "idle-scraped")] == 1
    assert series[("fmcp_instance_memory_limit_bytes", "idle-scraped")] == 128 * 1024**2
    assert series[("fmcp_instance_memory_rss_bytes", "idle-scraped")] > 1024**2
    assert ("fmcp_instance_cpu_seconds_total", "idle-scraped") in series

    await succeed(metrics_channel, user, "vm.delete", id="idle-scraped", force=True)

    async def dropped() -> bool:
        text = await scrape(metrics_app.http.address)
        return ("fmcp_instance_up", "idle-scraped") not in instance_series(text)

    await eventually(dropped)


async def test_an_instance_without_samples_says_so(
    start_app: StartApp, channels: list[grpc.aio.Channel]
) -> None:
    application = await start_app(metrics_interval_seconds=3600.0)
    channel, md = await signed_in(application)
    channels.append(channel)
    build_id = await build_workload(channel, md)
    await create(channel, md, build_id, "idle-unsampled", memory_mb=128)
    answer = await metrics(channel, md, "idle-unsampled")
    assert answer["samples"] == 0 and answer["series"] == {}
    assert answer["message"].startswith("no samples yet")
    await succeed(channel, md, "vm.delete", id="idle-unsampled", force=True)


@dataclass(frozen=True)
class SeparateNodes:
    """An API server without a worker of its own on RabbitMQ (under this test's prefix), a
    caller signed in to it, and the settings for `fmcp worker` processes of its own nodes."""

    broker: dict[str, str]
    channel: grpc.aio.Channel
    md: Md
    database_url: str
    tmp_path: Path

    def worker_settings(self, **extra: Any) -> Settings:
        """A separate worker's settings: a node of its own, short sampling, the broker."""
        return make_settings(
            self.tmp_path / "worker",
            self.database_url,
            node_id=f"node-{uuid.uuid4().hex[:8]}",
            metrics_interval_seconds=METRICS_INTERVAL,
            **self.broker,
            **extra,
        )


@pytest.fixture
async def separate(
    start_app: StartApp,
    channels: list[grpc.aio.Channel],
    database_url: str,
    rabbitmq_url: str,
    tmp_path: Path,
) -> SeparateNodes:
    broker = {"broker_url": rabbitmq_url, "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}"}
    api = await start_app(run_worker=False, **broker)
    channel, md = await signed_in(api)
    channels.append(channel)
    return SeparateNodes(broker, channel, md, database_url, tmp_path)


@pytest.mark.rabbitmq
async def test_fmcp_worker_serves_its_instances_metrics_and_drops_deleted_ones(
    separate: SeparateNodes,
) -> None:
    channel, md = separate.channel, separate.md
    worker = WorkerApplication(separate.worker_settings(worker_http_listen="127.0.0.1:0"))
    await worker.start()
    try:
        build_id = await build_workload(channel, md)
        created = await create(channel, md, build_id, "idle-worker", memory_mb=128)
        await wait_for_samples(channel, md, "idle-worker", 2)
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://{worker.http.address}/healthz", timeout=5)
        assert health.json() == {"status": "ok"}
        text = await scrape(worker.http.address)
        series = instance_series(text)
        assert series[("fmcp_instance_up", "idle-worker")] == 1
        families = {family.name: family for family in text_string_to_metric_families(text)}
        (up,) = families["fmcp_instance_up"].samples
        assert up.labels == {
            "instance": created["instance_id"],
            "name": "idle-worker",
            "owner": created["owner"],
            "node": created["node"],
        }
        await succeed(channel, md, "vm.delete", id="idle-worker", force=True)

        async def dropped() -> bool:
            text = await scrape(worker.http.address)
            return ("fmcp_instance_up", "idle-worker") not in instance_series(text)

        await eventually(dropped)
    finally:
        await worker.stop()


@pytest.mark.rabbitmq
async def test_a_restarted_fmcp_worker_keeps_the_history_its_samples_sent_through_rabbitmq(
    separate: SeparateNodes,
) -> None:
    channel, md = separate.channel, separate.md
    settings = separate.worker_settings(stop_instances_on_exit=False)
    first = WorkerApplication(settings)
    await first.start()
    try:
        build_id = await build_workload(channel, md)
        await create(channel, md, build_id, "idle-rabbit", memory_mb=128)
        before = await wait_for_samples(channel, md, "idle-rabbit", 6)
    finally:
        await first.stop()
    second = WorkerApplication(settings)
    await second.start()
    try:
        after = await wait_for_samples(channel, md, "idle-rabbit", before["samples"] + 4)
        assert after["latest"]["restarts"] == 0  # adopted, not restarted
        await succeed(channel, md, "vm.delete", id="idle-rabbit", force=True)
    finally:
        await second.stop()
