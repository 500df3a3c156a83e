"""The authorization server's rules as pure functions: scopes, redirect URIs, PKCE, resource
indicators and user codes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from formation_mcp.auth.oauth_rules import (
    RuleError,
    canonical_resource,
    check_code_challenge,
    check_redirect_uri,
    display_user_code,
    narrower_scope,
    new_user_code,
    normalize_user_code,
    parse_scope,
    pkce_matches,
    redirect_uri_matches,
)


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("", "full"),
        ("full", "full"),
        ("read-only", "read-only"),
        ("full read-only", "full"),
        ("read-only offline_access", "read-only"),
    ],
)
def test_the_scope_asked_for(text: str, scope: str) -> None:
    assert parse_scope(text) == scope


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(RuleError, match="unknown scope 'admin'"):
        parse_scope("full admin")


def test_the_approver_may_narrow_the_scope_but_never_widen_it() -> None:
    assert narrower_scope("full", "read-only") == "read-only"
    assert narrower_scope("full", "full") == "full"
    with pytest.raises(RuleError, match="cannot be granted more"):
        narrower_scope("read-only", "full")


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "http://127.0.0.1:33418/callback",
        "http://localhost:6274/oauth/callback",
        "http://[::1]:8080/cb",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        "https://app.example.com/cb?tenant=1",
    ],
)
def test_redirect_uris_a_client_may_register(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://app.example.com/cb", "loopback"),
        ("https://app.example.com/cb#frag", "fragment"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/html,hi", "data"),
        ("/relative/cb", "absolute"),
        ("https://user:pw@app.example.com/cb", "no user"),
        ("https://app.example.com/c b", "without spaces"),
        ("HTTPS://app.example.com/cb", "lower-case"),
    ],
)
def test_redirect_uris_a_client_may_not_register(uri: str, why: str) -> None:
    with pytest.raises(RuleError, match=why):
        check_redirect_uri(uri)


def test_redirect_uris_match_exactly() -> None:
    registered = "https://app.example.com/cb"
    assert redirect_uri_matches(registered, registered)
    for other in (
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb?x=1",
    ):
        assert not redirect_uri_matches(registered, other)


def test_a_loopback_redirect_uri_matches_on_any_port_only() -> None:
    registered = "http://127.0.0.1:33418/callback"
    assert redirect_uri_matches(registered, "http://127.0.0.1:51000/callback")
    assert redirect_uri_matches("http://localhost/cb", "http://localhost:7000/cb")
    assert not redirect_uri_matches(registered, "http://127.0.0.1:51000/other")
    assert not redirect_uri_matches(registered, "http://localhost:33418/callback")
    assert not redirect_uri_matches(registered, "https://127.0.0.1:33418/callback")


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()[:43]


def test_pkce_s256() -> None:
    verifier = "v" * 43
    challenge = check_code_challenge(_challenge(verifier), "S256")
    assert pkce_matches(verifier, challenge)
    assert not pkce_matches("w" * 43, challenge)
    assert not pkce_matches("v" * 42, _challenge("v" * 42))  # verifiers are 43 to 128 chars


@pytest.mark.parametrize(
    ("challenge", "method"), [("a" * 43, "plain"), ("a" * 43, ""), ("a" * 42, "S256")]
)
def test_pkce_other_than_s256_is_refused(challenge: str, method: str) -> None:
    with pytest.raises(RuleError):
        check_code_challenge(challenge, method)


def test_resources_compare_in_canonical_form() -> None:
    assert canonical_resource("HTTP://Host.Example:8080/mcp/") == "http://host.example:8080/mcp"
    with pytest.raises(RuleError):
        canonical_resource("https://host.example/mcp#frag")
    with pytest.raises(RuleError):
        canonical_resource("urn:mcp")


def test_user_codes_are_typed_as_shown_in_any_case() -> None:
    code = new_user_code()
    shown = display_user_code(code)
    assert len(code) == 8 and shown == f"{code[:4]}-{code[4:]}"
    assert normalize_user_code(shown.lower()) == code
    assert normalize_user_code(f" {code[:4]} {code[4:]} ") == code
    with pytest.raises(RuleError, match="not an authorization code"):
        normalize_user_code("ABCD-EFGH")  # vowels are never in a code
