"""Test servers' settings and what the fixtures that start them share: ports, the databases and
broker the connected tier uses, the tool modules every test server loads."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from formation_mcp.app import Application
from formation_mcp.settings import Settings

POSTGRES_ADMIN_DSN = os.environ.get(
    "FMCP_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
RABBITMQ_URL = os.environ.get("FMCP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_CI = os.environ.get("CI", "").lower() == "true"
"""Under CI=true a missing PostgreSQL or RabbitMQ fails the tests that need it (else: skipped)."""

TEST_TOOL_MODULES = ("examples.demo_tools", "tests.support.tools")
"""The README's demo tools and the tools only tests use (test.echo, test.sleep, test.crash...)."""
LOGIN_RATE_FOR_SHARED_SERVERS = 100_000
"""Logins per minute per key (x4 per address) on servers every test shares: all their logins
come from 127.0.0.1. Rate limiting itself is tested on servers of its own."""

StartApp = Callable[..., Awaitable[Application]]
"""The root conftest's `start_app(run_worker=True, data_dir=None, **settings)`: another
server, with settings of its own, stopped after the test."""


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    """A test server's settings. Each has a proxy secret of its own, as `fmcp serve --envoy`
    makes up: an Envoy put in front of it with that secret is its trusted front door."""
    base = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        database_url=database_url,
        shutdown_grace_seconds=1.0,
        log_level="WARNING",
        tool_modules=TEST_TOOL_MODULES,
        proxy_secret=secrets.token_urlsafe(32),
    )
    return replace(base, **overrides)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def delete_broker_topology(application: Application) -> None:
    """Delete the queues and exchanges of a test server's own RabbitMQ prefix."""
    delete = getattr(application.broker, "delete_topology", None)
    if delete is not None and application.settings.broker_prefix.startswith("fmcp-test-"):
        await delete()
