"""The garbage collector's young-generation threshold for the server processes.

Python collects the young generation every 700 allocations (net of deallocations) of objects
it tracks. A tool call allocates thousands (protobuf messages, dicts, futures, tasks), nearly
all of them gone once the call is answered, so by default the collector runs several times
per call and moves the objects of calls still in flight to the older generations, which are
then scanned again. With 20,000 it runs once every few calls, finds most of their objects
already freed, and moves fewer on: the API spent 7-10 % less CPU per call in the `calls`
benchmark (bench/README.md, 2026-12-04), for a young generation of a few MB at most. The
older generations keep Python's thresholds.
"""

from __future__ import annotations

import gc


def tune_collector(young_threshold: int) -> None:
    """Collect the young generation every `young_threshold` allocations."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
