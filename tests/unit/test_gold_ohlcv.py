"""The pure parts of the Gold jobs: exact VWAP from limb sums, late-row counting, range and size flags."""

from __future__ import annotations

import argparse
import random
from datetime import datetime, timezone
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest

from lakehouse.common.timefmt import parse_minute, spark_timestamp
from lakehouse.gold.chart import minute_tick_step, positive_pixels
from lakehouse.gold.bars import Bar, GoldBar, decimal_limbs, notional_terms, unscaled_18, vwap_from_terms
from lakehouse.gold.job import parse_args
from lakehouse.gold.table import GOLD_COLUMNS, gold_row

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
    assert (args.trigger, args.watermark, args.available_now, args.maintenance_every, args.max_files_per_trigger) == (
        "2000 milliseconds", None, False, 3600.0, 10)
    # what readers use first, in the order the README gives; then the state the writer folds more trades into; the
    # partition last, where delta-rs and polars put it too
    assert GOLD_COLUMNS == ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume", "vwap",
                            "trade_count", "is_open", "revision", "updated_at",
                            "open_key", "close_key", "notional_limbs", "silver_version", "bar_date"]


def test_bad_flags_are_refused(capsys):
    for argv in (["--watermark", "soon"], ["--maintenance-every", "sometimes"], ["--max-files-per-trigger", "0"]):
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
    from lakehouse.spark.progress import format_progress

    progress = {"batchId": 3, "numInputRows": 10, "processedRowsPerSecond": 5.0,
                "durationMs": {"triggerExecution": 900}, "sources": [{"endOffset": {"logOffset": 7}}]}
    assert format_progress(progress) == "batch=3 rows=10 rows/s=5 duration_ms=900 logOffset=7"


def test_chart_span_defaults_to_the_bars_it_shows():
    from lakehouse.gold.chart import Bar, describe_span

    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    bars = [Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 0), Bar(t0.replace(minute=9), 1, 1, 1, 1, 1, 1, 1, True, 0)]
    assert describe_span(None, None, bars) == "2026-01-01 00:00 to 2026-01-01 00:10 UTC"
    assert describe_span(t0.replace(minute=5), None, []) == "from 2026-01-01 00:05 UTC"
    assert describe_span(None, t0.replace(minute=5), []) == "until 2026-01-01 00:05 UTC"
    assert describe_span(None, None, []) == "all of Gold"


@pytest.mark.parametrize("minutes, step", [(1, 1), (10, 1), (11, 2), (40, 5), (100, 10), (300, 30), (1440, 60)])
def test_minute_tick_step_keeps_at_most_ten_labels(minutes: int, step: int) -> None:
    assert minute_tick_step(minutes) == step


def test_gold_row_holds_the_exact_vwap_the_state_and_gold_column_order():
    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    us = int(t0.timestamp()) * 1_000_000
    trades = [(Decimal("83744.3"), Decimal("0.00044780")), (Decimal("83744.1"), Decimal("0.12345678901234567"))]
    first = Bar.of_trade("XBT/USDT", (us + 5, 7, 0, 3), *trades[0], silver_version=4)
    bar = first.merged(Bar.of_trade("XBT/USDT", (us + 9, None, 1, 2), *trades[1], silver_version=5))
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    row = gold_row(GoldBar(bar, True, 2), now)
    assert len(row) == len(GOLD_COLUMNS)
    named = dict(zip(GOLD_COLUMNS, row))
    assert (named["symbol"], named["window_start"], named["window_end"], named["bar_date"]) == (
        "XBT/USDT", t0, t0.replace(minute=1), t0.date())
    assert (named["open"], named["close"], named["high"], named["low"]) == (
        Decimal("83744.3"), Decimal("83744.1"), Decimal("83744.3"), Decimal("83744.1"))
    assert named["volume"] == trades[0][1] + trades[1][1] and named["trade_count"] == 2
    assert named["vwap"] == fraction_vwap(trades)
    assert (named["is_open"], named["revision"], named["updated_at"], named["silver_version"]) == (True, 2, now, 5)
    assert (named["open_key"], named["close_key"]) == ((us + 5, 7, 0, 3), (us + 9, None, 1, 2))
    assert named["notional_limbs"] == [Decimal(t) for t in term_sums(trades)]
    assert vwap_from_terms([0] * 9, Decimal(0)) is None  # a bar without volume has no VWAP


def test_day_chunks_cut_at_utc_midnight():
    from lakehouse.gold.recompute import day_chunks

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
    from lakehouse.gold.chart import find_symbol

    assert find_symbol(typed, held) == found


def test_chart_bar_state():
    from lakehouse.gold.chart import Bar, bar_state

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, True, 0)) == "open"
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 0)) == "closed"
    assert bar_state(Bar(t0, 1, 1, 1, 1, 1, 1, 1, False, 2)) == "closed, revised 2"


def test_chart_table_shows_each_bars_exact_values_under_its_heading(tmp_path):
    """The page's table: one row per bar, every value under the heading it belongs to, decimals as written."""
    import re

    from lakehouse.gold.chart import Bar, render_html

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


def chart_bars():
    from lakehouse.gold.chart import Bar

    t0 = datetime(2026, 1, 1, 9, 30, tzinfo=timezone.utc)
    return [Bar(t0, Decimal("83740"), Decimal("83744"), Decimal("83739"), Decimal("83742"), Decimal("0.5"),
                Decimal("83741.5"), 7, False, 0),
            Bar(t0.replace(minute=31), Decimal("83742"), Decimal("83743"), Decimal("83738"), Decimal("83739"),
                Decimal("2"), None, 3, False, 0),
            Bar(t0.replace(minute=45), Decimal("83739"), Decimal("83739"), Decimal("83739"), Decimal("83739"),
                Decimal("1"), Decimal("83739"), 1, True, 0)]


def test_chart_draws_candles_vwap_and_volume_of_each_minute():
    import matplotlib.dates as mdates
    from matplotlib.colors import to_rgba
    from matplotlib.legend import Legend

    from lakehouse.gold.chart import draw_chart

    bars = chart_bars()
    fig = draw_chart(bars, "XBT/USDT 1-minute candles", 600, 400)
    price, volume = fig.axes
    middle = [mdates.date2num(bar.window_start) + 30 / 86400 for bar in bars]
    green, red = to_rgba("#26a69a"), to_rgba("#ef5350")
    body = pytest.approx(0.7 / 1440)
    assert (list(fig.get_size_inches() * fig.dpi), price.get_title()) == ([600, 400], "XBT/USDT 1-minute candles")
    assert (price.get_ylabel(), volume.get_ylabel()) == ("price", "volume")
    assert price.get_position().height == pytest.approx(3 * volume.get_position().height)
    assert price.get_shared_x_axes().joined(price, volume)
    assert [(r.get_x() + r.get_width() / 2, r.get_width(), r.get_y(), r.get_height(), r.get_facecolor())
            for r in price.patches] == [(pytest.approx(middle[0]), body, 83740, 2, green),
                                        (pytest.approx(middle[1]), body, 83739, 3, red),
                                        (pytest.approx(middle[2]), body, 83739, pytest.approx(6 * 0.004), green)]
    assert [(segment.tolist(), tuple(wick.get_colors()[0])) for wick in price.collections
            for segment in wick.get_segments()] == [
        ([[pytest.approx(middle[0]), 83739], [pytest.approx(middle[0]), 83744]], green),
        ([[pytest.approx(middle[1]), 83738], [pytest.approx(middle[1]), 83743]], red),
        ([[pytest.approx(middle[2]), 83739], [pytest.approx(middle[2]), 83739]], green)]
    assert [(r.get_x() + r.get_width() / 2, r.get_width(), r.get_y(), r.get_height(), r.get_facecolor())
            for r in volume.patches] == [(pytest.approx(middle[0]), body, 0, 0.5, green),
                                         (pytest.approx(middle[1]), body, 0, 2, red),
                                         (pytest.approx(middle[2]), body, 0, 1, green)]
    (vwap,) = price.lines
    assert (list(vwap.get_xdata()), list(vwap.get_ydata())) == ([pytest.approx(middle[0]), pytest.approx(middle[2])],
                                                                [83741.5, 83739])
    assert (vwap.get_marker(), vwap.get_color(), vwap.get_label()) == ("_", "#37474f", "VWAP")
    assert [text.get_text() for text in price.get_legend().get_texts()] == ["VWAP"]
    assert [list(wick.get_linewidths()) for wick in price.collections] == [[1], [1], [1]]
    assert (vwap.get_markersize(), vwap.get_markeredgewidth()) == (8, 2)
    legend = price.get_legend()
    assert (legend._loc, legend.get_texts()[0].get_fontsize()) == (Legend.codes["upper left"], pytest.approx(8.33))
    fig.canvas.draw()
    assert [label.get_text() for label in volume.get_xticklabels()][:3] == ["09:30", "09:32", "09:34"]
    assert {(label.get_rotation(), label.get_ha()) for label in volume.get_xticklabels()} == {(30, "right")}
    assert all(label.get_text().startswith("837") for label in price.get_yticklabels())
    assert {(line.get_visible(), line.get_alpha()) for axes in (price, volume) for axis in (axes.xaxis, axes.yaxis)
            for line in axis.get_gridlines()} == {(True, 0.3)}


@pytest.mark.parametrize("open_close, high, low, height", [
    ("100", "101", "99", 2 * 0.004),  # 0.4% of the price span
    ("100", "100", "100", 100 * 1e-4),  # one trade: no span, 0.01% of the price
    ("0", "0", "0", 1e-12),
])
def test_a_candle_without_body_stays_visible(open_close, high, low, height):
    from lakehouse.gold.chart import Bar, draw_chart

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    doji = Bar(t0, Decimal(open_close), Decimal(high), Decimal(low), Decimal(open_close), Decimal(1),
               Decimal(open_close), 1, False, 0)
    fig = draw_chart([doji], "t", 300, 200)
    (candle,), (vwap,) = fig.axes[0].patches, fig.axes[0].lines
    assert (list(fig.get_size_inches() * fig.dpi), candle.get_width(), candle.get_height()) == (
        [300, 200], pytest.approx(0.7 / 1440), pytest.approx(height))
    assert list(vwap.get_xdata()) == [pytest.approx(candle.get_x() + candle.get_width() / 2)]


def test_chart_png_has_the_requested_size(tmp_path):
    from lakehouse.gold.chart import render_png

    png = tmp_path / "chart.png"
    render_png(chart_bars(), "t", png, 640, 360)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (640, 360)


@pytest.mark.parametrize("typed, canonical", [
    ("XBT/USDT", "BTC/USDT"), (" xdg/usd ", "DOGE/USD"), ("eth/xbt", "ETH/BTC"), ("SOL/EUR", "SOL/EUR")])
def test_canonical_pair_spelling(typed, canonical):
    from lakehouse.gold.chart import canonical_pair

    assert canonical_pair(typed) == canonical


def test_chart_span_in_minutes_and_its_title_span():
    from lakehouse.gold.chart import describe_span, span_minutes

    bars = chart_bars()
    assert [span_minutes(bars), span_minutes(bars[:2]), span_minutes(bars[:1])] == [16, 2, 1]
    assert describe_span(None, None, bars) == "2026-01-01 09:30 to 2026-01-01 09:46 UTC"
    assert describe_span(bars[1].window_start, None, bars) == "2026-01-01 09:31 to 2026-01-01 09:46 UTC"


@pytest.mark.parametrize("minutes, step", [(100, 10), (101, 15), (150, 15), (151, 30), (300, 30), (301, 60)])
def test_minute_tick_step_at_each_boundary(minutes: int, step: int) -> None:
    assert minute_tick_step(minutes) == step


@pytest.mark.parametrize("text, pixels", [("50", 50), ("10000", 10000), ("49", None), ("10001", None), ("", None),
                                          ("1e3", None)])
def test_chart_size_is_50_to_10000_pixels(text, pixels):
    if pixels is not None:
        assert positive_pixels(text) == pixels
    else:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            positive_pixels(text)
        assert str(refused.value) == f"{text!r}: pixels between 50 and 10000"


def test_chart_page_is_the_png_and_a_table(tmp_path):
    from lakehouse.gold.chart import render_html

    png = tmp_path / "c.png"
    png.write_bytes(b"\x89PNG")
    page = render_html(chart_bars()[:2], "XBT/USDT <1m>", png)
    assert page == (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>XBT/USDT &lt;1m&gt;</title>'
        "<style>body{font-family:sans-serif}td{font-family:monospace;text-align:right;padding:0 .5em}</style>"
        "</head><body>\n<h1>XBT/USDT &lt;1m&gt;</h1>\n"
        '<img alt="XBT/USDT &lt;1m&gt;" src="data:image/png;base64,iVBORw==">\n'
        "<table><tr><th>minute (UTC)</th><th>open</th><th>high</th><th>low</th><th>close</th><th>volume</th>"
        "<th>vwap</th><th>trades</th><th>state</th></tr>\n"
        "<tr><td>2026-01-01 09:30</td><td>83740</td><td>83744</td><td>83739</td><td>83742</td><td>0.5</td>"
        "<td>83741.5</td><td>7</td><td>closed</td></tr>\n"
        "<tr><td>2026-01-01 09:31</td><td>83742</td><td>83743</td><td>83738</td><td>83739</td><td>2</td>"
        "<td>None</td><td>3</td><td>closed</td></tr>\n</table>\n</body></html>\n")


def gold_table(bars, symbol: str):
    import pyarrow as pa

    from lakehouse.gold.chart import BAR_COLUMNS

    price = pa.decimal128(38, 18)
    schema = pa.schema([("symbol", pa.string()), ("window_start", pa.timestamp("us", tz="UTC")), ("open", price),
                        ("high", price), ("low", price), ("close", price), ("volume", price), ("vwap", price),
                        ("trade_count", pa.int64()), ("is_open", pa.bool_()), ("revision", pa.int32())])
    columns = {"symbol": [symbol] * len(bars)} | {name: [getattr(bar, name) for bar in bars] for name in BAR_COLUMNS}
    return pa.table(columns, schema=schema)


def test_chart_reads_the_pairs_bars_in_the_range_oldest_first():
    import pyarrow as pa
    import pyarrow.dataset as ds

    from lakehouse.gold.chart import held_symbols, read_bars

    bars = chart_bars()
    dataset = ds.dataset(pa.concat_tables([gold_table(bars[::-1], "XBT/USDT"), gold_table(bars[:1], "ETH/USD"),
                                           gold_table(bars[1:2], "XBT/USDT").slice(0, 0)]))
    assert held_symbols(dataset) == ["ETH/USD", "XBT/USDT"]
    assert read_bars(dataset, "XBT/USDT", None, None) == bars
    assert read_bars(dataset, "XBT/USDT", bars[1].window_start, None) == bars[1:]
    assert read_bars(dataset, "XBT/USDT", None, bars[2].window_start) == bars[:2]
    assert read_bars(dataset, "XBT/USDT", bars[0].window_start, bars[1].window_start) == bars[:1]
    assert read_bars(dataset, "ETH/USD", bars[1].window_start, None) == []
    assert read_bars(dataset, "XBT/USDT", None, None)[0].window_start.tzinfo is not None


def test_chart_flags_defaults_and_refusals(capsys):
    from lakehouse.gold.chart import parse_args as chart_args

    args = chart_args(["--symbol", "XBT/USDT", "--png", "c.png"])
    assert vars(args) == {"gold": "data/gold/ohlcv_1m", "symbol": "XBT/USDT", "start": None, "end": None,
                          "png": Path("c.png"), "html": None, "width": 1200, "height": 700}
    args = chart_args(["--symbol", "X", "--png", "c.png", "--html", "c.html", "--from", "2026-01-01T00:00",
                       "--to", "2026-01-01T00:01", "--width", "300", "--height", "200", "--gold", "g"])
    assert (args.start, args.end, args.html, args.width, args.height, args.gold) == (
        datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc), Path("c.html"),
        300, 200, "g")
    for argv, error in [(["--png", "c.png"], "the following arguments are required: --symbol"),
                        (["--symbol", "X"], "the following arguments are required: --png"),
                        (["--symbol", "X", "--png", "c", "--from", "2026-01-01T00:01", "--to", "2026-01-01T00:01"],
                         "--to must be after --from"),
                        (["--symbol", "X", "--png", "c", "--width", "20"], "argument --width: '20': pixels between"),
                        (["--symbol", "X", "--png", "c", "--height", "20"], "argument --height: '20': pixels between"),
                        (["--symbol", "X", "--png", "c", "--from", "x"], "argument --from: 'x' is not a time"),
                        (["--symbol", "X", "--png", "c", "--to", "x"], "argument --to: 'x' is not a time")]:
        with pytest.raises(SystemExit) as exited:
            chart_args(argv)
        assert exited.value.code == 2 and error in capsys.readouterr().err
    assert chart_args(["--symbol", "X", "--png", "c", "--to", "2026-01-01T00:00"]).start is None
    assert chart_args(["--symbol", "X", "--png", "c", "--from", "2026-01-01T00:01"]).end is None


def test_chart_main_writes_the_png_and_page_or_says_why_not(tmp_path, caplog):
    from deltalake import write_deltalake

    from lakehouse.gold.chart import main as chart_main

    gold = str(tmp_path / "gold")
    bars = chart_bars()
    write_deltalake(gold, gold_table(bars, "XBT/USDT"))
    png, page = tmp_path / "out" / "c.png", tmp_path / "pages" / "c.html"
    base = ["--gold", gold, "--png", str(png), "--width", "300", "--height", "200"]
    caplog.set_level("INFO", logger="plot_ohlcv")
    assert chart_main([*base, "--symbol", "BTC/USDT", "--html", str(page), "--from", "2026-01-01T09:31"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "<title>XBT/USDT 1-minute candles, 2026-01-01 09:31 to 2026-01-01 09:46 UTC</title>" in page.read_text()
    assert page.read_text().count("<tr><td>2026-01-01 09:") == 2
    assert caplog.messages[-1] == f"rendered 2 bars of XBT/USDT to {png} and {page}"
    png.unlink()
    assert chart_main([*base, "--symbol", "XBT/USDT"]) == 0
    assert png.exists() and caplog.messages[-1] == f"rendered 3 bars of XBT/USDT to {png}"
    assert chart_main([*base, "--symbol", "ETH/USD"]) == 1
    assert caplog.messages[-1] == f"no bars for ETH/USD in {gold}; it holds XBT/USDT"
    assert chart_main([*base, "--symbol", "XBT/USDT", "--from", "2026-01-02T00:00"]) == 1
    assert caplog.messages[-1] == f"no bars for XBT/USDT in from 2026-01-02 00:00 UTC in {gold}"
    write_deltalake(gold, gold_table(bars, "XBT/USDT").slice(0, 0), mode="overwrite")
    assert chart_main([*base, "--symbol", "XBT/USDT"]) == 1
    assert caplog.messages[-1] == f"no bars for XBT/USDT in {gold}; it holds no bars yet"
    assert chart_main([*base, "--gold", str(tmp_path / "none"), "--symbol", "XBT/USDT"]) == 1
    assert caplog.messages[-1].startswith(f"cannot read Gold at {tmp_path / 'none'}: ")
