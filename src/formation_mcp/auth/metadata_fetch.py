"""Fetching a Client ID Metadata Document: the JSON an MCP host publishes at the https URL it
uses as its client_id.

The URL comes from anyone who opens an authorization request, so fetching it must not become a
way to reach what the server can reach and the requester cannot (SSRF): the host is resolved
first and every address must be a public one (or in networks the operator allows), the request
goes to the address that was checked (TLS still verifies the certificate for the host name, and
the Host header names it), no redirects are followed, and the answer is bounded in time and size.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

MAX_DOCUMENT_BYTES = 10 * 1024
MAX_CLIENT_ID_CHARS = 512
TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_AGE_SECONDS = 3600.0
MIN_MAX_AGE_SECONDS = 300.0
MAX_MAX_AGE_SECONDS = 86400.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)

Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchError(Exception):
    """Why the document could not be had; the message is safe to show the requester."""


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    body: object
    max_age_seconds: float


def is_document_client_id(client_id: str) -> bool:
    """Whether a client_id names a metadata document: an https URL with a path (a registered
    client's id never has that shape)."""
    return client_id.startswith("https://")


def check_document_url(url: str) -> tuple[str, int]:
    """The host and port of a client_id URL; FetchError when it cannot be one."""
    if len(url) > MAX_CLIENT_ID_CHARS or any(ch.isspace() for ch in url):
        raise FetchError(f"a client_id URL is at most {MAX_CLIENT_ID_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError("a client_id URL must be an https URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise FetchError("a client_id URL has no user name, password or fragment")
    if parts.path in ("", "/") or "/./" in parts.path or "/../" in parts.path:
        raise FetchError("a client_id URL has a path (and no . or .. segments)")
    try:
        port = parts.port or 443
    except ValueError:
        raise FetchError("a client_id URL has a bad port") from None
    return parts.hostname, port


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def max_age(cache_control: str) -> float:
    """How long to keep a document: its Cache-Control max-age, within 5 minutes and a day."""
    match = _MAX_AGE.search(cache_control)
    seconds = float(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS
    return min(max(seconds, MIN_MAX_AGE_SECONDS), MAX_MAX_AGE_SECONDS)


class ClientMetadataFetcher:
    """`allowed_networks`: private networks documents may be fetched from too (none by
    default); `ssl_context`: the CAs to trust (the system's by default)."""

    def __init__(
        self,
        *,
        allowed_networks: tuple[str, ...] = (),
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self._ssl = ssl_context or ssl.create_default_context()
        self._resolve = resolver
        self._timeout = timeout_seconds

    def _allowed(self, text: str) -> bool:
        address = ipaddress.ip_address(text.partition("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self._networks):
            return True
        return address.is_global and not address.is_multicast

    async def _addresses(self, host: str, port: int) -> list[str]:
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), self._timeout)
        except (OSError, TimeoutError):
            raise FetchError(f"the client_id host {host} could not be resolved") from None
        if not addresses:
            raise FetchError(f"the client_id host {host} has no address")
        if not all(self._allowed(address) for address in addresses):
            raise FetchError(f"the client_id host {host} is not a public address")
        return addresses

    async def fetch(self, url: str) -> FetchedDocument:
        """The document at `url`, from the first of the host's (checked) addresses that
        answers."""
        host, port = check_document_url(url)
        addresses = await self._addresses(host, port)
        for address in addresses[:-1]:
            try:
                return await self._fetch_from(url, host, port, address)
            except FetchError as error:
                if not isinstance(error.__cause__, httpx.ConnectError):
                    raise
        return await self._fetch_from(url, host, port, addresses[-1])

    async def _fetch_from(self, url: str, host: str, port: int, address: str) -> FetchedDocument:
        parts = urlsplit(url)
        literal = f"[{address}]" if ":" in address else address
        pinned = urlunsplit(("https", f"{literal}:{port}", parts.path, parts.query, ""))
        try:
            async with (
                httpx.AsyncClient(
                    verify=self._ssl, timeout=self._timeout, follow_redirects=False
                ) as http,
                http.stream(
                    "GET",
                    pinned,
                    headers={"host": parts.netloc, "accept": "application/json"},
                    extensions={"sni_hostname": host},
                ) as response,
            ):
                if response.status_code != 200:
                    raise FetchError(
                        f"fetching the client_id URL answered HTTP {response.status_code}"
                    )
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_DOCUMENT_BYTES:
                        raise FetchError(
                            f"the client metadata document is over {MAX_DOCUMENT_BYTES} bytes"
                        )
                cache_control = response.headers.get("cache-control", "")
        except httpx.HTTPError as error:
            raise FetchError(f"the client_id URL could not be fetched: {error}") from error
        try:
            body = json.loads(bytes(content))
        except ValueError:
            raise FetchError("the client metadata document is not JSON") from None
        return FetchedDocument(body, max_age(cache_control))
