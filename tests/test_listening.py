"""Listening is exclusive, and a taken address is named by its setting."""

from __future__ import annotations

import socket

import pytest

from formation_mcp.listening import ListenError, check_free


def test_a_free_address_passes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    check_free("FMCP_GRPC_LISTEN", f"127.0.0.1:{port}")


def test_port_zero_always_passes() -> None:
    check_free("FMCP_GRPC_LISTEN", "127.0.0.1:0")


def test_a_taken_address_names_the_setting_and_the_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ListenError) as caught:
            check_free("FMCP_HTTP_LISTEN", address)
    assert str(caught.value).startswith(f"FMCP_HTTP_LISTEN={address}: the address is in use")
    assert "set FMCP_HTTP_LISTEN to a free host:port" in str(caught.value)


def test_a_listener_that_shares_its_port_is_found_too() -> None:
    """Envoy listens with SO_REUSEPORT by default: another such listener would share it."""
    with socket.create_server(("127.0.0.1", 0), reuse_port=True) as shared:
        address = f"127.0.0.1:{shared.getsockname()[1]}"
        with pytest.raises(ListenError, match="in use"):
            check_free("FMCP_ENVOY_LISTEN", address)


def test_an_address_of_another_machine_is_refused_clearly() -> None:
    with pytest.raises(ListenError, match="not one of this machine's"):
        check_free("FMCP_GRPC_LISTEN", "192.0.2.1:50051")
