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
    assert (args.trigger, args.watermark, args.available_now, args.maintenance_every) == (
        "2000 milliseconds", None, False, 3600.0)
    assert GOLD_COLUMNS == ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume", "vwap",
                            "trade_count", "is_open", "revision", "updated_at", "bar_date"]


def test_bad_flags_are_refused(capsys):
    for argv in (["--watermark", "soon"], ["--maintenance-every", "sometimes"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(argv)
        assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


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
    bars = [Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 0), Bar(t0.replace(minute=9), 1, 1, 1, 1, 1, 1, 1, True, 0)]
    assert describe_span(None, None, bars) == "2026-01-01 00:00 to 2026-01-01 00:10 UTC"
    assert describe_span(t0.replace(minute=5), None, []) == "from 2026-01-01 00:05 UTC"
    assert describe_span(None, t0.replace(minute=5), []) == "until 2026-01-01 00:05 UTC"
    assert describe_span(None, None, []) == "all of Gold"


@pytest.mark.parametrize("minutes, step", [(1, 1), (10, 1), (11, 2), (40, 5), (100, 10), (300, 30), (1440, 60)])
def test_minute_tick_step_keeps_at_most_ten_labels(minutes: int, step: int) -> None:
    assert minute_tick_step(minutes) == step


def test_finish_bars_computes_the_exact_vwap_and_marks_the_newest_minute_open():
    from silver_to_gold_ohlcv import EPOCH, finish_bars

    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    trades = [(Decimal("83744.3"), Decimal("0.00044780")), (Decimal("83744.1"), Decimal("0.12345678901234567"))]
    sums = term_sums(trades)

    def row(symbol, start, **values):
        us = int((start - EPOCH).total_seconds()) * 1_000_000
        return {"symbol": symbol, "window_start_us": us, "window_end_us": us + 60_000_000, "open": Decimal(1),
                "high": Decimal(2), "low": Decimal("0.5"), "close": Decimal(1), "volume": values["volume"],
                "trade_count": 2, **{f"_n{k}": s for k, s in enumerate(values["sums"])}}

    volume = trades[0][1] + trades[1][1]
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    bars = finish_bars([row("XBT/USDT", t0, volume=volume, sums=sums),
                        row("XBT/USDT", t0.replace(minute=1), volume=volume, sums=sums),
                        row("ETH/USD", t0, volume=Decimal(0), sums=[0] * 9)],
                       newest={"XBT/USDT": t0.replace(minute=1), "ETH/USD": t0}, updated_at=now)
    assert [(b[0], b[1], b[2], b[8], b[10], b[11], b[12], b[13]) for b in bars] == [
        ("XBT/USDT", t0, t0.replace(minute=1), fraction_vwap(trades), False, 0, now, t0.date()),
        ("XBT/USDT", t0.replace(minute=1), t0.replace(minute=2), fraction_vwap(trades), True, 0, now, t0.date()),
        ("ETH/USD", t0, t0.replace(minute=1), None, True, 0, now, t0.date()),  # no volume: no VWAP
    ]
    assert len(bars[0]) == len(GOLD_COLUMNS)


def test_merge_bars_sql_updates_changed_bars_and_counts_revisions():
    from silver_to_gold_ohlcv import merge_bars_sql

    sql = merge_bars_sql("/lake/gold", "gold_batch", ["2026-01-01"])
    assert sql.startswith("MERGE INTO delta.`/lake/gold` AS t USING gold_batch AS s ON t.bar_date IN ('2026-01-01') "
                          "AND t.symbol = s.symbol AND t.bar_date = s.bar_date AND t.window_start = s.window_start ")
    changed = ("NOT (t.open <=> s.open) OR NOT (t.high <=> s.high) OR NOT (t.low <=> s.low) OR NOT (t.close <=> "
               "s.close) OR NOT (t.volume <=> s.volume) OR NOT (t.vwap <=> s.vwap) OR NOT (t.trade_count <=> "
               "s.trade_count)")
    assert f"WHEN MATCHED AND ({changed} OR t.is_open <> s.is_open) THEN UPDATE SET" in sql
    assert f"t.revision = t.revision + CASE WHEN {changed} THEN 1 ELSE 0 END" in sql
    assert "t.is_open = s.is_open, t.updated_at = s.updated_at" in sql
    assert sql.endswith("WHEN NOT MATCHED THEN INSERT *")


def test_minute_filter_prunes_by_date_and_per_symbol_span():
    from silver_to_gold_ohlcv import minute_filter

    t0 = datetime(2026, 1, 1, 23, 59, tzinfo=timezone.utc)
    keys = {"XBT/USDT": {t0, t0.replace(hour=23, minute=30)}, "ETH/USD": {datetime(2026, 1, 2, 0, 1,
                                                                                    tzinfo=timezone.utc)}}
    assert minute_filter(keys) == (
        "trade_date IN ('2026-01-01', '2026-01-02') AND ("
        "(symbol = 'ETH/USD' AND ts_event >= TIMESTAMP '2026-01-02 00:01:00.000000' AND ts_event < TIMESTAMP "
        "'2026-01-02 00:02:00.000000') OR "
        "(symbol = 'XBT/USDT' AND ts_event >= TIMESTAMP '2026-01-01 23:30:00.000000' AND ts_event < TIMESTAMP "
        "'2026-01-02 00:00:00.000000'))")


def test_day_chunks_cut_at_utc_midnight():
    from gold_ohlcv_batch import day_chunks

    start = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)
    end = datetime(2026, 1, 3, 2, 0, tzinfo=timezone.utc)
    midnight = [datetime(2026, 1, d, tzinfo=timezone.utc) for d in (2, 3)]
    assert list(day_chunks(start, end)) == [(start, midnight[0]), (midnight[0], midnight[1]), (midnight[1], end)]
    assert list(day_chunks(start, start.replace(minute=31))) == [(start, start.replace(minute=31))]


@pytest.mark.parametrize("typed, held, found", [
    ("XBT/USDT", ["XBT/USDT", "ETH/USD"], "XBT/USDT"),
    ("BTC/USDT", ["XBT/USDT", "ETH/USD"], "XBT/USDT"),
    ("xbt/usdt", ["BTC/USDT"], "BTC/USDT"),
    ("DOGE/USD", ["XDG/USD"], "XDG/USD"),
    ("ETH/XBT", ["ETH/BTC"], "ETH/BTC"),  # the quote asset too
    ("DOGE/USD", ["XBT/USDT"], None),
])
def test_chart_finds_a_pair_in_either_spelling(typed, held, found):
    from plot_ohlcv import find_symbol

    assert find_symbol(typed, held) == found


def test_chart_bar_state():
    from plot_ohlcv import Bar, bar_state

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, True, 0)) == "open"
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 0)) == "closed"
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 2)) == "closed, revised 2"


def test_chart_table_shows_each_bars_exact_values_under_its_heading(tmp_path):
    """The page's table: one row per bar, every value under the heading it belongs to, decimals as written."""
    import re

    from plot_ohlcv import Bar, render_html

    png = tmp_path / "c.png"
    png.write_bytes(b"\x89PNG")
    t0 = datetime(2026, 1, 1, 9, 30, tzinfo=timezone.utc)
    bars = [Bar(t0, Decimal("100.5"), Decimal("101.25"), Decimal("99.75"), Decimal("100"), Decimal("0.5"),
                Decimal("100.1"), 7, False, 1),
            Bar(t0.replace(minute=31), Decimal("1"), Decimal("3"), Decimal("0.5"), Decimal("2"), Decimal("4"),
                Decimal("1.5"), 2, True, 0)]
    page = render_html(bars, "BTC/USD <1m>", png)
    heads = re.findall(r"<th>(.*?)</th>", page)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(<td>.*?)</tr>", page)]
    assert heads == ["minute (UTC)", "open", "high", "low", "close", "volume", "vwap", "trades", "state"]
    assert [dict(zip(heads, row)) for row in rows] == [
        {"minute (UTC)": "2026-01-01 09:30", "open": "100.5", "high": "101.25", "low": "99.75", "close": "100",
         "volume": "0.5", "vwap": "100.1", "trades": "7", "state": "closed, revised 1"},
        {"minute (UTC)": "2026-01-01 09:31", "open": "1", "high": "3", "low": "0.5", "close": "2", "volume": "4",
         "vwap": "1.5", "trades": "2", "state": "open"}]
    assert "<title>BTC/USD &lt;1m&gt;</title>" in page and 'src="data:image/png;base64,iVBORw==' in page
