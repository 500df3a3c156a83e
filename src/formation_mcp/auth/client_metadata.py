"""OAuth client metadata: what a client registers (RFC 7591) or publishes at its client_id URL
(Client ID Metadata Documents), checked into the few fields the authorization server uses.

Unknown fields are ignored (both documents are extensible); fields we use are checked strictly.
A client's name is its own claim: the sign-in page and `fmcp authorize` show it together with
the client id and where the code will be sent, which are what can be relied on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from formation_mcp.auth.oauth_rules import RuleError, check_redirect_uri, parse_scope

AUTH_NONE = "none"
AUTH_METHODS = (AUTH_NONE, "client_secret_post", "client_secret_basic")
SECRET_METHODS = AUTH_METHODS[1:]
AUTHORIZATION_CODE, REFRESH_TOKEN = "authorization_code", "refresh_token"
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN)
MAX_REDIRECT_URIS = 10
MAX_TEXT_CHARS = 100
DEFAULT_CLIENT_NAME = "unnamed client"


class ClientMetadataError(ValueError):
    """RFC 7591 §3.2.2: `code` is invalid_redirect_uri or invalid_client_metadata."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    client_name: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str = AUTH_NONE
    grant_types: tuple[str, ...] = GRANT_TYPES
    client_uri: str = ""
    scope: str = ""
    software_id: str = ""
    software_version: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ClientMetadata:
        data = json.loads(text)
        data["redirect_uris"] = tuple(data["redirect_uris"])
        data["grant_types"] = tuple(data["grant_types"])
        return cls(**data)

    def registration_response(self) -> dict[str, Any]:
        """The metadata as RFC 7591 §3.2.1 echoes it (empty fields left out)."""
        document: dict[str, Any] = {
            "client_name": self.client_name,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(self.grant_types),
            "response_types": ["code"],
        }
        for name in ("client_uri", "scope", "software_id", "software_version"):
            if value := getattr(self, name):
                document[name] = value
        return document


def _invalid(description: str) -> ClientMetadataError:
    return ClientMetadataError("invalid_client_metadata", description)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        return ""
    if (
        not isinstance(value, str)
        or len(value) > MAX_TEXT_CHARS
        or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value)
    ):
        raise _invalid(f"{name} must be text of at most {MAX_TEXT_CHARS} characters")
    return value


def _strings(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{name} must be a list of strings")
    return list(value)


def _redirect_uris(body: dict[str, Any]) -> tuple[str, ...]:
    uris = _strings(body, "redirect_uris")
    if not uris:
        raise ClientMetadataError("invalid_redirect_uri", "redirect_uris is required")
    if len(uris) > MAX_REDIRECT_URIS:
        raise ClientMetadataError(
            "invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect_uris"
        )
    try:
        return tuple(dict.fromkeys(check_redirect_uri(uri) for uri in uris))
    except RuleError as error:
        raise ClientMetadataError("invalid_redirect_uri", str(error)) from None


def _client_uri(body: dict[str, Any]) -> str:
    value = body.get("client_uri")
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("https://") or len(value) > 2000:
        raise _invalid("client_uri must be an https URL")
    try:
        check_redirect_uri(value)  # the same shape: absolute, no spaces, no fragment
    except RuleError:
        raise _invalid("client_uri must be an https URL without spaces or fragment") from None
    return value


def parse_client_metadata(body: object, *, document_url: str | None = None) -> ClientMetadata:
    """Checked metadata from a registration request, or (with `document_url`) from the
    Client ID Metadata Document fetched there. A document's client is public: it names
    itself by URL and has no secret (`token_endpoint_auth_method` none)."""
    if not isinstance(body, dict):
        raise _invalid("client metadata must be a JSON object")
    if document_url is not None and body.get("client_id") != document_url:
        raise _invalid("the document's client_id must be the URL it was fetched from, exactly")
    redirect_uris = _redirect_uris(body)
    method = body.get("token_endpoint_auth_method") or AUTH_NONE
    if method not in AUTH_METHODS:
        raise _invalid(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    if document_url is not None and method != AUTH_NONE:
        raise _invalid(
            "a client identified by a metadata document uses token_endpoint_auth_method none"
        )
    grant_types = _strings(body, "grant_types") or list(GRANT_TYPES)
    if AUTHORIZATION_CODE not in grant_types or not set(grant_types) <= set(GRANT_TYPES):
        raise _invalid("grant_types must include authorization_code; refresh_token is the other")
    response_types = _strings(body, "response_types") or ["code"]
    if response_types != ["code"]:
        raise _invalid('response_types must be ["code"]')
    scope = _text(body, "scope")
    try:
        parse_scope(scope)
    except RuleError as error:
        raise _invalid(str(error)) from None
    return ClientMetadata(
        client_name=_text(body, "client_name") or DEFAULT_CLIENT_NAME,
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=tuple(g for g in GRANT_TYPES if g in grant_types),
        client_uri=_client_uri(body),
        scope=scope,
        software_id=_text(body, "software_id"),
        software_version=_text(body, "software_version"),
    )
