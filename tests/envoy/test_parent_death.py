"""No Envoy outlives the process that started it, even one killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.support.servers import free_port
from tests.support.waiting import eventually

STARTER = """
import asyncio, sys
from pathlib import Path
from formation_mcp.envoy import EnvoyProcess, write_config

async def main() -> None:
    listen = sys.argv[2]
    config = write_config(Path(sys.argv[1]), listen=listen,
                          grpc_upstream="127.0.0.1:9", http_upstream="127.0.0.1:9")
    envoy = EnvoyProcess(config, listen)
    await envoy.start()
    Path(sys.argv[1], "envoy.pid").write_text(str(envoy.process.pid))
    await asyncio.Event().wait()

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_envoy_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    starter = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STARTER, str(tmp_path), f"127.0.0.1:{free_port()}"
    )
    pid_file = tmp_path / "envoy.pid"

    async def envoy_started() -> bool:
        return pid_file.exists() and pid_file.read_text() != ""

    await eventually(envoy_started)
    envoy_pid = int(pid_file.read_text())
    try:
        assert alive(envoy_pid)
        starter.send_signal(signal.SIGKILL)
        await starter.wait()

        async def envoy_gone() -> bool:
            return not alive(envoy_pid)

        await eventually(envoy_gone)
    finally:
        if alive(envoy_pid):
            os.kill(envoy_pid, signal.SIGKILL)
