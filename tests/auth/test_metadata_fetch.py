"""Fetching Client ID Metadata Documents without opening the server's network to whoever
names a URL: public addresses only (unless allowed), pinned to the checked address, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.oauth.document_server import document_server

from formation_mcp.auth.metadata_fetch import (
    MAX_DOCUMENT_BYTES,
    ClientMetadataFetcher,
    FetchError,
    check_document_url,
    max_age,
)


def resolving_to(*addresses: str) -> ClientMetadataFetcher:
    async def resolve(_host: str, _port: int) -> list[str]:
        return list(addresses)

    return ClientMetadataFetcher(resolver=resolve)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ],
)
async def test_a_host_on_a_private_address_is_not_fetched(address: str) -> None:
    with pytest.raises(FetchError, match="not a public address"):
        await resolving_to("93.184.215.14", address).fetch("https://host.example/client.json")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://host.example/client.json", "https"),
        ("https://host.example/", "has a path"),
        ("https://host.example", "has a path"),
        ("https://user@host.example/c.json", "no user name"),
        ("https://host.example/c.json#x", "fragment"),
        ("https://host.example/" + "a" * 600, "at most 512"),
    ],
)
def test_only_https_urls_with_a_path_name_documents(url: str, why: str) -> None:
    with pytest.raises(FetchError, match=why):
        check_document_url(url)


def test_the_cache_time_is_the_documents_own_within_bounds() -> None:
    assert max_age("public, max-age=7200") == 7200
    assert max_age("max-age=10") == 300
    assert max_age("max-age=999999") == 86400
    assert max_age("no-store") == 3600


async def test_a_document_from_an_allowed_network_is_fetched(tmp_path: Path) -> None:
    async with document_server(tmp_path) as server:
        server.documents["/c.json"] = {"client_id": f"{server.base}/c.json"}
        fetcher = ClientMetadataFetcher(
            allowed_networks=("127.0.0.0/8", "::1/128"), ssl_context=server.trust
        )
        fetched = await fetcher.fetch(f"{server.base}/c.json")
    assert fetched.body == {"client_id": f"{server.base}/c.json"}
    assert fetched.max_age_seconds == 600


async def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    """The request goes to the checked address, but TLS still checks the host's name."""
    async with document_server(tmp_path) as server:
        port = server.base.rsplit(":", 1)[1]

        async def resolve(_host: str, _port: int) -> list[str]:
            return ["127.0.0.1"]

        fetcher = ClientMetadataFetcher(
            allowed_networks=("127.0.0.0/8",), ssl_context=server.trust, resolver=resolve
        )
        with pytest.raises(FetchError, match="could not be fetched"):
            await fetcher.fetch(f"https://other.example:{port}/c.json")


async def test_a_large_or_missing_document_is_refused(tmp_path: Path) -> None:
    async with document_server(tmp_path) as server:
        server.documents["/big.json"] = {"x": "y" * MAX_DOCUMENT_BYTES}
        fetcher = ClientMetadataFetcher(
            allowed_networks=("127.0.0.0/8", "::1/128"), ssl_context=server.trust
        )
        with pytest.raises(FetchError, match="over"):
            await fetcher.fetch(f"{server.base}/big.json")
        with pytest.raises(FetchError, match="HTTP 404"):
            await fetcher.fetch(f"{server.base}/missing.json")
