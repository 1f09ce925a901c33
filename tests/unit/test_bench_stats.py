"""The benchmarks' pure helpers (bench/bench_stats.py): exact percentiles, ratios, extrapolation and verdicts."""

from __future__ import annotations

import pytest

from bench.bench_stats import (fmt, latency_summary, median, own_times, per_hour, percentile, ratio, table,
                               verdict)


def test_percentile_interpolates_between_closest_ranks():
    values = [40, 10, 30, 20]  # sorted: 10 20 30 40
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == 25
    assert percentile(values, 99) == pytest.approx(39.7)


def test_percentile_of_one_value_and_of_nothing():
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_median_odd_and_even():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_ratio_handles_missing_and_zero_reference():
    assert ratio(30, 60) == 0.5
    assert ratio(None, 60) is None
    assert ratio(30, 0) is None


def test_latency_summary():
    s = latency_summary([float(i) for i in range(1, 101)])
    assert s["n"] == 100 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p99"] == pytest.approx(99.01)
    assert latency_summary([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_per_hour_extrapolates_linearly():
    assert per_hour(12, 30) == 1440
    assert per_hour(5, 0) is None


def test_verdict_both_directions():
    assert verdict(0.8, 0.7) == "met"
    assert verdict(0.6, 0.7) == "missed"
    assert verdict(15.0, 20.0, higher_is_better=False) == "met"
    assert verdict(None, 1.0) == "n/a"


def test_fmt_and_table():
    assert fmt(None) == "-"
    assert fmt(123456.7) == "123,457"
    assert fmt(0.71234) == "0.712"
    assert table([["a", 1.5]], ["name", "x"]).splitlines() == ["name  x", "----  ---", "a     1.5"]


def test_own_times_subtracts_nested_steps_and_keeps_the_total():
    inclusive = {"silver merge": 0.75, "gold fold": 1.5, "gold merge": 1.25}
    own = own_times(3.0, inclusive, {"gold merge": "gold fold"})
    assert own == {"silver merge": 0.75, "gold fold": 0.25, "gold merge": 1.25, "the rest": 0.75}
    assert sum(own.values()) == 3.0
    assert own_times(1.0, {}, {}) == {"the rest": 1.0}
