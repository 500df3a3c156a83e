"""AIP-158 paging: page sizes and opaque, query-bound page tokens."""

from __future__ import annotations

import base64
import re

import pytest

from formation_mcp.errors import InvalidArgument
from formation_mcp.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_token,
    encode_token,
    page_size,
    query_key,
)

KEY = query_key("acct-1", "state=RUNNING")
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]*$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fields(error: InvalidArgument) -> list[str]:
    return [violation.field for violation in error.field_violations]


def _awkward_position(length: int) -> str:
    """Positions whose standard base64 encoding needs '+', '/' and '=' padding."""
    return "?>~???" * length + "x" * (length % 3)


def _pad(token: str) -> str:
    return token + "=" * (-len(token) % 4)


# --------------------------------------------------------------------------- page_size


def test_page_size_zero_means_default() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE


@pytest.mark.parametrize("requested", [1, 7, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE - 1, MAX_PAGE_SIZE])
def test_page_size_within_limits_is_kept(requested: int) -> None:
    assert page_size(requested) == requested


@pytest.mark.parametrize("requested", [MAX_PAGE_SIZE + 1, 10 * MAX_PAGE_SIZE, 2**31 - 1])
def test_page_size_above_maximum_is_coerced(requested: int) -> None:
    assert page_size(requested) == MAX_PAGE_SIZE


@pytest.mark.parametrize("requested", [-1, -50, -(2**31)])
def test_negative_page_size_is_invalid_argument_naming_page_size(requested: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        page_size(requested)
    assert _fields(info.value) == ["page_size"]
    assert info.value.message.startswith("page_size:")


def test_negative_page_size_message_says_what_to_do() -> None:
    with pytest.raises(InvalidArgument) as info:
        page_size(-3)
    assert "-3" in info.value.message
    assert "0 for the default" in info.value.message


# --------------------------------------------------------------------------- query_key


def test_query_key_is_deterministic() -> None:
    assert query_key("acct-1", "state=RUNNING") == KEY


def test_query_key_is_16_lowercase_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", KEY)


@pytest.mark.parametrize(
    "parts",
    [("acct-2", "state=RUNNING"), ("acct-1", "state=FAILED"), ("acct-1",), ("acct-1", "")],
)
def test_query_key_differs_when_any_part_differs(parts: tuple[str, ...]) -> None:
    assert query_key(*parts) != KEY


def test_query_key_keeps_part_boundaries() -> None:
    assert query_key("ab", "c") != query_key("a", "bc")


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "position",
    ["", "0" * 32, "0190f5a0c1e27b3c8d4e5f6a7b8c9d0e", "with spaces", "ünïcødé ✓", '"quoted"\\'],
)
def test_token_round_trip(position: str) -> None:
    assert decode_token(encode_token(position, KEY), KEY) == position


def test_token_is_opaque() -> None:
    position = "0190f5a0c1e27b3c8d4e5f6a7b8c9d0e"
    assert position not in encode_token(position, KEY)


@pytest.mark.parametrize("length", range(30))
def test_token_is_url_safe(length: int) -> None:
    token = encode_token(_awkward_position(length), KEY)
    assert URL_SAFE.match(token), token


def test_url_safe_test_positions_would_need_plus_slash_and_padding() -> None:
    standard = "".join(
        base64.b64encode(
            base64.urlsafe_b64decode(_pad(encode_token(_awkward_position(n), KEY)))
        ).decode()
        for n in range(30)
    )
    assert {"+", "/", "="} <= set(standard)


def test_token_is_stable_for_same_position_and_key() -> None:
    assert encode_token("abc", KEY) == encode_token("abc", KEY)


@pytest.mark.parametrize(
    "token",
    [
        "!!!!",
        "a",
        "abcde",
        "not base64 at all",
        "é",
        _b64(b"not json"),
        _b64(b"\xff\xfe\xfd"),
        _b64(b"{}"),
        _b64(b"[]"),
        _b64(b'"p"'),
        _b64(b"null"),
        _b64(b"42"),
        _b64(b'{"p":"x"}'),
        _b64(b'{"q":"x"}'),
    ],
)
def test_malformed_token_is_invalid_argument_naming_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_token(token, KEY)
    assert _fields(info.value) == ["page_token"]


def test_malformed_token_message_says_malformed() -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_token("!!!!", KEY)
    assert "malformed" in info.value.message


def test_token_from_another_query_is_invalid_argument() -> None:
    token = encode_token("0" * 32, query_key("acct-1", "state=FAILED"))
    with pytest.raises(InvalidArgument) as info:
        decode_token(token, KEY)
    assert _fields(info.value) == ["page_token"]
    assert "different query" in info.value.message


def test_token_from_another_caller_is_invalid_argument() -> None:
    token = encode_token("0" * 32, query_key("acct-2", "state=RUNNING"))
    with pytest.raises(InvalidArgument) as info:
        decode_token(token, KEY)
    assert _fields(info.value) == ["page_token"]


@pytest.mark.parametrize("position", [b"1", b"null", b"[]", b"{}", b"true"])
def test_token_with_non_string_position_is_invalid_argument(position: bytes) -> None:
    token = _b64(b'{"p":' + position + b',"q":"' + KEY.encode() + b'"}')
    with pytest.raises(InvalidArgument) as info:
        decode_token(token, KEY)
    assert _fields(info.value) == ["page_token"]


def test_deeply_nested_token_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_token(_b64(b"[" * 100_000), KEY)
    assert _fields(info.value) == ["page_token"]
