"""Pure helpers the benchmarks share: percentiles, medians, ratios, per-hour extrapolation, target verdicts, tables.

No I/O here (tests/unit/test_bench_stats.py covers these); the benchmarks' I/O helpers live in bench_common.py.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence


def percentile(values: Iterable[float], q: float) -> Optional[float]:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default); None if empty."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi:
        return float(data[lo])
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float]) -> Optional[float]:
    return percentile(values, 50)


def ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    """value / reference, or None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def latency_summary(values_ms: Sequence[float]) -> dict[str, Optional[float]]:
    """{n, p50, p95, p99, max} of latencies in milliseconds."""
    return {
        "n": len(values_ms),
        "p50": percentile(values_ms, 50),
        "p95": percentile(values_ms, 95),
        "p99": percentile(values_ms, 99),
        "max": max(values_ms) if values_ms else None,
    }


def per_hour(count: float, window_s: float) -> Optional[float]:
    """A count observed over window_s seconds, extrapolated linearly to one hour."""
    if window_s <= 0:
        return None
    return count * 3600.0 / window_s


def verdict(value: Optional[float], target: float, higher_is_better: bool = True) -> str:
    """'met' / 'missed' against a target ('n/a' without a value)."""
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "missed"


def fmt(value: Any, digits: int = 3) -> str:
    """Compact text for a figure: 12,345 for big numbers, 3 significant digits for small ones, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def own_times(total: float, inclusive: dict[str, float], parent: dict[str, str],
              rest: str = "the rest") -> dict[str, float]:
    """Split `total` (e.g. the CPU seconds of one call) among the steps timed inside it: each step's own time is its
    `inclusive` time minus that of the steps nested in it (`parent` maps a nested step to the step it runs in), and
    `rest` gets what no step covers. The parts add up to `total`."""
    own = dict(inclusive)
    for child, outer in parent.items():
        own[outer] -= inclusive.get(child, 0.0)
    own[rest] = total - sum(t for step, t in inclusive.items() if step not in parent)
    return own
