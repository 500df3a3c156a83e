"""Client metadata as registered (RFC 7591) or published (Client ID Metadata Documents)."""

from __future__ import annotations

from typing import Any

import pytest

from formation_mcp.auth.client_metadata import (
    ClientMetadata,
    ClientMetadataError,
    parse_client_metadata,
)

CALLBACK = "http://127.0.0.1:33418/callback"


def test_a_minimal_registration_is_a_public_client_with_refresh_tokens() -> None:
    metadata = parse_client_metadata({"redirect_uris": [CALLBACK]})
    assert metadata == ClientMetadata(client_name="unnamed client", redirect_uris=(CALLBACK,))
    assert metadata.grant_types == ("authorization_code", "refresh_token")
    assert ClientMetadata.from_json(metadata.to_json()) == metadata


@pytest.mark.parametrize(
    ("body", "code", "why"),
    [
        ({}, "invalid_redirect_uri", "redirect_uris is required"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri", "loopback"),
        ({"redirect_uris": [CALLBACK] * 11}, "invalid_redirect_uri", "at most 10"),
        (
            {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            {"redirect_uris": [CALLBACK], "grant_types": ["client_credentials"]},
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            {"redirect_uris": [CALLBACK], "response_types": ["token"]},
            "invalid_client_metadata",
            "response_types",
        ),
        ({"redirect_uris": [CALLBACK], "scope": "admin"}, "invalid_client_metadata", "scope"),
        (
            {"redirect_uris": [CALLBACK], "client_name": "x\u0000y"},
            "invalid_client_metadata",
            "client_name",
        ),
        (
            {"redirect_uris": [CALLBACK], "client_uri": "http://a.b"},
            "invalid_client_metadata",
            "https",
        ),
        ([CALLBACK], "invalid_client_metadata", "JSON object"),
    ],
)
def test_bad_metadata_is_refused_with_the_rfc_error(body: Any, code: str, why: str) -> None:
    with pytest.raises(ClientMetadataError, match=why) as raised:
        parse_client_metadata(body)
    assert raised.value.code == code


def test_a_metadata_document_must_name_its_own_url_and_use_no_secret() -> None:
    url = "https://host.example/client.json"
    good = {"client_id": url, "client_name": "Host", "redirect_uris": [CALLBACK]}
    assert parse_client_metadata(good, document_url=url).client_name == "Host"
    with pytest.raises(ClientMetadataError, match="client_id must be the URL"):
        parse_client_metadata(good | {"client_id": url + "?x"}, document_url=url)
    with pytest.raises(ClientMetadataError, match="uses token_endpoint_auth_method none"):
        parse_client_metadata(
            good | {"token_endpoint_auth_method": "client_secret_post"}, document_url=url
        )
