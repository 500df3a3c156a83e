"""`policy`: CallTool latency and throughput of a quick tool with a 20-rule policy against
the same server without one, in one run (issue #17: the check must cost under 5 % of a quick
call).

Two `fmcp serve` processes (SQLite, each its own data dir), pinned to core 0, take turns under
h2load on core 1 with the same CallToolRequest frame (`bench.quick`, answered inline). One has
a policy for the caller written into its database before it starts: 20 rules that a call of
`bench.quick` is checked against and passes (allow patterns, deny patterns, read_only off,
instance, build and operation quotas that a quick tool does not add to). Rate limits and quotas
that apply to a call cost a database statement each; that is measured by `calls`, not here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from formation.mcp.v1 import policies_pb2, tools_pb2

from bench import h2load
from bench.common import ROOT, figure, heading, note, ratio, target
from bench.databases import migrated, sqlite_url
from bench.identity import Identity, for_server
from bench.processes import fmcp_server, running
from formation_mcp.clock import now_us
from formation_mcp.policies import rules, store
from formation_mcp.policies.quotas import relevant

SECONDS = int(os.environ.get("FMCP_BENCH_POLICY_SECONDS", "10"))
ROUNDS = 2
WARM_UP = 2
CLIENTS, STREAMS = 1, 1  # one call at a time: the latency of a call, not queueing
CHECKS = 100_000
TARGET_OVERHEAD = 0.05
CALL_PATH = "/formation.mcp.v1.ToolsService/CallTool"


def twenty_rules() -> policies_pb2.Policy:
    """Every pattern list long enough to be read through for `bench.quick`."""
    return policies_pb2.Policy(
        allow_tools=["vm.*", "pack.*", "test.*", "network.*", "bench.*"],
        deny_tools=[
            "vm.delete",
            "form_pack_ship",
            "network.expose",
            "test.admin",
            "bench.never",
            "vm_control",
            "pack_ship",
            "x.*",
        ],
        read_only=False,
        max_instances=100,
        max_vcpus=400,
        max_memory_mb=1_000_000,
        max_disk_gb=10_000,
        max_builds_per_hour=1000,
        max_running_operations=1000,
        tool_calls_per_minute={"never.*": 10},
    )


def check_seconds() -> float:
    """In-process: what the Tools service asks the policy per call of a quick tool (merged
    policy cached, as on a server), in seconds per call."""
    policy = rules.merge("accounts/bench-caller/policy", [], twenty_rules())
    tool = rules.ToolFacts.of("bench.quick", ("bench_quick",), read_only=False)
    started = time.perf_counter()
    for _ in range(CHECKS):
        rules.refusal(policy, tool)
        rules.calls_per_minute(policy, tool)
        relevant(policy, None, long_running=False)
        rules.first_match(policy.require_approval, tool)
    return (time.perf_counter() - started) / CHECKS


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    url: str
    body: Path
    headers: tuple[str, ...]


async def _server(
    stack: contextlib.AsyncExitStack, label: str, data_dir: Path, policy: bool
) -> Target:
    body = _prepare(data_dir)
    caller: Identity = for_server(data_dir)
    if policy:
        async with migrated(sqlite_url(data_dir)) as database, database.write() as conn:
            await store.save(conn, caller.owner, twenty_rules(), now_us(), "bench")
    server = fmcp_server(data_dir, None)
    assert server.env is not None
    server.env.update(FMCP_TOOL_MODULES="bench.tools", PYTHONPATH=str(ROOT))
    ready = await stack.enter_async_context(running(server))
    return Target(label, f"http://{ready.group(1)}{CALL_PATH}", body, caller.headers)


def _prepare(data_dir: Path) -> Path:
    """The server's data dir, and the request body h2load sends."""
    data_dir.mkdir()
    body = data_dir / "call.grpc"
    body.write_bytes(h2load.grpc_frame(tools_pb2.CallToolRequest(name="tools/bench.quick")))
    return body


async def run() -> None:
    heading(
        f"policy: CallTool of a quick tool, h2load -c {CLIENTS} -m {STREAMS}, {ROUNDS} x "
        f"{SECONDS // ROUNDS} s per server, taking turns; no policy vs a 20-rule policy"
    )
    h2load.require_tools()
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-policy-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            targets = [
                await _server(stack, "no policy", Path(tmp) / "plain", policy=False),
                await _server(stack, "20-rule policy", Path(tmp) / "policy", policy=True),
            ]
            for each in targets:
                status = await h2load.grpc_status(each.url, each.body, each.headers)
                if status != "0":
                    raise RuntimeError(f"{each.label}: grpc-status {status}; not loading it")
            runs: list[list[h2load.LoadResult]] = [[], []]
            for _ in range(ROUNDS):
                for index, each in enumerate(targets):
                    runs[index].append(
                        await h2load.load(
                            each.url,
                            each.body,
                            headers=each.headers,
                            seconds=SECONDS // ROUNDS,
                            warm_up=WARM_UP,
                            clients=CLIENTS,
                            streams=STREAMS,
                        )
                    )
    rates, latencies = [], []
    for each, results in zip(targets, runs, strict=True):
        rate = sum(r.rate for r in results) / len(results)
        mean_ms = sum(r.mean_ms for r in results) / len(results)
        rates.append(rate)
        latencies.append(mean_ms)
        figure(f"{each.label} rate", rate, "calls/s", 0)
        figure(f"{each.label} mean latency", mean_ms, "ms", 2)
        failed = sum(r.failed for r in results)
        note(f"runs: {', '.join(f'{r.rate:,.0f}' for r in results)} calls/s; {failed} failed")
    ratio("policy/no policy (calls/s)", rates[1], rates[0])
    overhead = latencies[1] / latencies[0] - 1
    figure("latency difference with the policy (end to end)", overhead * 100, "%", 1)
    check = check_seconds()
    figure("the policy check in-process", check * 1e6, "µs per call", 1)
    share = check / (latencies[0] / 1000)
    figure("the check's share of a quick call", share * 100, "%", 3)
    target("the check's share of a quick call", share, TARGET_OVERHEAD, at_least=False)
