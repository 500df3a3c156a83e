"""The registry's names: canonical, aliases and the host-safe names MCP lists."""

from __future__ import annotations

from typing import Any

import pytest

from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import HOST_SAFE_NAME, ToolRegistry, ToolSpec, host_safe_name

OBJECT = {"type": "object"}


async def run(_context: ToolContext, _arguments: dict[str, Any]) -> dict[str, Any]:
    return {}


def spec(name: str, *aliases: str) -> ToolSpec:
    return ToolSpec(name, name, "a tool", "1.0.0", "test", OBJECT, OBJECT, aliases=aliases)


@pytest.mark.parametrize(
    ("name", "host_name"),
    [("pack.build", "pack_build"), ("form_pack_ship", "form_pack_ship"), ("a.b-c.d", "a_b-c_d")],
)
def test_host_safe_names_replace_what_hosts_refuse(name: str, host_name: str) -> None:
    assert host_safe_name(name) == host_name
    assert HOST_SAFE_NAME.fullmatch(host_safe_name(name))


def test_a_long_name_is_cut_to_what_hosts_accept() -> None:
    assert HOST_SAFE_NAME.fullmatch(host_safe_name("x." * 60))


def test_a_tool_resolves_by_its_host_safe_name() -> None:
    registry = ToolRegistry()
    registry.register(spec("vm.create"), run)
    assert registry.resolve("vm_create").spec.name == "vm.create"


def test_a_tool_whose_host_safe_name_is_taken_is_refused() -> None:
    registry = ToolRegistry()
    registry.register(spec("vm_create"), run)
    with pytest.raises(ValueError, match="'vm_create' is registered already"):
        registry.register(spec("vm.create"), run)
