"""The console's routes: `GET /console/signin?code=` shows a page with a "Sign in" button (a
GET changes nothing: link scanners and previews that fetch the link do not spend it), whose
`POST /console/signin` exchanges the code for the session (cookies scoped to /console, then
back to the console); `POST /console/signout` ends it; the console's files are served with a
strict Content-Security-Policy (no inline script, nothing from elsewhere)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from formation_mcp.auth.console_sessions import (
    CONSOLE_PATH,
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    SIGN_IN_PATH,
    ConsoleSessions,
)
from formation_mcp.clock import now_us
from formation_mcp.errors import FmcpError
from formation_mcp.proxies import ProxyTrust
from formation_mcp.public_urls import base_url

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
MAX_FORM_BYTES: Final = 4096
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _message(title: str, text: str, status: int) -> Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{CONSOLE_PATH}/style.css">'
        f"<title>{escape(title)}</title>"
        f"</head><body><main><h1>{escape(title)}</h1><p>{escape(text)}</p></main></body></html>"
    )
    return HTMLResponse(body, status, headers={**HEADERS, "cache-control": "no-store"})


def _confirm(code: str) -> Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{CONSOLE_PATH}/style.css">'
        "<title>Sign in to the console</title></head><body><main>"
        "<h1>Sign in to the Formation MCP console</h1>"
        "<p>This one-time link signs this browser in as the account that made it "
        "(<code>fmcp console</code>). It works once, within a minute.</p>"
        f'<form method="post" action="{SIGN_IN_PATH}">'
        f'<input type="hidden" name="code" value="{escape(code)}">'
        '<button type="submit" id="sign-in">Sign in</button></form>'
        "</main></body></html>"
    )
    return HTMLResponse(body, 200, headers={**HEADERS, "cache-control": "no-store"})


def _same_origin(request: Request, public_base: str) -> bool:
    """A form posted from our own page, not another site's page signing this browser in to an
    account of its choosing: the Origin a browser sends with a POST, or (our pages' referrer
    policy makes it `null`) its Sec-Fetch-Site."""
    origin = request.headers.get("origin", "null")
    if origin != "null":
        return urlsplit(origin).netloc == urlsplit(public_base).netloc
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


def _files() -> dict[str, tuple[bytes, str]]:
    """The console's files by their path under /console/ ("" is index.html)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC.rglob("*")):
        media_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            files[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), media_type)
    files[""] = files["index.html"]
    return files


class ConsoleServer:
    def __init__(self, sessions: ConsoleSessions, proxies: ProxyTrust) -> None:
        self._sessions = sessions
        self._proxies = proxies
        self._files = _files()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(CONSOLE_PATH, self._to_console, methods=["GET"]),
            Route(SIGN_IN_PATH, self._confirm_sign_in, methods=["GET"]),
            Route(SIGN_IN_PATH, self._sign_in, methods=["POST"]),
            Route(CONSOLE_PATH + "/signout", self._sign_out, methods=["POST"]),
            Route(CONSOLE_PATH + "/{path:path}", self._file, methods=["GET", "HEAD"]),
        ]

    async def _to_console(self, _request: Request) -> Response:
        return RedirectResponse(CONSOLE_PATH + "/", status_code=308)

    async def _file(self, request: Request) -> Response:
        found = self._files.get(request.path_params["path"])
        if found is None:
            return _message("Not found", "The console has no such page.", 404)
        content, media_type = found
        return Response(
            content, media_type=media_type, headers={**HEADERS, "cache-control": "no-cache"}
        )

    def _secure(self, request: Request) -> bool:
        return base_url(request, self._proxies).startswith("https://")

    async def _confirm_sign_in(self, request: Request) -> Response:
        return _confirm(request.query_params.get("code", ""))

    async def _sign_in(self, request: Request) -> Response:
        if not _same_origin(request, base_url(request, self._proxies)):
            return _message("Sign-in refused", "The form came from another site.", 403)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return _message("Sign-in refused", "The form is too large.", 413)
        code = parse_qs(body.decode("utf-8", "replace")).get("code", [""])[0]
        try:
            session = await self._sessions.exchange(code)
        except FmcpError as error:
            return _message("Sign-in link refused", error.message, error.http_status)
        response = RedirectResponse(
            CONSOLE_PATH + "/", status_code=303, headers={**HEADERS, "cache-control": "no-store"}
        )
        max_age = max(0, (session.expire_time - now_us()) // 1_000_000)
        secure = self._secure(request)
        response.set_cookie(
            SESSION_COOKIE,
            session.session,
            max_age=max_age,
            path=CONSOLE_PATH,
            httponly=True,
            secure=secure,
            samesite="strict",
        )
        # Readable by the console's script, which sends it back in the x-fmcp-csrf header: a
        # page elsewhere can neither read it nor set the header (double submit).
        response.set_cookie(
            CSRF_COOKIE,
            session.csrf,
            max_age=max_age,
            path=CONSOLE_PATH,
            secure=secure,
            samesite="strict",
        )
        return response

    async def _sign_out(self, request: Request) -> Response:
        session = request.cookies.get(SESSION_COOKIE, "")
        try:
            await self._sessions.authenticate(session, request.headers.get(CSRF_HEADER, ""))
        except FmcpError as error:
            return JSONResponse(
                {"code": error.code.value[0], "message": error.message},
                status_code=error.http_status,
            )
        await self._sessions.revoke(session)
        response = JSONResponse({"signed_out": True}, headers={"cache-control": "no-store"})
        response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
        response.delete_cookie(CSRF_COOKIE, path=CONSOLE_PATH)
        return response
