"""Operation ids and names.

An id is 32 lowercase hex characters laid out like a UUIDv7: 48 bits of Unix milliseconds,
then a 12-bit counter that keeps ids from one process strictly increasing within a
millisecond, then 68 random bits. Sorting ids sorts by creation time, which is what keyset
paging ("newest first") relies on.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

from formation_mcp.errors import InvalidArgument

NAME_PREFIX = "operations/"
_ID = re.compile(r"[0-9a-f]{32}")


class _IdGenerator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def new_id(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
            else:
                self._last_ms, self._counter = now_ms, 0
            ms, counter = self._last_ms, self._counter
        value = (ms << 80) | (counter << 68) | secrets.randbits(68)
        return f"{value:032x}"


new_operation_id = _IdGenerator().new_id


def operation_name(operation_id: str) -> str:
    return NAME_PREFIX + operation_id


def parse_operation_name(name: str, field: str = "name") -> str:
    """The id in `operations/{id}`; INVALID_ARGUMENT naming `field` when malformed."""
    if not name:
        raise InvalidArgument.for_field(field, "required: an operation name, operations/{id}")
    operation_id = name.removeprefix(NAME_PREFIX)
    if operation_id == name or not _ID.fullmatch(operation_id):
        raise InvalidArgument.for_field(
            field,
            f"{name!r} is not an operation name; expected operations/ followed by "
            "32 lowercase hex characters",
        )
    return operation_id
