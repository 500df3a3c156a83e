"""Settings from FMCP_* variables (always an explicit mapping; os.environ is never touched)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from formation_mcp.settings import Settings, SettingsError, parse_duration

ADDRESS_VARS = [
    ("FMCP_GRPC_LISTEN", "grpc_listen"),
    ("FMCP_HTTP_LISTEN", "http_listen"),
    ("FMCP_ENVOY_LISTEN", "envoy_listen"),
]
DURATION_VARS = [
    ("FMCP_OPERATION_TTL", "operation_ttl_seconds"),
    ("FMCP_EVENT_TTL", "event_ttl_seconds"),
    ("FMCP_SWEEP_INTERVAL", "sweep_interval_seconds"),
    ("FMCP_WAIT_MAX", "wait_max_seconds"),
    ("FMCP_SHUTDOWN_GRACE", "shutdown_grace_seconds"),
]
INTEGER_VARS = [
    ("FMCP_SWEEP_BATCH", "sweep_batch_size"),
    ("FMCP_MAX_MESSAGE_BYTES", "max_message_bytes"),
    ("FMCP_WATCH_BUFFER", "watch_buffer_events"),
    ("FMCP_GC_YOUNG_THRESHOLD", "gc_young_threshold"),
]
ALL_VARS = [
    *(var for var, _ in ADDRESS_VARS + DURATION_VARS + INTEGER_VARS),
    "FMCP_DATA_DIR",
    "FMCP_DATABASE_URL",
    "FMCP_BROKER_URL",
    "FMCP_LOG_LEVEL",
    "FMCP_LOG_FORMAT",
]


def _error(environ: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ=environ)
    return info.value


# --------------------------------------------------------------------------- defaults


def test_empty_environment_gives_defaults() -> None:
    assert Settings.from_env(environ={}) == Settings()


def test_default_values() -> None:
    settings = Settings.from_env(environ={})
    assert (settings.grpc_listen, settings.http_listen, settings.envoy_listen) == (
        "127.0.0.1:50051",
        "127.0.0.1:8081",
        "127.0.0.1:8080",
    )
    assert (settings.data_dir, settings.database_url, settings.broker_url) == (
        Path("data"),
        "",
        "memory://",
    )
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_default_durations() -> None:
    settings = Settings.from_env(environ={})
    assert settings.operation_ttl_seconds == 7 * 86400
    assert settings.event_ttl_seconds == 7 * 86400
    assert settings.sweep_interval_seconds == 60
    assert settings.wait_max_seconds == 60
    assert settings.shutdown_grace_seconds == 10


def test_default_integers() -> None:
    settings = Settings.from_env(environ={})
    assert (
        settings.sweep_batch_size,
        settings.max_message_bytes,
        settings.watch_buffer_events,
    ) == (
        500,
        4 * 1024 * 1024,
        256,
    )


def test_empty_values_count_as_unset() -> None:
    assert Settings.from_env(environ=dict.fromkeys(ALL_VARS, "")) == Settings()


def test_unrelated_variables_are_ignored() -> None:
    environ = {"PATH": "/bin", "FMCP_UNKNOWN": "x", "fmcp_grpc_listen": "bad"}
    assert Settings.from_env(environ=environ) == Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.log_level = "DEBUG"  # type: ignore[misc]  # the point: frozen settings refuse it


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(("var", "attr"), ADDRESS_VARS)
@pytest.mark.parametrize("address", ["0.0.0.0:9000", "localhost:0", "[::1]:50051", "h:65535"])
def test_listen_address_is_read(var: str, attr: str, address: str) -> None:
    assert getattr(Settings.from_env(environ={var: address}), attr) == address


@pytest.mark.parametrize(("var", "_attr"), ADDRESS_VARS)
@pytest.mark.parametrize(
    "address", ["50051", ":50051", "localhost:", "localhost:http", "h:65536", "h:-1", "h:1.5"]
)
def test_invalid_listen_address_names_the_variable(var: str, _attr: str, address: str) -> None:
    assert f"{var}=" in str(_error({var: address}))


def test_listen_address_with_non_ascii_digit_port_is_settings_error() -> None:
    assert "FMCP_GRPC_LISTEN=" in str(_error({"FMCP_GRPC_LISTEN": "h:\u00b2"}))


# --------------------------------------------------------------------------- data dir and URLs


def test_data_dir_is_read(tmp_path: Path) -> None:
    assert Settings.from_env(environ={"FMCP_DATA_DIR": str(tmp_path)}).data_dir == tmp_path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///var/lib/fmcp/fmcp.db",
        "sqlite+aiosqlite:///:memory:",
        "postgresql+asyncpg://fmcp@db.internal/fmcp",
        "postgresql+asyncpg://fmcp:secret@127.0.0.1:5432/fmcp",
    ],
)
def test_database_url_is_read(url: str) -> None:
    assert Settings.from_env(environ={"FMCP_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url",
    ["sqlite:///fmcp.db", "postgresql://fmcp@db/fmcp", "mysql+aiomysql://x/y", "fmcp.db"],
)
def test_invalid_database_url_names_the_variable(url: str) -> None:
    assert "FMCP_DATABASE_URL=" in str(_error({"FMCP_DATABASE_URL": url}))


@pytest.mark.parametrize(
    "url", ["memory://", "amqp://guest:guest@127.0.0.1:5672/", "amqps://broker.internal/fmcp"]
)
def test_broker_url_is_read(url: str) -> None:
    assert Settings.from_env(environ={"FMCP_BROKER_URL": url}).broker_url == url


@pytest.mark.parametrize("url", ["redis://localhost", "amqp:/x", "memory", "http://broker"])
def test_invalid_broker_url_names_the_variable(url: str) -> None:
    assert "FMCP_BROKER_URL=" in str(_error({"FMCP_BROKER_URL": url}))


# --------------------------------------------------------------------------- effective URL


def test_effective_database_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/fmcp.db"


def test_effective_database_url_for_default_data_dir_is_absolute() -> None:
    url = Settings().effective_database_url
    prefix = "sqlite+aiosqlite:///"
    assert url.startswith(prefix)
    path = Path(url.removeprefix(prefix))
    assert path.is_absolute()
    assert path == (Path("data") / "fmcp.db").resolve()


def test_explicit_database_url_wins(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://fmcp@db/fmcp"
    settings = Settings.from_env(environ={"FMCP_DATABASE_URL": url, "FMCP_DATA_DIR": str(tmp_path)})
    assert settings.effective_database_url == url


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("250ms", 0.25),
        ("15m", 900.0),
        ("12h", 43_200.0),
        ("7d", 604_800.0),
        ("1.5h", 5_400.0),
        ("0.5s", 0.5),
        ("0", 0.0),
        (" 30s ", 30.0),
        ("30 s", 30.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration("FMCP_X", text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "abc", "-5s", "5 minutes", "5M", "5S", "1e3", "1,5s", "5w", ".5s", "5.s"]
)
def test_parse_duration_rejects_and_names_the_variable(text: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_duration("FMCP_X", text)
    assert str(info.value).startswith("FMCP_X=")


@pytest.mark.parametrize(("var", "attr"), DURATION_VARS)
@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("90s", 90.0), ("15m", 900.0), ("12h", 43_200.0)]
)
def test_duration_variable_is_read(var: str, attr: str, text: str, seconds: float) -> None:
    assert getattr(Settings.from_env(environ={var: text}), attr) == pytest.approx(seconds)


@pytest.mark.parametrize(("var", "_attr"), DURATION_VARS)
@pytest.mark.parametrize("text", ["soon", "-1s", "10 minutes"])
def test_invalid_duration_variable_names_it(var: str, _attr: str, text: str) -> None:
    assert str(_error({var: text})).startswith(f"{var}=")


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(("var", "attr"), INTEGER_VARS)
@pytest.mark.parametrize(("text", "value"), [("1", 1), ("1024", 1024), (" 7 ", 7)])
def test_integer_variable_is_read(var: str, attr: str, text: str, value: int) -> None:
    assert getattr(Settings.from_env(environ={var: text}), attr) == value


@pytest.mark.parametrize(("var", "_attr"), INTEGER_VARS)
@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "1k"])
def test_invalid_integer_variable_names_it(var: str, _attr: str, text: str) -> None:
    assert str(_error({var: text})).startswith(f"{var}=")


def test_non_positive_integer_message_says_greater_than_zero() -> None:
    assert "greater than 0" in str(_error({"FMCP_SWEEP_BATCH": "0"}))


# --------------------------------------------------------------------------- logging


@pytest.mark.parametrize(
    ("text", "level"),
    [("DEBUG", "DEBUG"), ("info", "INFO"), ("Warning", "WARNING"), ("error", "ERROR")],
)
def test_log_level_is_read_case_insensitively(text: str, level: str) -> None:
    assert Settings.from_env(environ={"FMCP_LOG_LEVEL": text}).log_level == level


@pytest.mark.parametrize("text", ["TRACE", "CRITICAL", "verbose", "10"])
def test_invalid_log_level_names_the_variable(text: str) -> None:
    assert str(_error({"FMCP_LOG_LEVEL": text})).startswith("FMCP_LOG_LEVEL=")


@pytest.mark.parametrize("text", ["json", "text"])
def test_log_format_is_read(text: str) -> None:
    assert Settings.from_env(environ={"FMCP_LOG_FORMAT": text}).log_format == text


@pytest.mark.parametrize("text", ["xml", "logfmt", "plain"])
def test_invalid_log_format_names_the_variable(text: str) -> None:
    assert str(_error({"FMCP_LOG_FORMAT": text})).startswith("FMCP_LOG_FORMAT=")


# --------------------------------------------------------------------------- together


def test_variables_combine() -> None:
    settings = Settings.from_env(
        environ={
            "FMCP_GRPC_LISTEN": "0.0.0.0:6000",
            "FMCP_BROKER_URL": "amqp://broker/",
            "FMCP_WAIT_MAX": "2m",
            "FMCP_WATCH_BUFFER": "64",
            "FMCP_LOG_LEVEL": "debug",
        }
    )
    assert settings == dataclasses.replace(
        Settings(),
        grpc_listen="0.0.0.0:6000",
        broker_url="amqp://broker/",
        wait_max_seconds=120.0,
        watch_buffer_events=64,
        log_level="DEBUG",
    )


def test_invalid_variable_is_reported_among_valid_ones() -> None:
    error = _error({"FMCP_GRPC_LISTEN": "0.0.0.0:6000", "FMCP_WAIT_MAX": "forever"})
    assert str(error).startswith("FMCP_WAIT_MAX=")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("FALSE", False)])
def test_unsafe_workloads_is_read(text: str, value: bool) -> None:
    assert Settings.from_env({"FMCP_UNSAFE_WORKLOADS": text}).unsafe_workloads is value


def test_workloads_are_isolated_by_default() -> None:
    assert Settings.from_env({}).unsafe_workloads is False


def test_invalid_unsafe_workloads_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="FMCP_UNSAFE_WORKLOADS='yes please'"):
        Settings.from_env({"FMCP_UNSAFE_WORKLOADS": "yes please"})


def test_workloads_of_a_root_process_run_as_nobody_by_default() -> None:
    expected = "nobody" if os.geteuid() == 0 else ""
    assert Settings.from_env({}).effective_run_as == expected


def test_run_as_wins_over_the_default() -> None:
    assert Settings.from_env({"FMCP_RUN_AS": "builder"}).effective_run_as == "builder"


def test_progress_heartbeat_is_read_and_defaults_to_5s() -> None:
    assert Settings.from_env({}).progress_heartbeat_seconds == 5.0
    assert Settings.from_env({"FMCP_PROGRESS_HEARTBEAT": "2s"}).progress_heartbeat_seconds == 2.0


def test_a_zero_progress_heartbeat_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="FMCP_PROGRESS_HEARTBEAT='0s'"):
        Settings.from_env({"FMCP_PROGRESS_HEARTBEAT": "0s"})


# --------------------------------------------------------------------------- trusted proxies


def test_no_proxy_is_trusted_by_default() -> None:
    settings = Settings.from_env(environ={})
    assert (settings.trusted_proxies, settings.proxy_secret) == ((), "")


def test_trusted_proxies_are_read_as_networks() -> None:
    settings = Settings.from_env(
        environ={"FMCP_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16,,2001:db8::/32"}
    )
    assert settings.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "2001:db8::/32")


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "*"])
def test_a_trusted_proxy_that_is_no_address_names_the_variable(entry: str) -> None:
    message = str(_error({"FMCP_TRUSTED_PROXIES": f"10.0.0.1,{entry}"}))
    assert "FMCP_TRUSTED_PROXIES" in message and repr(entry) in message


def test_the_proxy_secret_is_read_from_its_file(tmp_path: Path) -> None:
    secret = "a" * 16 + "b" * 16
    (tmp_path / "proxy-secret").write_text(secret + "\n")
    environ = {"FMCP_PROXY_SECRET_FILE": str(tmp_path / "proxy-secret")}
    assert Settings.from_env(environ=environ).proxy_secret == secret


@pytest.mark.parametrize("content", ["", "short-secret", "é" * 40, "x" * 20 + "\x00" * 20])
def test_a_proxy_secret_too_short_or_not_printable_ascii_names_the_variable(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / "proxy-secret").write_text(content)
    message = str(_error({"FMCP_PROXY_SECRET_FILE": str(tmp_path / "proxy-secret")}))
    assert "FMCP_PROXY_SECRET_FILE" in message and "at least 32" in message


def test_a_missing_proxy_secret_file_names_the_variable(tmp_path: Path) -> None:
    message = str(_error({"FMCP_PROXY_SECRET_FILE": str(tmp_path / "absent")}))
    assert "FMCP_PROXY_SECRET_FILE" in message and "cannot read" in message


def test_the_proxy_secret_is_never_printed_with_the_settings() -> None:
    secret = "s" * 40
    assert secret not in repr(Settings(proxy_secret=secret))


# --------------------------------------------------------------------------- OAuth


def test_oauth_lifetimes_default_to_5_minutes_and_60_seconds() -> None:
    settings = Settings.from_env(environ={})
    assert (settings.oauth_request_ttl_seconds, settings.oauth_code_ttl_seconds) == (300.0, 60.0)
    assert settings.oauth_client_networks == ()


def test_oauth_lifetimes_are_read() -> None:
    settings = Settings.from_env(
        environ={"FMCP_OAUTH_REQUEST_TTL": "2m", "FMCP_OAUTH_CODE_TTL": "30s"}
    )
    assert (settings.oauth_request_ttl_seconds, settings.oauth_code_ttl_seconds) == (120.0, 30.0)


@pytest.mark.parametrize(
    ("var", "text"),
    [
        ("FMCP_OAUTH_REQUEST_TTL", "6m"),
        ("FMCP_OAUTH_CODE_TTL", "11m"),
        ("FMCP_OAUTH_CODE_TTL", "0s"),
    ],
)
def test_oauth_lifetimes_out_of_bounds_name_the_variable(var: str, text: str) -> None:
    assert var in str(_error({var: text}))


def test_oauth_client_networks_are_read_as_networks() -> None:
    settings = Settings.from_env(environ={"FMCP_OAUTH_CLIENT_NETWORKS": "10.0.0.0/8, 192.168.1.5"})
    assert settings.oauth_client_networks == ("10.0.0.0/8", "192.168.1.5/32")
    message = str(_error({"FMCP_OAUTH_CLIENT_NETWORKS": "intranet"}))
    assert "FMCP_OAUTH_CLIENT_NETWORKS" in message and "'intranet'" in message


def test_route_urls_default_to_envoys_address_and_the_public_url_is_read() -> None:
    default = Settings.from_env(environ={"FMCP_ENVOY_LISTEN": "127.0.0.1:9000"})
    given = Settings.from_env(environ={"FMCP_PUBLIC_URL": "https://fmcp.example.com/"})
    assert default.effective_public_url == "http://127.0.0.1:9000"
    assert given.effective_public_url == "https://fmcp.example.com"
    assert "FMCP_PUBLIC_URL" in str(_error({"FMCP_PUBLIC_URL": "fmcp.example.com"}))


def test_the_route_sync_interval_is_read_and_bounded() -> None:
    assert Settings.from_env(environ={}).route_sync_seconds == 0.5
    assert Settings.from_env(environ={"FMCP_ROUTE_SYNC": "250ms"}).route_sync_seconds == 0.25
    for text in ("0s", "2m"):
        assert "FMCP_ROUTE_SYNC" in str(_error({"FMCP_ROUTE_SYNC": text}))
