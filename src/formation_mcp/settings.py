"""Typed settings, read once from `FMCP_*` environment variables.

Every setting is documented in the README's configuration table; keep both in step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class SettingsError(ValueError):
    """A variable holds a value that cannot be used; the message names it."""


def parse_duration(name: str, text: str) -> float:
    """Seconds from `90`, `90s`, `250ms`, `15m`, `12h` or `7d`."""
    match = _DURATION.match(text)
    if match is None:
        raise SettingsError(f"{name}={text!r}: expected a duration such as 30s, 15m, 12h or 7d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _listen_address(name: str, text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise SettingsError(f"{name}={text!r}: expected host:port, e.g. 127.0.0.1:50051")
    return text


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={text!r}: must be greater than 0")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8081"
    envoy_listen: str = "127.0.0.1:8080"
    data_dir: Path = field(default_factory=lambda: Path("data"))
    database_url: str = ""
    broker_url: str = "memory://"
    operation_ttl_seconds: float = 7 * 86400.0
    sweep_interval_seconds: float = 60.0
    sweep_batch_size: int = 500
    wait_max_seconds: float = 60.0
    shutdown_grace_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    watch_buffer_events: int = 256
    log_level: str = "INFO"
    log_format: str = "json"

    @property
    def effective_database_url(self) -> str:
        """FMCP_DATABASE_URL, or a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'fmcp.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        values: dict[str, Any] = {}
        addresses = {
            "FMCP_GRPC_LISTEN": "grpc_listen",
            "FMCP_HTTP_LISTEN": "http_listen",
            "FMCP_ENVOY_LISTEN": "envoy_listen",
        }
        for var, attr in addresses.items():
            if (text := get(var)) is not None:
                values[attr] = _listen_address(var, text)
        if (text := get("FMCP_DATA_DIR")) is not None:
            values["data_dir"] = Path(text)
        if (text := get("FMCP_DATABASE_URL")) is not None:
            if not text.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
                raise SettingsError(
                    f"FMCP_DATABASE_URL={text!r}: use sqlite+aiosqlite:///path "
                    "or postgresql+asyncpg://user@host/db"
                )
            values["database_url"] = text
        if (text := get("FMCP_BROKER_URL")) is not None:
            if not text.startswith(("memory://", "amqp://", "amqps://")):
                raise SettingsError(f"FMCP_BROKER_URL={text!r}: use memory:// or amqp://...")
            values["broker_url"] = text
        durations = {
            "FMCP_OPERATION_TTL": "operation_ttl_seconds",
            "FMCP_SWEEP_INTERVAL": "sweep_interval_seconds",
            "FMCP_WAIT_MAX": "wait_max_seconds",
            "FMCP_SHUTDOWN_GRACE": "shutdown_grace_seconds",
        }
        for var, attr in durations.items():
            if (text := get(var)) is not None:
                values[attr] = parse_duration(var, text)
        integers = {
            "FMCP_SWEEP_BATCH": "sweep_batch_size",
            "FMCP_MAX_MESSAGE_BYTES": "max_message_bytes",
            "FMCP_WATCH_BUFFER": "watch_buffer_events",
        }
        for var, attr in integers.items():
            if (text := get(var)) is not None:
                values[attr] = _positive_int(var, text)
        if (text := get("FMCP_LOG_LEVEL")) is not None:
            level = text.upper()
            if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
                raise SettingsError(f"FMCP_LOG_LEVEL={text!r}: use DEBUG, INFO, WARNING or ERROR")
            values["log_level"] = level
        if (text := get("FMCP_LOG_FORMAT")) is not None:
            text = text.lower()
            if text not in {"json", "text"}:
                raise SettingsError(f"FMCP_LOG_FORMAT={text!r}: use json or text")
            values["log_format"] = text
        return cls(**values)
