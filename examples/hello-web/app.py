"""A tiny HTTP app for the local driver: it listens on the loopback port the driver gives it
($PORT, also $FMCP_PORT_8080 for the Formfile's `EXPOSE 8080`)."""

import http.server
import os


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = ("hello from " + os.environ["FMCP_INSTANCE_NAME"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello)
print("listening on", os.environ["PORT"], flush=True)
server.serve_forever()
