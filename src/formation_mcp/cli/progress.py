"""Showing an operation's progress on stderr (stdout stays the command's result).

On a terminal: one line redrawn in place, a bar with the percentage, the stage and the latest
log line, cut to the terminal's width. Elsewhere (logs, CI, pipes): plain lines, one when the
percentage, stage or status message changes and one per log line, so nothing is lost.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from formation_mcp.client.models import Operation

BAR_WIDTH = 24


class ProgressDisplay:
    def __init__(self, stream: TextIO, terminal: bool) -> None:
        self._stream = stream
        self._terminal = terminal
        self._last_state: tuple[int, str, str, str] | None = None
        self._latest_log = ""
        self._drawn = False
        self._paused = False
        self._latest: Operation | None = None

    def update(self, operation: Operation) -> None:
        meta = operation.metadata
        state = (meta.progress_percent, meta.stage, meta.status_message, meta.state)
        if self._terminal:
            if meta.logs:
                self._latest_log = meta.logs[-1].text
            self._latest = operation
            if not self._paused:
                self._draw(operation)
            return
        if state != self._last_state:
            self._last_state = state
            detail = " ".join(p for p in (meta.stage, meta.status_message) if p)
            self._write(
                f"[{meta.progress_percent:3d}%] {meta.state}" + (f" {detail}" if detail else "")
            )
        for line in meta.logs:
            self._write(f"  | {line.text}")

    def _draw(self, operation: Operation) -> None:
        meta = operation.metadata
        filled = BAR_WIDTH * max(0, min(meta.progress_percent, 100)) // 100
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        parts = [f"[{bar}] {meta.progress_percent:3d}%", meta.stage or meta.state.lower()]
        if self._latest_log:
            parts.append(self._latest_log)
        width = shutil.get_terminal_size((80, 24)).columns - 1
        text = "  ".join(parts).replace("\n", " ")[:width]
        self._stream.write("\r\x1b[K" + text)
        self._stream.flush()
        self._drawn = True

    def pause(self) -> None:
        """Stop drawing (a question is on the terminal); updates are kept for `resume`."""
        self.finish()
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        if self._terminal and self._latest is not None:
            self._draw(self._latest)

    def finish(self) -> None:
        """End the redrawn line (on a terminal) before anything else is printed."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def _write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
