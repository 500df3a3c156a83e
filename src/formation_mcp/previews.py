"""Short previews of values for error messages, at a cost bounded by the preview's length.

`preview(value)` writes `value` as JSON would, piece by piece, and stops once `limit`
characters are out. It never serializes the whole value first and clips afterwards: a value
a YAML alias expanded to millions of entries, a megabyte string, a list nested a thousand
deep, a self-referencing list or a 5,000-digit number all cost about as much as a short one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Set
from typing import Final

DEFAULT_LIMIT: Final = 60
ELLIPSIS: Final = "..."
_LONG_NUMBER_BITS: Final = 200
"""Numbers longer than this (about 60 digits) are described, not written out: converting a
huge int to text costs time quadratic in its length."""


class _Raw(str):
    """Punctuation written as it is (a plain `str` piece is a string value, JSON-quoted)."""

    __slots__ = ()


_END: Final = object()


def preview(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as JSON, at most `limit` characters; longer ones end in `...`."""
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value, limit):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    text = "".join(pieces)
    return text if len(text) <= limit else text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def _pieces(value: object, limit: int) -> Iterator[str]:
    """The JSON text of `value` in pieces, walking it with a stack of open containers."""
    stack: list[Iterator[object]] = [iter((value,))]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, _Raw):
            yield item
        elif isinstance(item, Mapping):
            stack.append(_mapping_parts(item, limit))
        elif isinstance(item, list | tuple | Set):
            stack.append(_list_parts(item))
        else:
            yield _scalar(item, limit)


def _list_parts(items: list[object] | tuple[object, ...] | Set[object]) -> Iterator[object]:
    yield _Raw("[")
    for index, item in enumerate(items):
        if index:
            yield _Raw(", ")
        yield item
    yield _Raw("]")


def _mapping_parts(mapping: Mapping[object, object], limit: int) -> Iterator[object]:
    yield _Raw("{")
    for index, (key, item) in enumerate(mapping.items()):
        if index:
            yield _Raw(", ")
        key_text = key if isinstance(key, str) else _scalar(key, limit)
        yield _Raw(_scalar(key_text, limit) + ": ")
        yield item
    yield _Raw("}")


def _scalar(value: object, limit: int) -> str:
    """One scalar as JSON; a long string is cut to `limit` characters before it is quoted."""
    if isinstance(value, str):
        return json.dumps(value[: limit + 1], ensure_ascii=False)
    if value is None or isinstance(value, bool | float):
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > _LONG_NUMBER_BITS:
            return f"<a number of {value.bit_length()} bits>"
        return str(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if type(value).__module__ == "datetime":  # YAML timestamps
        return json.dumps(str(value))
    return f"<{type(value).__name__}>"
