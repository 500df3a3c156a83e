"""Build a pack, ship it as an instance, look at it, and delete it, with the Python SDK.

Run against a server (`make run`), with a key made by `fmcp keygen`:

    .venv/bin/python examples/sdk_example.py            # FMCP_TARGET, FMCP_KEY_FILE apply
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from formation_mcp.client import Client, FmcpClientError, FormfileBuilder, Operation
from formation_mcp.client.config import ClientConfig


def show(operation: Operation) -> None:
    meta = operation.metadata
    latest = meta.logs[-1].text if meta.logs else ""
    print(f"  {meta.state:<9} {meta.progress_percent:3d}% {meta.stage} {latest}")


def write_site(directory: Path) -> None:
    """The build context: what the Formfile's RUN step and the server use."""
    (directory / "index.html").write_text("<h1>hello from the SDK</h1>\n")


async def main() -> None:
    config = ClientConfig.resolve()  # FMCP_TARGET / FMCP_KEY_FILE, or the defaults
    async with Client.from_config(config) as client:
        print("logged in as", (await client.whoami()).name)
        formfile = (
            FormfileBuilder("hello-sdk")
            .run("cp index.html served.html")
            .entrypoint("python3", "-m", "http.server")
            .expose(8000)
            .resources(vcpus=1, memory_mb=512)
            .to_text()
        )
        with tempfile.TemporaryDirectory() as context:
            write_site(Path(context))
            print("building")
            build = await client.build_workload(formfile, context, on_progress=show)
        print("build", build["build_id"], "cached" if build["cached"] else "new")

        name = f"hello-sdk-{os.getpid()}"
        print("shipping as", name)
        instance = await client.deploy_workload(build["build_id"], name, on_progress=show)
        print("instance", instance["instance_id"], instance["state"], "ports", instance["ports"])
        try:
            status = await client.call_and_wait("vm.status", {"id": name})
            print("status", status["state"], "pid", status.get("pid"))
        finally:
            await client.call_and_wait("vm.delete", {"id": name, "force": True})
            print("deleted", name)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except FmcpClientError as error:
        raise SystemExit(f"error: {error}") from None
