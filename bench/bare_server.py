"""The baseline: a bare grpc.aio server with one no-op unary method and nothing else
(no interceptors, health, reflection or (de)serialization). Run under `taskset -c 0`:

    python -m bench.bare_server [--port N]     # prints "bare: gRPC on 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc

SERVICE = "bench.v1.Bare"
METHOD = "Noop"
PATH = f"/{SERVICE}/{METHOD}"


async def _noop(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return b""  # an empty message, whatever the request


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(_noop)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare: gRPC on 127.0.0.1:{bound}", flush=True)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
