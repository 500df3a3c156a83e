"""Reading OAuth requests strictly: a parameter given twice is an error (RFC 6749 §3.1, §3.2),
bodies are bounded, and client credentials come from one place only."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request

from formation_mcp.auth.oauth_errors import OAuthError, invalid_client, invalid_request

MAX_BODY_BYTES = 64 * 1024
MAX_VALUE_CHARS = 4096


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """name -> value; OAuthError(invalid_request) for a repeated or overlong parameter."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise invalid_request(f"the parameter {name[:40]} is given more than once")
        if len(value) > MAX_VALUE_CHARS:
            raise invalid_request(f"the parameter {name[:40]} is too long")
        values[name] = value
    return values


def query_values(request: Request) -> dict[str, str]:
    return single_values(request.query_params.multi_items())


async def form_values(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (RFC 6749 §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid_request("send the parameters as application/x-www-form-urlencoded")
    body = await read_body(request)
    try:
        text = body.decode()
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("the body is not a valid form") from None
    return single_values(pairs)


async def read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise OAuthError("invalid_request", "the request body is too large", 413)
    return bytes(body)


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str | None, str]:
    """(client_id, secret, method) from HTTP Basic (client_secret_basic), the form
    (client_secret_post) or the client_id alone (none); never two of them at once."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise invalid_client("client authentication is HTTP Basic, or none")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client("the Basic credentials are not valid base64") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise invalid_client("the Basic credentials are client_id:client_secret")
        client_id, secret = unquote(client_id), unquote(secret)
        if "client_secret" in form or form.get("client_id", client_id) != client_id:
            raise invalid_request("send the client's credentials in one way only")
        return client_id, secret, "client_secret_basic"
    if "client_secret" in form:
        return form.get("client_id", ""), form["client_secret"], "client_secret_post"
    return form.get("client_id", ""), None, "none"
