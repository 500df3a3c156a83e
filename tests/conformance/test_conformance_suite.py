"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, on Node 22 from
npm) against our `/mcp`: every scenario that tests a server itself passes (run_suite.py says
which apply and why the others do not)."""

from __future__ import annotations

import pytest
from tests.conformance.run_suite import APPLICABLE, TOOLS, run


@pytest.mark.timeout(300)
async def test_every_applicable_conformance_scenario_passes() -> None:
    suite = TOOLS / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    assert suite.is_file(), "the conformance suite is not installed: make setup"
    assert await run(APPLICABLE) == []
