"""Which front doors are believed about the client's address (pure logic; the servers' side is
in tests/auth/test_forwarded_addresses.py, Envoy's in tests/envoy/test_client_address.py)."""

from __future__ import annotations

import pytest

from formation_mcp.proxies import ProxyTrust, parse_address

SECRET = "k" * 43


def test_a_direct_client_is_its_peer_whatever_it_forwards() -> None:
    assert ProxyTrust(secret=SECRET).client_address("127.0.0.1", ["6.6.6.6"], []) == "127.0.0.1"


def test_loopback_is_not_trusted_unless_configured() -> None:
    trust = ProxyTrust(["10.0.0.0/8"], SECRET)
    assert not trust.trusts("127.0.0.1", [])
    assert not trust.trusts("::1", [])


def test_with_the_secret_the_address_the_proxy_appended_counts() -> None:
    trust = ProxyTrust(secret=SECRET)
    assert trust.client_address("127.0.0.1", ["6.6.6.6, 10.9.8.7"], [SECRET]) == "10.9.8.7"


@pytest.mark.parametrize(
    "sent",
    [["not-the-secret"], [SECRET[:-1]], [SECRET, SECRET], ["attacker", SECRET], []],
    ids=["wrong", "prefix", "twice", "one-of-two", "none"],
)
def test_without_exactly_the_secret_forwarding_is_ignored(sent: list[str]) -> None:
    trust = ProxyTrust(secret=SECRET)
    assert trust.client_address("127.0.0.1", ["6.6.6.6"], sent) == "127.0.0.1"


def test_a_server_without_a_secret_trusts_no_secret_header() -> None:
    assert ProxyTrust().client_address("127.0.0.1", ["6.6.6.6"], [""]) == "127.0.0.1"


def test_a_peer_in_a_trusted_network_is_believed() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    assert trust.client_address("10.0.0.5", ["203.0.113.7"], []) == "203.0.113.7"


def test_trusted_proxies_in_the_chain_are_skipped_up_to_the_client() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    forwarded = ["6.6.6.6, 203.0.113.7", "10.0.0.9"]  # claim, client, inner proxy
    assert trust.client_address("10.0.0.5", forwarded, []) == "203.0.113.7"


def test_an_entry_that_is_no_address_ends_the_walk_at_the_last_good_one() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    assert trust.client_address("10.0.0.5", ["6.6.6.6, unknown, 10.0.0.9"], []) == "10.0.0.9"
    assert trust.client_address("10.0.0.5", ["garbage"], []) == "10.0.0.5"


def test_a_chain_of_trusted_proxies_only_gives_its_left_end() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    assert trust.client_address("10.0.0.5", ["10.0.0.7,10.0.0.8"], []) == "10.0.0.7"


def test_a_trusted_proxy_without_forwarding_is_the_client() -> None:
    assert ProxyTrust(["10.0.0.0/8"]).client_address("10.0.0.5", [], []) == "10.0.0.5"


def test_ipv6_and_mapped_ipv4_addresses_are_normalised() -> None:
    trust = ProxyTrust(["127.0.0.1/32"])
    assert trust.client_address("::ffff:127.0.0.1", ["[2001:DB8:0::1]"], []) == "2001:db8::1"
    assert parse_address("::ffff:10.1.2.3") == parse_address("10.1.2.3")


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ProxyTrust(secret="short")


def test_the_secret_is_not_in_the_repr() -> None:
    assert SECRET not in repr(ProxyTrust(["10.0.0.0/8"], SECRET))
