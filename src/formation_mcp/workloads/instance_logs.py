"""Reading an instance's output log (written by its supervisor, see
`scripts/supervisor_process.py`): records `<time us> <o|e|s> <text>`, in `output.log.1` then
`output.log`, and `output.dropped` (the bytes rotations dropped before `output.log.1`).

Every record has an offset: its position in everything the instance ever wrote, so offsets
never move when the log rotates. A cursor is such an offset; the answers here are bounded
(lines, bytes) and say what they left out.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from formation_mcp.workloads.instances import rfc3339

LOG_FILE: Final = "output.log"
DROPPED_FILE: Final = "output.dropped"
STREAMS: Final = {b"o": "stdout", b"e": "stderr", b"s": "system"}
MAX_LINE_CHARS: Final = 2000
"""A line longer than this is cut (with a marker) in answers."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    offset: int
    """Where the record starts in everything the instance wrote (bytes)."""
    end: int
    """Where the next record starts."""
    time_us: int
    """0 when not known (a log from before records had times)."""
    stream: str
    text: str

    @property
    def size(self) -> int:
        return self.end - self.offset

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"stream": self.stream, "text": self.text}
        if self.time_us:
            line["time"] = rfc3339(self.time_us)
        return line


@dataclass(frozen=True, slots=True)
class InstanceLog:
    records: list[LogRecord]
    start: int
    """The offset of the oldest byte kept (everything before it was dropped)."""
    end: int
    """The offset after the newest record."""


def read_dropped(directory: Path) -> int:
    try:
        return int((directory / DROPPED_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def parse_record(raw: bytes, offset: int) -> LogRecord:
    body = raw.rstrip(b"\n")
    time_text, _, rest = body.partition(b" ")
    stream, _, text = rest.partition(b" ")
    if time_text.isdigit() and stream in STREAMS and rest[1:2] == b" ":
        when, kind, content = int(time_text), STREAMS[stream], text
    else:  # not a record (cut by a rotation, or written before records): the bare text
        when, kind, content = 0, "stdout", body
    decoded = content.decode("utf-8", "replace")
    if len(decoded) > MAX_LINE_CHARS:
        decoded = decoded[: MAX_LINE_CHARS - 1] + "…"
    return LogRecord(offset, offset + len(raw), when, kind, decoded)


def read_log(directory: Path, after: int | None = None) -> InstanceLog:
    """The records kept, oldest first; with `after`, only those at or after that offset
    (reading from there, not from the start)."""
    start = read_dropped(directory)
    records: list[LogRecord] = []
    offset = start
    for path in (directory / f"{LOG_FILE}.1", directory / LOG_FILE):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        skip = 0 if after is None else min(max(after - offset, 0), size)
        if skip == size:  # nothing wanted in this file
            offset += size
            continue
        with contextlib.suppress(OSError), path.open("rb") as handle:
            handle.seek(skip)
            position = offset + skip
            for raw in handle:
                records.append(parse_record(raw, position))
                position += len(raw)
            offset = position
    return InstanceLog(records, start, max(offset, start))


def log_tail(directory: Path, lines: int) -> list[str]:
    """The text of the last `lines` records (both log generations)."""
    tail: deque[str] = deque(maxlen=lines)
    for path in (directory / f"{LOG_FILE}.1", directory / LOG_FILE):
        with contextlib.suppress(OSError), path.open("rb") as handle:
            for raw in handle:
                tail.append(parse_record(raw, 0).text)
    return list(tail)


@dataclass(frozen=True, slots=True)
class LogQuery:
    tail: int
    since_us: int | None
    stream: str
    """stdout, stderr or all."""
    after: int | None
    """A cursor: read the records at or after this offset (forward), not the tail."""
    max_bytes: int


@dataclass(frozen=True, slots=True)
class LogAnswer:
    lines: list[LogRecord]
    next_offset: int
    """Where the next call continues (after the last line given)."""
    truncated: bool
    lines_left_out: int
    bytes_left_out: int
    dropped_bytes: int
    """Output dropped (oldest first, by the size cap) before the first line given."""


def select(log: InstanceLog, query: LogQuery) -> LogAnswer:
    """The lines the query asks for, oldest first, within `max_bytes`.

    The window: without a cursor, the last `tail` lines that pass `since` and `stream`; with
    one, the first `tail` such lines at or after it. Lines of the window that do not fit in
    `max_bytes` are left out from the newest end; they, and with a cursor the lines after the
    window, are counted as left out, and `next_offset` is the first of them (or, when nothing
    was left out, the end of the log, so the next call returns only new lines)."""
    wanted = [
        record
        for record in log.records
        if (query.after is None or record.offset >= query.after)
        and (query.since_us is None or record.time_us >= query.since_us)
        and (query.stream == "all" or record.stream in (query.stream, "system"))
    ]
    if query.after is None:
        window, beyond = wanted[-query.tail :], []
        reaches_oldest = len(window) == len(wanted)
    else:
        window, beyond = wanted[: query.tail], wanted[query.tail :]
        reaches_oldest = query.after <= log.start
    given: list[LogRecord] = []
    used = 0
    for record in window:
        used += len(record.text.encode()) + 48  # the text and the line's JSON around it
        if used > query.max_bytes:
            break
        given.append(record)
    left = window[len(given) :] + beyond
    return LogAnswer(
        lines=given,
        next_offset=left[0].offset if left else log.end,
        truncated=bool(left),
        lines_left_out=len(left),
        bytes_left_out=sum(record.size for record in left),
        dropped_bytes=log.start if reaches_oldest and query.since_us is None else 0,
    )
