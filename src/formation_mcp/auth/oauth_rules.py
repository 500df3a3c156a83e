"""The OAuth 2.1 rules our authorization server applies, as pure functions: scopes, redirect
URIs (exact match, any port on loopback, RFC 8252 §7.3), PKCE with S256 only (RFC 7636),
resource indicators (RFC 8707), and the short user codes a person types into `fmcp authorize`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit, urlunsplit

from formation_mcp.auth.keys import b64url
from formation_mcp.permissions import FULL_SCOPE, READ_ONLY_SCOPE

OFFLINE_ACCESS = "offline_access"
"""Asked for by some hosts to get refresh tokens, which every grant has: accepted, ignored."""
SCOPES_SUPPORTED = (FULL_SCOPE, READ_ONLY_SCOPE)
MAX_URI_CHARS = 2000
MAX_STATE_CHARS = 1024
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")
FORBIDDEN_SCHEMES = ("javascript", "data", "file", "vbscript", "about", "blob", "filesystem")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
"""Consonants only: no vowels (no words), none that look like digits; 20^8 = 2.6e10 codes."""
USER_CODE_LENGTH = 8


class RuleError(ValueError):
    """What is wrong, in words for the person or program that sent it."""


def parse_scope(text: str) -> str:
    """The grant scope a `scope` parameter asks for: `full` when it names `full` (or nothing),
    `read-only` when it names only that; RuleError for a scope we do not have."""
    names = text.split()
    unknown = [n for n in names if n not in (*SCOPES_SUPPORTED, OFFLINE_ACCESS)]
    if unknown:
        raise RuleError(
            f"unknown scope {unknown[0][:40]!r}; scopes are {' and '.join(SCOPES_SUPPORTED)}"
        )
    if READ_ONLY_SCOPE in names and FULL_SCOPE not in names:
        return READ_ONLY_SCOPE
    return FULL_SCOPE


def narrower_scope(asked: str, chosen: str) -> str:
    """What the approver grants: what was asked for, or less (read-only), never more."""
    if chosen not in SCOPES_SUPPORTED:
        raise RuleError(f"scope must be {' or '.join(SCOPES_SUPPORTED)}")
    if asked == READ_ONLY_SCOPE and chosen == FULL_SCOPE:
        raise RuleError("the client asked for read-only access; it cannot be granted more")
    return chosen


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def check_redirect_uri(uri: str) -> str:
    """A redirect URI a client may register: absolute, no fragment, and https, or http on a
    loopback host (native apps, RFC 8252 §7.3), or an app's own scheme (`cursor://...`,
    RFC 8252 §7.1). Never a scheme that runs or reads something in the browser."""
    if not uri or len(uri) > MAX_URI_CHARS or _has_control_or_space(uri):
        raise RuleError(f"a redirect URI is 1 to {MAX_URI_CHARS} characters without spaces")
    parts = urlsplit(uri)
    scheme = parts.scheme
    if not _SCHEME.fullmatch(scheme) or scheme != uri[: len(scheme)]:
        raise RuleError(f"{uri[:80]!r} is not an absolute URI with a lower-case scheme")
    if parts.fragment or "#" in uri:
        raise RuleError(f"{uri[:80]!r}: a redirect URI has no fragment")
    if scheme in FORBIDDEN_SCHEMES:
        raise RuleError(f"{uri[:80]!r}: the {scheme} scheme cannot be a redirect URI")
    if scheme in ("http", "https"):
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise RuleError(f"{uri[:80]!r}: an http(s) redirect URI names a host, no user")
        if scheme == "http" and _host(parts.netloc) not in LOOPBACK_HOSTS:
            raise RuleError(
                f"{uri[:80]!r}: http is allowed only on a loopback host (127.0.0.1, [::1], "
                "localhost); use https"
            )
    return uri


def _host(netloc: str) -> str:
    """The host part of an authority, as written (IPv6 in brackets), lower case."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    return host.partition(":")[0].lower()


def _without_port(uri: str) -> tuple[str, ...] | None:
    """A loopback http URI without its port, for comparison; None for any other URI."""
    parts = urlsplit(uri)
    if parts.scheme != "http" or _host(parts.netloc) not in LOOPBACK_HOSTS:
        return None
    return (parts.scheme, _host(parts.netloc), parts.path, parts.query)


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exactly one of the registered strings; for loopback http URIs the port may differ
    (native apps listen on whatever port is free, RFC 8252 §7.3), nothing else."""
    if hmac.compare_digest(registered.encode(), requested.encode()):
        return True
    loose = _without_port(registered)
    return loose is not None and loose == _without_port(requested)


def check_state(state: str) -> str:
    if len(state) > MAX_STATE_CHARS or _has_control_or_space(state):
        raise RuleError(f"state is at most {MAX_STATE_CHARS} characters, without spaces")
    return state


def check_code_challenge(challenge: str, method: str) -> str:
    """PKCE with S256 only: the challenge is the base64url SHA-256 of the verifier."""
    if method != "S256":
        raise RuleError("code_challenge_method must be S256 (plain is not accepted)")
    if not _CHALLENGE.fullmatch(challenge):
        raise RuleError("code_challenge must be the 43-character base64url SHA-256 of the verifier")
    return challenge


def pkce_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):
        return False
    computed = b64url(hashlib.sha256(verifier.encode()).digest())
    return hmac.compare_digest(computed.encode(), challenge.encode())


def canonical_resource(uri: str) -> str:
    """A resource indicator (RFC 8707) in the form tokens name it: an absolute http(s) URI,
    scheme and host in lower case, no fragment, no trailing slash on the path."""
    if not uri or len(uri) > MAX_URI_CHARS or _has_control_or_space(uri):
        raise RuleError("resource must be an absolute URI")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.fragment:
        raise RuleError("resource must be an absolute http(s) URI without a fragment")
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(code: str) -> str:
    """`BCDFGHJK` as people read it: `BCDF-GHJK`."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_user_code(text: str) -> str:
    """What a person typed (any case, with or without the dash or spaces) as stored;
    RuleError when it cannot be one of our codes."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        raise RuleError(
            f"{text[:20]!r} is not an authorization code: {USER_CODE_LENGTH} letters as the "
            "sign-in page shows them, e.g. BCDF-GHJK"
        )
    return code


def secret_hash(secret: str) -> str:
    """How codes, client secrets and refresh tokens are stored: SHA-256, hex. They are random
    and long (at least 128 bits), so no salt or slow hash is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()
