"""pack.build end to end: CallTool -> outbox -> broker -> worker -> build -> events -> result,
on every database and broker (the `tools_app` server, whose worker has the built-in tools)."""

from __future__ import annotations

import asyncio
import base64
import io
import tarfile

import grpc
import pytest
from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.errors import error_info, field_violations
from tests.support.hostile_formfiles import billion_laughs, nested_alias_bomb
from tests.support.latency import LOOP_STALL_LIMIT, cheap_calls_during
from tests.support.operations import metadata_of, output_of, struct

from formation_mcp.app import Application

FORMFILE = """\
NAME hello-web
RUN echo "building $GREETING" && mkdir -p out && cp app.py out/app.py
RUN python3 -c "import sys; print('to stderr', file=sys.stderr)"
ENV GREETING=world
RUN echo "greeting is $GREETING"
INSTALL curl
ENTRYPOINT ["python3", "out/app.py"]
EXPOSE 8000
"""
APP = "print('hello')\n"


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


async def build(
    channel: grpc.aio.Channel,
    md: Md,
    formfile: str | dict[str, object] = FORMFILE,
    tool: str = "pack.build",
    files: dict[str, str] | None = None,
) -> list[lro_pb2.Operation]:
    """Call the tool and watch it to the end: every message of the watch."""
    operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
        tools_pb2.CallToolRequest(
            name=f"tools/{tool}",
            arguments=struct({"formfile": formfile, "context_files": files or {"app.py": APP}}),
        ),
        metadata=md,
    )
    watch = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
        operations_pb2.WatchOperationRequest(name=operation.name), metadata=md
    )
    async with asyncio.timeout(60):
        return [message async for message in watch]


def log_text(messages: list[lro_pb2.Operation]) -> list[str]:
    return [line.text for message in messages[1:] for line in metadata_of(message).logs]


async def test_a_build_streams_its_output_and_returns_the_pack(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    messages = await build(channel, as_account, files={"app.py": APP, "extra.txt": "unique-1"})
    final = messages[-1]
    assert final.done and not final.HasField("error"), final.error.message
    result = output_of(final)
    assert result["name"] == "hello-web" and result["cached"] is False
    assert result["not_applied"] == ["INSTALL curl"]
    assert result["note"].startswith("INSTALL curl: ")  # says the local driver skipped it
    lines = log_text(messages)
    assert "greeting is world" in lines  # ENV applies to the steps after it...
    assert [line for line in lines if line.startswith("building")] == ["building"] or [
        line for line in lines if line.startswith("building")
    ] == ["building "]  # ...and not to those before it
    assert "to stderr" in lines


async def test_an_identical_build_is_cached(channel: grpc.aio.Channel, as_account: Md) -> None:
    files = {"app.py": APP, "extra.txt": "unique-2"}
    first = output_of((await build(channel, as_account, files=files))[-1])
    second = output_of((await build(channel, as_account, files=files))[-1])
    assert second["cached"] is True
    assert (second["build_id"], second["digest"]) == (first["build_id"], first["digest"])


async def test_the_seed_name_form_pack_build_works(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    final = (await build(channel, as_account, tool="form_pack_build"))[-1]
    assert final.done and output_of(final)["name"] == "hello-web"


async def test_a_failing_step_fails_with_its_exit_code_and_last_lines(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    formfile = "NAME broken\nRUN echo about to fail && exit 3\n"
    final = (await build(channel, as_account, formfile=formfile))[-1]
    assert final.error.code == code_pb2.FAILED_PRECONDITION
    assert "3" in final.error.message and "about to fail" in final.error.message


async def test_a_bad_formfile_is_refused_before_anything_starts(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(
                name="tools/pack.build",
                arguments=struct({"formfile": "NAME x\nMEMORY 12\nFROBNICATE now\n"}),
            ),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "FORMFILE_INVALID"
    assert set(field_violations(caught.value)) == {"arguments.formfile"}
    listed = await operations_pb2_grpc.OperationsServiceStub(channel).ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=as_account
    )
    assert list(listed.operations) == []


async def test_the_formfile_may_be_the_document_as_an_object(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    document: dict[str, object] = {
        "name": "object-form",
        "run": ["echo built from an object"],
        "expose": [8080],
        "entrypoint": ["python3", "app.py"],
    }
    messages = await build(channel, as_account, formfile=document)
    assert not messages[-1].HasField("error"), messages[-1].error.message
    assert output_of(messages[-1])["name"] == "object-form"
    assert "built from an object" in log_text(messages)


async def test_a_bad_formfile_object_names_the_field_to_fix(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(
                name="tools/pack.build",
                arguments=struct({"formfile": {"name": "x", "expose": ["not a port"]}}),
            ),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "FORMFILE_INVALID"
    assert any(v.startswith("arguments.formfile") for v in field_violations(caught.value))


async def test_a_context_path_that_escapes_the_build_root_is_refused(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    final = (await build(channel, as_account, files={"../escape.txt": "x"}))[-1]
    assert final.error.code == code_pb2.INVALID_ARGUMENT
    assert metadata_of(final).state == operations_pb2.OperationMetadata.FAILED


async def test_context_files_and_tar_gz_together_are_refused(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(
                name="tools/pack.build",
                arguments=struct(
                    {"formfile": "NAME x\n", "context_files": {}, "context_tar_gz": ""}
                ),
            ),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


# -- hostile input answers quickly and holds up nobody ------------------------------------


async def call_pack_build(channel: grpc.aio.Channel, md: Md, arguments: struct_pb2.Struct) -> None:
    """CallTool, then WaitOperation until the operation is done; raises what the call raised."""
    operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
        tools_pb2.CallToolRequest(name="tools/pack.build", arguments=arguments), metadata=md
    )
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    while not operation.done:
        operation = await operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), metadata=md
        )
    assert not operation.HasField("error"), operation.error.message


BAD_CALL_DEADLINE = 10.0
"""Generous: each of these is answered in milliseconds; before bounded parsing, the alias
bombs held the server (and this test's event loop) for 5 s and 17 s."""


@pytest.mark.parametrize(
    ("formfile", "problem"),
    [
        (nested_alias_bomb(), "line 6: the YAML has more than 10000 values"),
        (billion_laughs(levels=8), "line 6: the YAML has more than 10000 values"),
        (
            "name: x\nresources:\n  vcpus: " + "[" * 900 + "]" * 900 + "\n",
            "line 3: the YAML is nested too deeply (more than 32 levels)",
        ),
        (
            '{"name": "x", "resources": {"vcpus": ' + "[" * 500 + "]" * 500 + "}}",
            "the JSON is nested too deeply (more than 32 levels)",
        ),
        (
            "name: x\nresources:\n  vcpus: " + "9" * 5000 + "\n",
            "the YAML has a number with more than 4300 digits",
        ),
        (
            "name: x\nresources:\n  vcpus: " + "x" * 60_000 + "\n",
            'resources.vcpus: "' + "x" * 56 + "... is not a whole number",
        ),
    ],
    ids=["nested-aliases", "billion-laughs", "deep-yaml", "deep-json", "long-number", "long-value"],
)
async def test_a_hostile_formfile_is_refused_quickly_without_holding_up_other_calls(
    channel: grpc.aio.Channel, as_account: Md, formfile: str, problem: str
) -> None:
    pytest.importorskip("yaml")
    async with asyncio.timeout(BAD_CALL_DEADLINE):
        refused, loop = await cheap_calls_during(
            call_pack_build(channel, as_account, struct({"formfile": formfile})),
            channel,
            as_account,
        )

    assert loop.longest_stall < LOOP_STALL_LIMIT, loop
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused).reason == "FORMFILE_INVALID"
    assert problem in (refused.details() or "")


def tar_gz_of_zeros(files: int, file_bytes: int) -> str:
    """A base64 .tar.gz of `files` files of zeros: small to send, large to stage."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(files):
            member = tarfile.TarInfo(f"data/{index % 20}/file-{index}.bin")
            member.size = file_bytes
            archive.addfile(member, io.BytesIO(bytes(file_bytes)))
    return base64.b64encode(buffer.getvalue()).decode()


async def test_staging_a_large_context_does_not_hold_up_other_calls(
    channel: grpc.aio.Channel, as_account: Md
) -> None:
    """2,000 files and 62.5 MiB to write and digest: on the event loop this held every other
    call for about 1.6 s."""
    arguments = struct(
        {"formfile": "NAME big-context\n", "context_tar_gz": tar_gz_of_zeros(2000, 32 * 1024)}
    )

    built, loop = await cheap_calls_during(
        call_pack_build(channel, as_account, arguments), channel, as_account
    )

    assert built is None
    assert loop.longest_stall < LOOP_STALL_LIMIT, loop
