"""Which front doors are believed when they say who the client is.

`x-forwarded-for` (and, on the HTTP side, `x-forwarded-proto`) is anyone's to write, so it is
honoured only on a request from a trusted proxy:

- one that carries the proxy secret in `x-fmcp-proxy-secret`: the Envoy that `fmcp serve
  --envoy` starts gets a random secret of the server's (`FMCP_PROXY_SECRET_FILE` names one for
  an Envoy run on its own) and writes it on every request, overwriting whatever the client
  sent; or
- one whose direct peer address is in `FMCP_TRUSTED_PROXIES` (networks of proxies).

From any other peer, loopback included, those headers are ignored and the peer address is the
client's. Behind a trusted proxy the client is the right-most `x-forwarded-for` entry that is
not itself a trusted proxy (each proxy appends the address it saw; what is left of it is the
client's own claim).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROXY_SECRET_HEADER = "x-fmcp-proxy-secret"
FORWARDED_FOR_HEADER = "x-forwarded-for"
FORWARDED_PROTO_HEADER = "x-forwarded-proto"
BRIDGE_SECRET_HEADER = "x-fmcp-bridge-secret"
BRIDGE_AUDIENCE_HEADER = "x-fmcp-bridge-audience"
"""The MCP endpoint calls the gRPC API of its own process with the token an MCP host presented,
whose audience is the MCP endpoint, not the API: these two headers (a secret of the process,
never sent anywhere else, and the audience it verified) let the API accept that token for that
call only. Envoy drops any copy a client sends."""
PROXY_SECRET_ENV = "FMCP_PROXY_SECRET"
"""The variable Envoy reads the secret from (`%ENVIRONMENT(FMCP_PROXY_SECRET)%` in envoy.yaml)."""
MIN_SECRET_CHARS = 32
MAX_FORWARDED_HOPS = 16
"""x-forwarded-for entries looked at, from the right: more proxies than this is not a chain."""


def parse_address(text: str) -> IPAddress | None:
    """An IP address as proxies write it (`10.0.0.1`, `2001:db8::1`, `[2001:db8::1]`); an
    IPv4-mapped IPv6 address is its IPv4 address. None when it is not an address."""
    text = text.strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> IPNetwork:
    """A network (`10.0.0.0/8`) or one address (`10.0.0.5`); ValueError otherwise."""
    return ipaddress.ip_network(text.strip(), strict=False)


class ProxyTrust:
    """The proxies this server believes: a shared secret and networks of direct peers."""

    def __init__(self, networks: Iterable[str] = (), secret: str = "") -> None:
        self._networks = tuple(parse_network(network) for network in networks)
        if secret and len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"a proxy secret has at least {MIN_SECRET_CHARS} characters")
        self._secret = secret.encode()

    def __repr__(self) -> str:  # never the secret
        networks = ", ".join(str(network) for network in self._networks)
        return f"ProxyTrust(networks=[{networks}], secret={'set' if self._secret else 'none'})"

    def _in_networks(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self._networks)

    def trusts(self, peer: str, secrets_sent: Sequence[str]) -> bool:
        """Whether a request from the direct peer `peer`, carrying these values of the secret
        header, comes from a trusted proxy. The secret must be sent once, exactly."""
        sent_once = len(secrets_sent) == 1
        if (
            self._secret
            and sent_once
            and hmac.compare_digest(secrets_sent[0].encode(), self._secret)
        ):
            return True
        return self._in_networks(parse_address(peer))

    def client_address(
        self, peer: str, forwarded_for: Sequence[str], secrets_sent: Sequence[str]
    ) -> str:
        """The client's address: the direct peer's, or, from a trusted proxy, the right-most
        x-forwarded-for entry that is not a trusted proxy (an entry that is not an address
        ends the walk at the last good one)."""
        peer_address = parse_address(peer)
        found = str(peer_address) if peer_address is not None else peer
        if not forwarded_for or not self.trusts(peer, secrets_sent):
            return found
        entries = ",".join(forwarded_for).split(",")
        for entry in reversed(entries[-MAX_FORWARDED_HOPS:]):
            address = parse_address(entry)
            if address is None:
                break
            found = str(address)
            if not self._in_networks(address):
                break
        return found
