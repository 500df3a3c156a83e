"""What the tests share besides fixtures (fixtures stay in the conftest.py files, where pytest
finds them): one module per subject.

- waiting: `DEADLINE`, `eventually`, `wait_until` (no fixed sleeps)
- errors: a gRPC error's one ErrorInfo and BadRequest fields; `refused`, `check_refusal`
- operations: `Worker` (plays a worker's events), `new_operation`, `metadata_of`,
  `output_of`, `struct`
- servers: `make_settings`, `free_port`, `StartApp`, `TEST_TOOL_MODULES`, the connected tier's
  PostgreSQL and RabbitMQ addresses
- auth: call metadata (`Md`), challenges and logins, hand-made tokens, `AdminServer`, `Gate`
- envoy: REST through Envoy (error bodies, login over REST, NDJSON watches)
- mcp: the MCP SDK's client over Streamable HTTP, progress notifications
- cli: `Fmcp`, the command line run in-process
- workloads: who workloads run as; the instance tools' steps (build, ship, fetch)
- hostile_formfiles: YAML alias bombs
- latency: whether something holds up the event loop (`cheap_calls_during`)
- postgres: `PrivatePostgres`, a cluster of a test's own
- tools: the tools only tests use (the README's demo tools are examples/demo_tools.py)
"""
