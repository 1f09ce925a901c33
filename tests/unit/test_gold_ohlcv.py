"""The pure parts of the Gold jobs: exact VWAP from limb sums, late-row counting, range and size flags."""

from __future__ import annotations

import argparse
import random
from datetime import datetime, timezone
from decimal import Context, Decimal, localcontext
from fractions import Fraction

import pytest

from gold_ohlcv_batch import parse_minute, spark_timestamp
from plot_ohlcv import minute_tick_step, positive_pixels
from silver_to_gold_ohlcv import (GOLD_COLUMNS, decimal_limbs, notional_terms, parse_args,
                                  unscaled_18, vwap_from_terms)

MAX = Decimal("99999999999999999999.999999999999999999")  # the largest decimal(38,18)
EXACT = Context(prec=200)  # the default context keeps only 28 digits


def term_sums(trades: list[tuple[Decimal, Decimal]]) -> list[int]:
    sums = [0] * 9
    for price, size in trades:
        for k, term in enumerate(notional_terms(decimal_limbs(price), decimal_limbs(size))):
            sums[k] += term
    return sums


def fraction_vwap(trades: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Independent: exact Fractions, round() is half-even."""
    notional = sum(Fraction(p) * Fraction(s) for p, s in trades)
    volume = sum(Fraction(s) for _, s in trades)
    return Decimal(round(notional / volume * 10 ** 18)).scaleb(-18, context=EXACT)


@pytest.mark.parametrize("value", [Decimal(0), Decimal("83744.3"), Decimal("0.000000000000000001"), MAX, -MAX,
                                   Decimal("12345678901234567890.123456789012345678"), Decimal("-5.5")])
def test_limbs_rebuild_the_unscaled_value_and_stay_below_the_base(value):
    limbs = decimal_limbs(value)
    assert sum(limb * 10 ** (9 * k) for k, limb in enumerate(limbs)) == unscaled_18(value)
    assert all(abs(limb) < 10 ** 9 for limb in limbs)


def test_limb_terms_fit_a_bigint_even_for_the_largest_decimals():
    assert max(notional_terms(decimal_limbs(MAX), decimal_limbs(MAX))) < 2 ** 63 - 1


def test_unscaled_18_is_exact_beyond_28_digits_and_refuses_more_places():
    assert unscaled_18(MAX) == 10 ** 38 - 1
    with pytest.raises(ValueError, match="more than 18 decimal places"):
        unscaled_18(Decimal("0.0000000000000000001"))


def test_vwap_equals_the_exact_fraction_rounded_half_even():
    rng = random.Random(3)
    for _ in range(200):
        trades = [(Decimal(f"{rng.randint(0, 10**12)}.{rng.randint(0, 10**18 - 1):018d}"),
                   Decimal(f"{rng.randint(0, 10**6)}.{rng.randint(1, 10**18 - 1):018d}"))
                  for _ in range(rng.randint(1, 30))]
        with localcontext(EXACT):
            volume = sum((s for _, s in trades), Decimal(0))
        assert vwap_from_terms(term_sums(trades), volume) == fraction_vwap(trades)


@pytest.mark.parametrize("price, expected", [
    ("0.0000000000000000005", "0E-18"),  # exactly half of the last place: to even (0)
    ("0.0000000000000000015", "2E-18"),  # exactly half: to even (2)
    ("0.0000000000000000025", "2E-18"),
])
def test_vwap_ties_round_half_even(price, expected):
    # (2p * 1 + 0 * 1) / 2 = p exactly, which lies half-way between two values at 18 places
    p = Decimal(price)
    trades = [(2 * p, Decimal(1)), (Decimal(0), Decimal(1))]
    assert vwap_from_terms(term_sums(trades), Decimal(2)) == Decimal(expected)


def test_vwap_of_the_largest_values_and_of_no_volume():
    assert vwap_from_terms(term_sums([(MAX, MAX)]), MAX) == MAX
    assert vwap_from_terms([0] * 9, Decimal(0)) is None
    assert vwap_from_terms([0] * 9, None) is None


def test_job_flags_have_the_documented_defaults():
    args = parse_args([])
    assert (args.silver, args.out, args.checkpoint) == (
        "data/silver/crypto_trades", "data/gold/ohlcv_1m", "data/checkpoints/silver_to_gold_ohlcv")
    assert (args.trigger, args.watermark, args.available_now) == ("2000 milliseconds", "120000 milliseconds", False)
    assert GOLD_COLUMNS == ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume", "vwap",
                            "trade_count"]


def test_bad_watermark_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--watermark", "soon"])
    assert exit_info.value.code == 2 and "--watermark" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["2026-01-01T00:05", "2026-01-01 00:05:00", "2026-01-01T00:05Z",
                                  "2026-01-01T01:05+01:00"])
def test_parse_minute_is_utc(text):
    assert parse_minute(text) == datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    assert spark_timestamp(parse_minute(text)) == "2026-01-01 00:05:00"


@pytest.mark.parametrize("text", ["2026-01-01T00:05:30", "yesterday", "2026-01-01T00:05:00.5"])
def test_parse_minute_refuses_non_minutes(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_minute(text)


def test_positive_pixels():
    assert positive_pixels("900") == 900
    for text in ("0", "-5", "abc", "20000"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_pixels(text)


def test_progress_line_of_a_file_source_query():
    """Gold reads Silver with a file source, whose end offset is {"logOffset": N} (it crashed the progress log)."""
    from streaming_common import format_progress

    progress = {"batchId": 3, "numInputRows": 10, "processedRowsPerSecond": 5.0,
                "durationMs": {"triggerExecution": 900}, "sources": [{"endOffset": {"logOffset": 7}}]}
    assert format_progress(progress) == "batch=3 rows=10 rows/s=5 duration_ms=900 logOffset=7"


def test_chart_span_defaults_to_the_bars_it_shows():
    from plot_ohlcv import Bar, describe_span

    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    bars = [Bar(t0, 1, 1, 1, 1, 1, 1, 1), Bar(t0.replace(minute=9), 1, 1, 1, 1, 1, 1, 1)]
    assert describe_span(None, None, bars) == "2026-01-01 00:00 to 2026-01-01 00:10 UTC"
    assert describe_span(t0.replace(minute=5), None, []) == "2026-01-01 00:05 to ... UTC"


@pytest.mark.parametrize("minutes, step", [(1, 1), (10, 1), (11, 2), (40, 5), (100, 10), (300, 30), (1440, 60)])
def test_minute_tick_step_keeps_at_most_ten_labels(minutes: int, step: int) -> None:
    assert minute_tick_step(minutes) == step
