"""The generated Lua filter's data: routes with a body, and the fields of their messages."""

from __future__ import annotations

import re

from formation_mcp.rest_bodies import generate_text, path_pattern


def test_a_path_template_becomes_an_anchored_lua_pattern() -> None:
    assert path_pattern("/v1/tools/{tool}:call", frozenset()) == "^/v1/tools/[^/]+:call$"


def test_a_multi_segment_parameter_matches_slashes() -> None:
    assert path_pattern("/v1/{path}", frozenset({"path"})) == "^/v1/.+$"


def test_lua_magic_characters_are_escaped() -> None:
    assert path_pattern("/v1/a-b.c", frozenset()) == "^/v1/a%-b%.c$"


def test_every_route_with_a_body_is_listed_with_its_message() -> None:
    text = generate_text()
    routes = re.findall(r'^  \{"(\w+)", "([^"]+)", "([\w.]+)"\},$', text, re.MULTILINE)
    assert ("POST", "^/v1/tools/[^/]+:call$", "formation.mcp.v1.CallToolRequest") in routes
    assert ("PATCH", "^/v1/accounts/[^/]+$", "formation.mcp.v1.Account") in routes
    assert all(method in ("POST", "PATCH", "PUT", "DELETE") for method, _, _ in routes)


def test_free_form_fields_are_not_descended_into() -> None:
    text = generate_text()
    call_tool = text[text.index('["formation.mcp.v1.CallToolRequest"] = {') :]
    assert '["arguments"] = "*",' in call_tool[: call_tool.index("},")]
