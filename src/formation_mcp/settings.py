"""Typed settings, read once from `FMCP_*` environment variables.

Every setting is documented in the README's configuration table; keep both in step.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formation_mcp.proxies import MIN_SECRET_CHARS, parse_network

DEFAULT_WORKLOAD_USER = "nobody"
"""Who workloads run as when the worker is root and FMCP_RUN_AS is not set."""
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
    broker_prefix: str = "fmcp"
    operation_ttl_seconds: float = 7 * 86400.0
    approval_ttl_seconds: float = 3600.0
    console_session_seconds: float = 8 * 3600.0
    event_ttl_seconds: float = 7 * 86400.0
    sweep_interval_seconds: float = 60.0
    sweep_batch_size: int = 500
    wait_max_seconds: float = 60.0
    shutdown_grace_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    watch_buffer_events: int = 256
    log_level: str = "INFO"
    log_format: str = "json"
    signing_key_file: Path | None = None
    admin_keys: tuple[str, ...] = ()
    auth_signup: str = "open"
    auth_issuer: str = "formation-mcp"
    auth_audience: str = "formation-mcp"
    auth_domain: str = "formation-mcp"
    access_token_ttl_seconds: float = 900.0
    refresh_token_ttl_seconds: float = 14 * 86400.0
    challenge_ttl_seconds: float = 300.0
    token_cache_size: int = 10_000
    login_rate_per_minute: int = 30
    oauth_request_ttl_seconds: float = 300.0
    oauth_code_ttl_seconds: float = 60.0
    oauth_client_networks: tuple[str, ...] = ()
    artifact_dir: Path | None = None
    work_dir: Path | None = None
    run_as: str = ""
    unsafe_workloads: bool = False
    build_step_timeout_seconds: float = 600.0
    progress_heartbeat_seconds: float = 5.0
    max_attempts: int = 3
    worker_prefetch: int = 16
    gc_young_threshold: int = 20_000
    """Allocations between young-generation collections in `fmcp serve` and `fmcp worker`
    (Python's default is 700; see `gc_tuning`)."""
    node_id: str = ""
    instance_stop_grace_seconds: float = 10.0
    instance_log_bytes: int = 1024 * 1024
    stop_instances_on_exit: bool = True
    metrics_interval_seconds: float = 10.0
    metrics_retention_seconds: float = 86400.0
    worker_http_listen: str = "127.0.0.1:8082"
    tool_modules: tuple[str, ...] = ()
    mcp_allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    proxy_secret: str = field(default="", repr=False)
    """From FMCP_PROXY_SECRET_FILE, or made up by `fmcp serve --envoy`; never printed."""
    public_url: str = ""
    route_sync_seconds: float = 0.5

    @property
    def effective_public_url(self) -> str:
        """FMCP_PUBLIC_URL, or http:// and FMCP_ENVOY_LISTEN: the front door as its users
        reach it (the base of exposed routes' URLs)."""
        return (self.public_url or f"http://{self.envoy_listen}").rstrip("/")

    @property
    def xds_dir(self) -> Path:
        """Where this server writes its Envoy's dynamic configuration (routes, clusters)."""
        return self.data_dir / "envoy-xds"

    @property
    def effective_artifact_dir(self) -> Path:
        """FMCP_ARTIFACT_DIR, or artifacts/ in the data dir: content-addressed packs."""
        return self.artifact_dir or self.data_dir / "artifacts"

    @property
    def effective_work_dir(self) -> Path:
        """FMCP_WORK_DIR, or a directory under the system temp dir: builds and instances run
        there, never inside the server's own directories."""
        return self.work_dir or Path(tempfile.gettempdir()) / f"fmcp-work-{os.getuid()}"

    @property
    def effective_run_as(self) -> str:
        """FMCP_RUN_AS, or `nobody` when this process is root: workloads never run as root."""
        if self.run_as:
            return self.run_as
        return DEFAULT_WORKLOAD_USER if os.geteuid() == 0 else ""

    @property
    def effective_node_id(self) -> str:
        """FMCP_NODE_ID, or this machine's name and a digest of the data directory: stable
        across restarts (a node finds its instances again), distinct for two workers with
        their own data directories on one machine."""
        if self.node_id:
            return self.node_id
        host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()).strip("-")[:64] or "node"
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:8]
        return f"{host}-{digest}"

    @property
    def effective_signing_key_file(self) -> Path:
        """FMCP_SIGNING_KEY_FILE, or signing-key.pem in the data dir."""
        return self.signing_key_file or self.data_dir / "signing-key.pem"

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
            "FMCP_WORKER_HTTP_LISTEN": "worker_http_listen",
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
            "FMCP_APPROVAL_TTL": "approval_ttl_seconds",
            "FMCP_CONSOLE_SESSION_TTL": "console_session_seconds",
            "FMCP_EVENT_TTL": "event_ttl_seconds",
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
            "FMCP_GC_YOUNG_THRESHOLD": "gc_young_threshold",
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
        values.update(_auth_values(get))
        values.update(_work_values(get))
        values.update(_metrics_values(get))
        values.update(_mcp_values(get))
        values.update(_proxy_values(get))
        values.update(_network_values(get))
        return cls(**values)


MAX_ACCESS_TOKEN_SECONDS = 900.0
MAX_CHALLENGE_SECONDS = 300.0
MAX_OAUTH_REQUEST_SECONDS = 300.0
MAX_OAUTH_CODE_SECONDS = 600.0


def _auth_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if (text := get("FMCP_SIGNING_KEY_FILE")) is not None:
        values["signing_key_file"] = Path(text)
    if (text := get("FMCP_ADMIN_KEYS")) is not None:
        values["admin_keys"] = tuple(k.strip() for k in text.split(",") if k.strip())
    if (text := get("FMCP_AUTH_SIGNUP")) is not None:
        if text not in {"open", "closed"}:
            raise SettingsError(f"FMCP_AUTH_SIGNUP={text!r}: use open or closed")
        values["auth_signup"] = text
    for var, attr in (
        ("FMCP_AUTH_ISSUER", "auth_issuer"),
        ("FMCP_AUTH_AUDIENCE", "auth_audience"),
        ("FMCP_AUTH_DOMAIN", "auth_domain"),
    ):
        if (text := get(var)) is not None:
            values[attr] = text
    limits = {
        "FMCP_ACCESS_TOKEN_TTL": ("access_token_ttl_seconds", MAX_ACCESS_TOKEN_SECONDS),
        "FMCP_CHALLENGE_TTL": ("challenge_ttl_seconds", MAX_CHALLENGE_SECONDS),
        "FMCP_REFRESH_TOKEN_TTL": ("refresh_token_ttl_seconds", 30 * 86400.0),
        "FMCP_OAUTH_REQUEST_TTL": ("oauth_request_ttl_seconds", MAX_OAUTH_REQUEST_SECONDS),
        "FMCP_OAUTH_CODE_TTL": ("oauth_code_ttl_seconds", MAX_OAUTH_CODE_SECONDS),
    }
    for var, (attr, maximum) in limits.items():
        if (text := get(var)) is not None:
            seconds = parse_duration(var, text)
            if not 0 < seconds <= maximum:
                raise SettingsError(
                    f"{var}={text!r}: must be more than 0 and at most {maximum:.0f}s"
                )
            values[attr] = seconds
    if (text := get("FMCP_TOKEN_CACHE")) is not None:
        if not text.isascii() or not text.isdigit():
            raise SettingsError(f"FMCP_TOKEN_CACHE={text!r}: a number of tokens (0 turns it off)")
        values["token_cache_size"] = int(text)
    if (text := get("FMCP_LOGIN_RATE")) is not None:
        values["login_rate_per_minute"] = _positive_int("FMCP_LOGIN_RATE", text)
    if (text := get("FMCP_OAUTH_CLIENT_NETWORKS")) is not None:
        values["oauth_client_networks"] = _networks("FMCP_OAUTH_CLIENT_NETWORKS", text)
    return values


def _networks(var: str, text: str) -> tuple[str, ...]:
    networks = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(str(parse_network(entry)))
        except ValueError:
            raise SettingsError(
                f"{var}={text!r}: {entry!r} is not an address or network such as 10.0.0.5 or "
                "10.0.0.0/8"
            ) from None
    return tuple(networks)


def _work_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if (text := get("FMCP_MAX_ATTEMPTS")) is not None:
        values["max_attempts"] = _positive_int("FMCP_MAX_ATTEMPTS", text)
    if (text := get("FMCP_WORKER_PREFETCH")) is not None:
        values["worker_prefetch"] = _positive_int("FMCP_WORKER_PREFETCH", text)
    if (text := get("FMCP_ARTIFACT_DIR")) is not None:
        values["artifact_dir"] = Path(text)
    if (text := get("FMCP_WORK_DIR")) is not None:
        values["work_dir"] = Path(text)
    if (text := get("FMCP_RUN_AS")) is not None:
        values["run_as"] = text
    if (text := get("FMCP_PROGRESS_HEARTBEAT")) is not None:
        seconds = parse_duration("FMCP_PROGRESS_HEARTBEAT", text)
        if seconds <= 0:
            raise SettingsError(f"FMCP_PROGRESS_HEARTBEAT={text!r}: must be more than 0")
        values["progress_heartbeat_seconds"] = seconds
    if (text := get("FMCP_BUILD_STEP_TIMEOUT")) is not None:
        values["build_step_timeout_seconds"] = parse_duration("FMCP_BUILD_STEP_TIMEOUT", text)
    if (text := get("FMCP_BROKER_PREFIX")) is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
            raise SettingsError(f"FMCP_BROKER_PREFIX={text!r}: letters, digits, . _ - only")
        values["broker_prefix"] = text
    if (text := get("FMCP_INSTANCE_STOP_GRACE")) is not None:
        values["instance_stop_grace_seconds"] = parse_duration("FMCP_INSTANCE_STOP_GRACE", text)
    if (text := get("FMCP_INSTANCE_LOG_BYTES")) is not None:
        values["instance_log_bytes"] = _positive_int("FMCP_INSTANCE_LOG_BYTES", text)
    if (text := get("FMCP_STOP_INSTANCES_ON_EXIT")) is not None:
        values["stop_instances_on_exit"] = _boolean("FMCP_STOP_INSTANCES_ON_EXIT", text)
    if (text := get("FMCP_UNSAFE_WORKLOADS")) is not None:
        values["unsafe_workloads"] = _boolean("FMCP_UNSAFE_WORKLOADS", text)
    if (text := get("FMCP_NODE_ID")) is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", text):
            raise SettingsError(f"FMCP_NODE_ID={text!r}: 1 to 128 letters, digits, _ or -")
        values["node_id"] = text
    if (text := get("FMCP_TOOL_MODULES")) is not None:
        values["tool_modules"] = tuple(m.strip() for m in text.split(",") if m.strip())
    return values


MIN_METRICS_RETENTION_SECONDS = 3600.0


def _metrics_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    """How often each worker samples its instances, and how long the samples are kept."""
    values: dict[str, Any] = {}
    if (text := get("FMCP_METRICS_INTERVAL")) is not None:
        seconds = parse_duration("FMCP_METRICS_INTERVAL", text)
        if not 0.05 <= seconds <= 3600:
            raise SettingsError(f"FMCP_METRICS_INTERVAL={text!r}: must be from 50ms to 1h")
        values["metrics_interval_seconds"] = seconds
    if (text := get("FMCP_METRICS_RETENTION")) is not None:
        seconds = parse_duration("FMCP_METRICS_RETENTION", text)
        if seconds < MIN_METRICS_RETENTION_SECONDS:
            raise SettingsError(f"FMCP_METRICS_RETENTION={text!r}: must be at least 1h")
        values["metrics_retention_seconds"] = seconds
    return values


def _boolean(var: str, text: str) -> bool:
    if text.lower() not in {"true", "false", "1", "0"}:
        raise SettingsError(f"{var}={text!r}: use true or false")
    return text.lower() in {"true", "1"}


_ORIGIN = re.compile(r"^https?://[^/\s]+$")


def _mcp_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The MCP endpoint's browser origins, beyond loopback ones (always allowed)."""
    values: dict[str, Any] = {}
    if (text := get("FMCP_MCP_ALLOWED_ORIGINS")) is not None:
        origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise SettingsError(
                    f"FMCP_MCP_ALLOWED_ORIGINS={text!r}: {origin!r} is not an origin such as "
                    "https://app.example.com (scheme://host[:port], no path)"
                )
        values["mcp_allowed_origins"] = origins
    return values


def _proxy_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The front doors whose x-forwarded-for is believed (formation_mcp/proxies.py)."""
    values: dict[str, Any] = {}
    if (text := get("FMCP_TRUSTED_PROXIES")) is not None:
        values["trusted_proxies"] = _networks("FMCP_TRUSTED_PROXIES", text)
    if (text := get("FMCP_PROXY_SECRET_FILE")) is not None:
        try:
            secret = Path(text).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"FMCP_PROXY_SECRET_FILE={text!r}: cannot read it ({exc})"
            ) from None
        if len(secret) < MIN_SECRET_CHARS or not secret.isascii() or not secret.isprintable():
            raise SettingsError(
                f"FMCP_PROXY_SECRET_FILE={text!r}: the file must hold at least "
                f"{MIN_SECRET_CHARS} printable ASCII characters (openssl rand -hex 32)"
            )
        values["proxy_secret"] = secret
    return values


def _network_values(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The front door's routes to instances (network.expose)."""
    values: dict[str, Any] = {}
    if (text := get("FMCP_PUBLIC_URL")) is not None:
        if not text.startswith(("http://", "https://")) or "?" in text or "#" in text:
            raise SettingsError(
                f"FMCP_PUBLIC_URL={text!r}: the front door's URL, e.g. https://fmcp.example.com"
            )
        values["public_url"] = text
    if (text := get("FMCP_ROUTE_SYNC")) is not None:
        seconds = parse_duration("FMCP_ROUTE_SYNC", text)
        if seconds <= 0 or seconds > 60:
            raise SettingsError(f"FMCP_ROUTE_SYNC={text!r}: more than 0, at most 60s")
        values["route_sync_seconds"] = seconds
    return values
