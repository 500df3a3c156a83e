"""Who the gRPC caller is (the address login rate limits key on): peer strings, metadata."""

from __future__ import annotations

from typing import Any

import pytest

from formation_mcp.api.peers import client_address, peer_host
from formation_mcp.proxies import ProxyTrust

SECRET = "p" * 40


class FakeContext:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer = peer
        self._metadata = metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def address(peer: str, *metadata: tuple[str, str]) -> str:
    context: Any = FakeContext(peer, metadata)
    return client_address(context, ProxyTrust(secret=SECRET))


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:10.1.2.3:5555", "10.1.2.3"),
        ("ipv6:[2001:db8::1]:5555", "2001:db8::1"),
        ("ipv6:%5B2001:db8::1%5D:5555", "2001:db8::1"),
        ("unix:/run/fmcp.sock", "unix:/run/fmcp.sock"),
    ],
)
def test_the_host_of_a_peer_string(peer: str, expected: str) -> None:
    assert peer_host(peer) == expected


def test_a_loopback_client_cannot_claim_another_address() -> None:
    assert address("ipv4:127.0.0.1:40000", ("x-forwarded-for", "6.6.6.6")) == "127.0.0.1"


def test_with_the_proxy_secret_the_forwarded_address_counts() -> None:
    forwarded = ("x-forwarded-for", "6.6.6.6, 10.9.8.7")
    assert address("ipv4:127.0.0.1:40000", forwarded, ("x-fmcp-proxy-secret", SECRET)) == (
        "10.9.8.7"
    )


def test_the_secret_sent_twice_is_not_believed() -> None:
    secret = ("x-fmcp-proxy-secret", SECRET)
    forwarded = ("x-forwarded-for", "6.6.6.6")
    assert address("ipv4:127.0.0.1:40000", forwarded, secret, secret) == "127.0.0.1"


def test_every_x_forwarded_for_value_is_read_in_order() -> None:
    secret = ("x-fmcp-proxy-secret", SECRET)
    first, last = ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "10.9.8.7")
    assert address("ipv4:127.0.0.1:40000", first, last, secret) == "10.9.8.7"
