"""tune_collector: the young generation's threshold changes, the older ones' do not."""

from __future__ import annotations

import gc

from formation_mcp.gc_tuning import tune_collector


def test_the_young_threshold_is_set_and_the_older_ones_are_kept() -> None:
    before = gc.get_threshold()
    try:
        tune_collector(12_345)
        assert gc.get_threshold() == (12_345, before[1], before[2])
    finally:
        gc.set_threshold(*before)
