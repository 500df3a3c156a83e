"""The edge rule for strings, on request messages: what is refused, where, and how the field
is named (the sweep over every RPC and tool on a real server is test_request_strings_sweep)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from formation.mcp.v1 import accounts_pb2, auth_pb2, operations_pb2, tools_pb2
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    empty_pb2,
    json_format,
    message_factory,
)
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from formation_mcp.api.request_strings import REASON, checker_for, key_segment
from formation_mcp.errors import InvalidArgument, ResourceExhausted
from formation_mcp.structs import MAX_VALUES

CONTROL_CHARACTERS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]


def descriptor_of(message: Message) -> Descriptor:
    """`message.DESCRIPTOR` as `checker_for` takes it: the stubs type the pure-Python and the upb
    descriptor classes apart, but at run time upb's is a `Descriptor` (its metaclass says so)."""
    return cast(Descriptor, message.DESCRIPTOR)


def refusal(message: Message) -> InvalidArgument:
    check = checker_for(descriptor_of(message))
    assert check is not None
    with pytest.raises(InvalidArgument) as caught:
        check(message)
    error = caught.value
    assert error.reason == REASON
    assert len(error.field_violations) == 1
    return error


def refused_field(message: Message) -> str:
    return refusal(message).field_violations[0].field


def passes(message: Message) -> None:
    check = checker_for(descriptor_of(message))
    assert check is not None
    check(message)


def call(name: str, arguments: dict[str, Any]) -> tools_pb2.CallToolRequest:
    request = tools_pb2.CallToolRequest(name=name)
    json_format.ParseDict(arguments, request.arguments)
    return request


def test_a_nul_is_refused_naming_the_field_the_character_and_where_it_is() -> None:
    error = refusal(operations_pb2.GetOperationRequest(name="operations/a\x00b"))
    violation = error.field_violations[0]
    assert violation.field == "name"
    assert "U+0000 (NUL) at index 12" in violation.description
    assert error.message.startswith("name: ")


@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_takes_no_control_character(character: str) -> None:
    assert refused_field(auth_pb2.LoginRequest(challenge_id=f"id{character}")) == "challenge_id"


def test_printable_text_of_any_script_passes() -> None:
    passes(auth_pb2.RefreshTokenRequest(refresh_token="é😀 ñ\u00a0\u200b中文"))


def test_a_filter_is_text_it_takes_tab_newline_and_carriage_return() -> None:
    passes(operations_pb2.ListOperationsRequest(filter='state =\t"RUNNING"\r\nAND done = false'))
    passes(tools_pb2.ListToolsRequest(filter='category =\n"vm"'))


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x0b", "\x1b", "\x7f", "\x85"])
def test_text_still_takes_no_other_control_character(character: str) -> None:
    request = operations_pb2.ListOperationsRequest(filter=f"state{character}")
    assert refused_field(request) == "filter"


def test_the_refusal_says_what_a_text_field_takes() -> None:
    error = refusal(operations_pb2.ListOperationsRequest(filter="a\x00"))
    assert "tab, newline and carriage return" in error.field_violations[0].description


@pytest.mark.parametrize("character", ["\t", "\n", "\r"])
def test_the_same_whitespace_is_refused_in_a_name(character: str) -> None:
    request = operations_pb2.ListOperationsRequest(page_token=f"token{character}")
    assert refused_field(request) == "page_token"


def test_nested_and_repeated_fields_are_named_by_their_path() -> None:
    account = auth_pb2.Account(name="accounts/x", roles=["user", "ad\x00min"])
    assert refused_field(accounts_pb2.UpdateAccountRequest(account=account)) == "account.roles[1]"


def test_a_well_known_type_nested_in_a_request_is_checked() -> None:
    request = accounts_pb2.UpdateAccountRequest()
    request.update_mask.paths.extend(["roles", "dis\nabled"])
    assert refused_field(request) == "update_mask.paths[1]"


def test_a_map_key_is_named_quoted_as_json() -> None:
    info = error_details_pb2.ErrorInfo(metadata={"ok": "1", "a\x00b": "2"})
    assert refused_field(info) == 'metadata["a\\u0000b"]'


def test_a_map_value_is_named_by_its_key() -> None:
    assert refused_field(error_details_pb2.ErrorInfo(metadata={"k": "v\x07"})) == "metadata.k"


def test_tool_arguments_are_named_by_their_json_path() -> None:
    request = call("tools/x", {"run": ["ok", {"b c": ["fine", "bad\x1b"]}]})
    assert refused_field(request) == 'arguments.run[1]["b c"][1]'


def test_an_argument_key_with_a_nul_is_named_as_the_client_wrote_it() -> None:
    request = call("tools/pack.build", {"context_files": {"a\x00b": "x"}})
    assert refused_field(request) == 'arguments.context_files["a\\u0000b"]'


def test_a_bad_key_is_refused_as_a_key() -> None:
    error = refusal(call("tools/pack.build", {"context_files": {"a\x00b": "x"}}))
    assert error.field_violations[0].description.startswith("the key contains")


def test_the_formfile_and_file_contents_are_text() -> None:
    passes(
        call(
            "tools/pack.build",
            {"formfile": "NAME x\r\nRUN\techo hi\n", "context_files": {"app.py": "a\n\tb\r\n"}},
        )
    )


def test_file_contents_still_take_no_nul() -> None:
    request = call("tools/pack.build", {"context_files": {"app.py": "a\x00"}})
    assert refused_field(request) == 'arguments.context_files["app.py"]'


def test_keys_are_names_even_where_values_are_text() -> None:
    request = call("tools/pack.build", {"context_files": {"dir\n/app.py": "x"}})
    assert refused_field(request) == 'arguments.context_files["dir\\n/app.py"]'


def test_free_text_metadata_takes_newlines_but_an_instance_id_does_not() -> None:
    passes(call("tools/vm.create", {"name": "web", "metadata": {"note": "two\nlines"}}))
    passes(call("tools/pack.ship", {"vm_config": {"metadata": {"note": "two\nlines"}}}))
    assert refused_field(call("tools/vm.status", {"id": "web\n"})) == "arguments.id"


def test_text_places_belong_to_their_request_type() -> None:
    """`filter` is text in ListOperations; a field of that name elsewhere would not be."""
    assert refused_field(call("tools/x", {"filter": "a\tb"})) == "arguments.filter"


def test_numbers_booleans_and_nulls_in_arguments_pass() -> None:
    passes(call("tools/x", {"n": 1.5, "b": True, "z": None, "list": [1, None, False]}))


def test_a_message_that_holds_no_string_gets_no_check() -> None:
    assert checker_for(empty_pb2.Empty.DESCRIPTOR) is None
    assert checker_for(auth_pb2.CreateChallengeRequest.DESCRIPTOR) is None  # bytes only
    assert checker_for(auth_pb2.GetJwksRequest.DESCRIPTOR) is None


def test_key_segment_is_dotted_for_plain_names_and_quoted_otherwise() -> None:
    assert key_segment("vcpus") == ".vcpus"
    assert key_segment("app.py") == '["app.py"]'
    assert key_segment("é") == '["\\u00e9"]'


def _recursive_type() -> type[Any]:
    """`Node { string label = 1; repeated Node children = 2; map<string, Node> named = 3; }`, a
    class made at run time (its fields are unknown to the type checker)."""
    file = descriptor_pb2.FileDescriptorProto(name="probe/node.proto", package="probe")
    node = file.message_type.add(name="Node")
    string, message = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        (descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE),
    )
    optional, repeated = (
        descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    node.field.add(name="label", number=1, type=string, label=optional)
    node.field.add(name="children", number=2, type=message, label=repeated, type_name=".probe.Node")
    entry = node.nested_type.add(name="NamedEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=string, label=optional)
    entry.field.add(name="value", number=2, type=message, label=optional, type_name=".probe.Node")
    node.field.add(
        name="named", number=3, type=message, label=repeated, type_name=".probe.Node.NamedEntry"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("probe.Node"))


def test_a_type_that_contains_itself_is_walked_to_any_depth() -> None:
    node_type = _recursive_type()
    root: Any = node_type(label="root")
    deep = root.children.add(label="one").named["two"].children.add(label="thr\x00ee")
    assert deep.label == "thr\x00ee"
    assert refused_field(root) == "children[0].named.two.children[0].label"


def test_json_of_more_than_max_values_is_refused_before_the_rest_is_read() -> None:
    """The walk stops at the first value past MAX_VALUES with the refusal
    `arguments_from_struct` would give (a request of 200,000 values costs no more than one of
    MAX_VALUES)."""
    files = {str(n): "x" for n in range(MAX_VALUES + 10)}
    check = checker_for(descriptor_of(call("tools/pack.build", {})))
    assert check is not None

    with pytest.raises(ResourceExhausted) as caught:
        check(call("tools/pack.build", {"context_files": files}))

    assert caught.value.reason == "ARGUMENTS_TOO_LARGE"
    assert [v.field for v in caught.value.field_violations] == ["arguments.context_files"]


def test_json_of_exactly_max_values_is_walked_to_the_end() -> None:
    files = {str(n): "x" for n in range(MAX_VALUES - 2)}  # the object itself is a value too
    files["last"] = "a\x00b"

    assert refused_field(call("tools/pack.build", {"context_files": files})) == (
        "arguments.context_files.last"
    )
