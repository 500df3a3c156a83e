"""Exposed instances in tests: an app that answers with its name and the path it was asked
for (so a test sees the prefix stripped), streams lines until told to stop, and the steps of
exposing it and fetching through the front door."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
from tests.support.auth import Md
from tests.support.waiting import eventually
from tests.support.workloads import build, succeed

ECHO_APP = """\
import http.server, os, threading, time

stop_streams = threading.Event()

class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/stream":
            return self.stream()
        if self.path == "/stop-streams":
            stop_streams.set()
        body = (os.environ["FMCP_INSTANCE_NAME"] + " " + self.path).encode()
        if self.path == "/headers":
            body = "".join(k.lower() + ": " + v + "\\n" for k, v in self.headers.items()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self):
        stop_streams.clear()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = 0
        while True:
            ended = stop_streams.wait(0.05)
            text = ("end %d\\n" % line) if ended else ("line %d\\n" % line)
            data = text.encode()
            self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(data), data))
            self.wfile.flush()
            line += 1
            if ended:
                break
        self.wfile.write(b"0\\r\\n\\r\\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo)
server.daemon_threads = True
server.serve_forever()
"""
ECHO_FORMFILE = """\
NAME echo
RUN python3 -m py_compile app.py
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080 9090
"""


async def ship_echo(channel: grpc.aio.Channel, md: Md, name: str) -> dict[str, Any]:
    """A running echo instance (EXPOSE 8080 and 9090; it serves 8080)."""
    build_id = await build(channel, md, ECHO_FORMFILE, ECHO_APP)
    return await succeed(channel, md, "pack.ship", build_id=build_id, instance_name=name)


async def answer(
    url: str,
    expected_status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "",
) -> httpx.Response:
    """The front door's answer at `url` once it is `expected_status` (and of `content_type`,
    when given): routes reach Envoy within about a second."""
    found: list[httpx.Response] = []

    async def answered() -> bool:
        async with httpx.AsyncClient() as client:
            response = await client.get(url, headers=headers, timeout=5)
        found[:] = [response]
        return response.status_code == expected_status and response.headers.get(
            "content-type", ""
        ).startswith(content_type)

    try:
        await eventually(answered)
    except TimeoutError:
        last = found[0] if found else None
        raise AssertionError(
            f"{url}: never {expected_status}; last {last and (last.status_code, last.text)}"
        ) from None
    return found[0]
