"""Shared helpers of the benchmarks: percentiles and writing results."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def hist_percentile(histogram: dict[int, int], pct: float) -> int:
    """The `pct` percentile of a histogram {value: count} (0 when it is empty)."""
    total = sum(histogram.values())
    if not total:
        return 0
    rank, seen = pct / 100 * total, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def write_result(name: str, data: dict) -> Path:
    """bench/results/<name>.json with the machine and time of the run."""
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "machine": platform.machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path
