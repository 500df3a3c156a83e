"""The sign-in page: plain server-rendered HTML, no script, a strict Content Security Policy.

While the request waits, the page shows which client asks, where the code will go, for which
account and scope, the short code and the command that approves it, and reloads itself every
few seconds (a `refresh` meta tag, no script) until the request is decided.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

from formation_mcp.auth.authorizations import Waiting
from formation_mcp.auth.keys import account_name
from formation_mcp.auth.oauth_rules import display_user_code
from formation_mcp.permissions import READ_ONLY_SCOPE

RELOAD_SECONDS = 3
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}"
    "main{max-width:40rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}"
    "h1{font-size:1.4rem;margin-top:0}dt{font-weight:600;margin-top:.6rem}dd{margin:0}"
    "code,pre{font-family:ui-monospace,monospace;word-break:break-all}"
    "pre{background:#1d2330;color:#fff;padding:1rem;border-radius:6px;font-size:1.1rem}"
    ".code{font-size:2rem;letter-spacing:.2rem;font-weight:700;text-align:center;margin:1rem 0}"
    ".note{color:#555;font-size:.9rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
SCOPE_TEXT = {
    READ_ONLY_SCOPE: "read-only: list and read tools' results, operations and your account; "
    "nothing that changes anything",
}
FULL_TEXT = "full: everything your account's roles allow (build, ship, control and delete)"


def _document(title: str, body: str, reload_to: str = "") -> str:
    refresh = (
        f'<meta http-equiv="refresh" content="{RELOAD_SECONDS};url={escape(reload_to)}">'
        if reload_to
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{refresh}<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def page(title: str, body: str, status: int = 200, reload_to: str = "") -> HTMLResponse:
    return HTMLResponse(_document(title, body, reload_to), status_code=status, headers=HEADERS)


def message_page(title: str, message: str, status: int = 200) -> HTMLResponse:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", status)


def _where(redirect_uri: str) -> str:
    """Where the code goes, as a person judges it: the scheme and host (or the app's scheme)."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def waiting_page(waiting: Waiting, reload_to: str) -> HTMLResponse:
    request = waiting.request
    code = display_user_code(request.user_code)
    account = (
        f"<code>{escape(account_name(request.login_hint))}</code> only"
        if request.login_hint
        else "the account whose key approves it"
    )
    expires = datetime.fromtimestamp(request.expire_time / 1_000_000, UTC)
    body = (
        "<h1>Sign-in request</h1>"
        f"<p><strong>{escape(waiting.client_name)}</strong> asks to use this Formation MCP "
        "control plane as your account.</p>"
        "<dl>"
        f"<dt>Client</dt><dd>{escape(waiting.client_name)} (<code>{escape(request.client_id)}"
        "</code>)</dd>"
        f"<dt>Sends you back to</dt><dd><code>{escape(_where(request.redirect_uri))}</code></dd>"
        f"<dt>Account</dt><dd>{account}</dd>"
        f"<dt>Access</dt><dd>{escape(SCOPE_TEXT.get(request.scope, FULL_TEXT))}</dd>"
        f"<dt>For</dt><dd><code>{escape(request.resource)}</code></dd>"
        f"<dt>Expires</dt><dd>{expires:%H:%M:%S} UTC</dd>"
        "</dl>"
        f'<p class="code">{escape(code)}</p>'
        "<p>To approve it, run this with your key (FMCP_TARGET set to this server):</p>"
        f"<pre>fmcp authorize {escape(code)}</pre>"
        '<p class="note">The command shows this request again and asks before it approves; '
        "answering no denies it (<code>--read-only</code> grants read-only access). This "
        f'page continues by itself once you have decided (<a href="{escape(reload_to)}">'
        "continue</a>). If you did not start this sign-in, deny it or let it expire.</p>"
    )
    return page("Sign in to Formation MCP", body, reload_to=reload_to)
