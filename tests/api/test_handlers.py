"""Who the client is, behind our Envoy or not (the address login rate limits key on)."""

from __future__ import annotations

from typing import Any

import pytest

from formation_mcp.api.handlers import client_address


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
    return client_address(context)


@pytest.mark.parametrize(
    ("peer", "expected"),
    [("ipv4:10.1.2.3:5555", "10.1.2.3"), ("ipv6:[2001:db8::1]:5555", "2001:db8::1")],
)
def test_a_direct_client_is_its_peer_address(peer: str, expected: str) -> None:
    assert address(peer) == expected


def test_behind_our_envoy_the_address_envoy_appended_counts() -> None:
    forwarded = ("x-forwarded-for", "6.6.6.6, 10.9.8.7")
    assert address("ipv4:127.0.0.1:40000", forwarded) == "10.9.8.7"


def test_a_remote_client_cannot_claim_another_address() -> None:
    assert address("ipv4:10.1.2.3:5555", ("x-forwarded-for", "6.6.6.6")) == "10.1.2.3"


def test_loopback_without_forwarding_is_loopback() -> None:
    assert address("ipv4:127.0.0.1:40000") == "127.0.0.1"
