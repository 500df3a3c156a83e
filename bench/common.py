"""Shared bits: where things are, percentiles, and how figures are printed."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
FMCP = str(BIN / "fmcp")
SERVER_CORE = 0
LOAD_CORE = 1


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


def note(text: str) -> None:
    print(f"   ({text})", flush=True)


def figure(label: str, value: float, unit: str, decimals: int = 2) -> None:
    print(f"{label}: {value:,.{decimals}f} {unit}", flush=True)


def ratio(label: str, numerator: float, denominator: float) -> float:
    value = numerator / denominator if denominator else math.nan
    print(f"ratio {label}: {value:.3f}", flush=True)
    return value


def target(label: str, value: float, bound: float, *, at_least: bool) -> None:
    """A "target" line: informative only, benchmarks never fail on timings."""
    met = value >= bound if at_least else value <= bound
    sign = "≥" if at_least else "≤"
    verdict = "met" if met else "not met"
    print(f"target {label} {sign} {bound:g}: {verdict} ({value:.3f})", flush=True)
