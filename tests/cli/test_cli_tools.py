"""`fmcp tools list | describe` and `fmcp call`: JSON output parsed, progress lines on a
non-terminal, exit codes per error class."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Fmcp
from tests.support.servers import free_port


async def test_tools_list_json_is_one_parseable_document(fmcp: Fmcp) -> None:
    result = await fmcp("tools", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    names = {tool["name"] for tool in json.loads(result.stdout)}
    assert {"test.echo", "pack.build", "vm.list"} <= names


async def test_tools_list_filters_and_prints_a_table(fmcp: Fmcp) -> None:
    result = await fmcp("tools", "list", "--filter", 'category = "test"')
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "CATEGORY", "KIND", "TITLE"]
    assert any(row.startswith("test.sleep") and "long-running" in row for row in rows)
    assert not any(row.startswith("pack.build") for row in rows)


async def test_tools_describe_json_has_the_input_schema(fmcp: Fmcp) -> None:
    result = await fmcp("tools", "describe", "test.echo", "-o", "json")
    tool = json.loads(result.stdout)
    assert tool["input_schema"]["required"] == ["text"]


async def test_tools_describe_lists_the_arguments(fmcp: Fmcp) -> None:
    result = await fmcp("tools", "describe", "test.echo")
    assert "  text: string (required)" in result.stdout
    assert "  count: integer" in result.stdout


async def test_describing_an_unknown_tool_exits_with_not_found(fmcp: Fmcp) -> None:
    result = await fmcp("tools", "describe", "no.such.tool")
    assert result.exit_code == 6
    assert "NOT_FOUND (TOOL_NOT_FOUND)" in result.stderr


async def test_call_parses_arg_values_as_json_when_they_are(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.echo", "--arg", "text=hi", "--arg", "count=2", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"echo": "hihi"}


async def test_call_reads_arguments_from_stdin(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.echo", "--json", "-", stdin='{"text": "in"}')
    assert json.loads(result.stdout) == {"echo": "in"}


async def test_call_reads_arguments_from_a_file_and_args_override(
    fmcp: Fmcp, tmp_path: Path
) -> None:
    arguments = tmp_path / "args.json"
    arguments.write_text('{"text": "file", "count": 3}')
    result = await fmcp("call", "test.echo", "--json", str(arguments), "--arg", "count=1")
    assert json.loads(result.stdout) == {"echo": "file"}


async def test_a_long_call_prints_progress_lines_and_the_result(fmcp: Fmcp) -> None:
    # Longer than the call's first wait (FIRST_WAIT_SECONDS): then every change is shown.
    result = await fmcp("call", "test.sleep", "--arg", "steps=3", "--arg", "delay_ms=500")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"steps": 3}
    assert "[ 33%] RUNNING sleeping step 1 of 3" in result.stderr
    assert "[100%] SUCCEEDED" in result.stderr
    for step in (1, 2, 3):
        assert f"  | step {step} of 3" in result.stderr


async def test_bad_arguments_exit_3_naming_the_field(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.echo", "--arg", "text=x", "--arg", "count=99")
    assert result.exit_code == 3
    assert "arguments.count" in result.stderr


async def test_a_forbidden_tool_exits_5(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.admin")
    assert result.exit_code == 5


async def test_a_failed_operation_exits_with_its_error_class(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.fail")
    assert result.exit_code == 8
    assert "FAILED_PRECONDITION (TEST_FAILURE)" in result.stderr
    assert "operation: operations/" in result.stderr


async def test_no_wait_prints_the_pending_operation(fmcp: Fmcp) -> None:
    result = await fmcp(
        "call",
        "test.sleep",
        "--arg",
        "steps=1000",
        "--arg",
        "delay_ms=50",
        "--no-wait",
        "-o",
        "json",
    )
    operation = json.loads(result.stdout)
    assert operation["done"] is False and operation["name"].startswith("operations/")
    await fmcp("ops", "cancel", operation["name"])


async def test_a_wait_that_times_out_exits_11(fmcp: Fmcp) -> None:
    result = await fmcp(
        "call", "test.sleep", "--arg", "steps=1000", "--arg", "delay_ms=50", "--timeout", "0.3"
    )
    assert result.exit_code == 11
    name = next(w for w in result.stderr.split() if w.startswith("operations/"))
    await fmcp("ops", "cancel", name)


async def test_validate_only_checks_the_arguments(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.echo", "--arg", "text=x", "--validate-only", "-o", "json")
    assert json.loads(result.stdout) == {"valid": True}


async def test_a_malformed_arg_is_a_usage_error(fmcp: Fmcp) -> None:
    result = await fmcp("call", "test.echo", "--arg", "no-equals-sign")
    assert result.exit_code == 2


async def test_no_server_exits_10(fmcp: Fmcp) -> None:
    fmcp.target = f"127.0.0.1:{free_port()}"
    result = await fmcp("tools", "list")
    assert result.exit_code == 10
    assert "UNAVAILABLE" in result.stderr


async def test_a_missing_key_is_a_clear_error(fmcp: Fmcp, tmp_path: Path) -> None:
    fmcp.key_file = tmp_path / "absent.pem"
    result = await fmcp("tools", "list")
    assert result.exit_code == 1
    assert "fmcp keygen" in result.stderr
