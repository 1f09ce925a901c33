"""Chart: the 1-minute candles and volume of one pair over a time range, from Gold, as a PNG (and an HTML page with the
PNG and the bars' exact values, if --html is given).

Gold is a Delta table, read here without Spark or a JVM (lakehouse/lake/reader.py: deltalake lists the files,
pyarrow reads them), well under a second. The pair may be given in either of Kraken's spellings (XBT/USDT or
BTC/USDT, XDG/USD or DOGE/USD): it is found however the producer's --pair spelled it; an unknown pair gets the list of
those Gold holds. The bars' values stay exact Decimals in the HTML table; only the drawing converts them to floats for
pixel positions.

Usage (examples in the entry point's docstring, spark/jobs/plot_ohlcv.py):
    python spark/jobs/plot_ohlcv.py --help

Exit codes: 0 written; 1 no bars for the pair in the range; 2 a bad flag.
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from lakehouse.common.logs import configure_logging
from lakehouse.common.timefmt import parse_minute
from lakehouse.defaults import GOLD_PATH
from lakehouse.lake.reader import TableUnreadable, open_table

DEFAULT_WIDTH, DEFAULT_HEIGHT, DPI = 1200, 700, 100
UP, DOWN, VWAP_COLOR = "#26a69a", "#ef5350", "#37474f"
# Kraken's two spellings of the same assets (API v1 / REST and API v2).
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}

log = logging.getLogger("plot_ohlcv")


class Bar(NamedTuple):
    window_start: datetime
    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any
    vwap: Any
    trade_count: int
    is_open: bool
    revision: int


BAR_COLUMNS = ["window_start", "open", "high", "low", "close", "volume", "vwap", "trade_count", "is_open", "revision"]


def canonical_pair(pair: str) -> str:
    """One spelling per pair, to compare what a user typed with what Gold holds: 'xbt/usdt' -> 'BTC/USDT'."""
    return "/".join(ASSET_ALIASES.get(asset, asset) for asset in pair.strip().upper().split("/"))


def find_symbol(wanted: str, held: list[str]) -> str | None:
    """The symbol Gold holds for the pair `wanted` in either spelling (exact spelling first), or None."""
    if wanted in held:
        return wanted
    return next((symbol for symbol in sorted(held) if canonical_pair(symbol) == canonical_pair(wanted)), None)


def held_symbols(dataset) -> list[str]:
    import pyarrow.compute as pc

    return sorted(pc.unique(dataset.to_table(columns=["symbol"])["symbol"]).to_pylist())


def read_bars(dataset, symbol: str, start: datetime | None, end: datetime | None) -> list[Bar]:
    """The pair's bars with window_start in [start, end) (an open side when None), oldest first, window_start as an
    aware UTC datetime."""
    import pyarrow.dataset as ds

    wanted = ds.field("symbol") == symbol
    if start is not None:
        wanted &= ds.field("window_start") >= start
    if end is not None:
        wanted &= ds.field("window_start") < end
    table = dataset.to_table(filter=wanted, columns=BAR_COLUMNS).sort_by("window_start")
    columns = [table[name].to_pylist() for name in BAR_COLUMNS]
    return [Bar(*values) for values in zip(*columns)]


def describe_span(start: datetime | None, end: datetime | None, bars: list[Bar]) -> str:
    """'2026-01-01 00:00 to 2026-01-01 00:20 UTC'; an open side is the first bar's start / the last bar's end, or
    left out when there are no bars ('from 2026-01-01 00:05 UTC', 'all of Gold')."""
    first = start or (bars[0].window_start if bars else None)
    last = end or (bars[-1].window_start + timedelta(minutes=1) if bars else None)
    if first and last:
        return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    if first:
        return f"from {first:%Y-%m-%d %H:%M} UTC"
    return f"until {last:%Y-%m-%d %H:%M} UTC" if last else "all of Gold"


def render_png(bars: list[Bar], title: str, path: Path, width: int, height: int) -> None:
    """The chart (draw_chart) as a PNG file of exactly width x height pixels."""
    import matplotlib.pyplot as plt

    fig = draw_chart(bars, title, width, height)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)


def draw_chart(bars: list[Bar], title: str, width: int, height: int):
    """A matplotlib Figure of width x height pixels: candles (up green, down red) with each minute's VWAP as a dash,
    above volume bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, (ax_price, ax_volume) = plt.subplots(2, 1, sharex=True, figsize=(width / DPI, height / DPI), dpi=DPI,
                                              gridspec_kw={"height_ratios": [3, 1]})
    body_width = 0.7 / (24 * 60)  # 70% of a minute, in days (matplotlib's date unit)
    price_span = float(max(bar.high for bar in bars)) - float(min(bar.low for bar in bars))
    min_body = price_span * 0.004 or abs(float(bars[0].high)) * 1e-4 or 1e-12  # keep doji / one-trade bars visible
    for bar in bars:
        x = mdates.date2num(bar.window_start + timedelta(seconds=30))
        color = UP if bar.close >= bar.open else DOWN
        ax_price.vlines(x, float(bar.low), float(bar.high), color=color, linewidth=1)
        bottom, top = sorted((float(bar.open), float(bar.close)))
        ax_price.bar(x, max(top - bottom, min_body), bottom=bottom, width=body_width, color=color)
        ax_volume.bar(x, float(bar.volume), width=body_width, color=color)
    with_vwap = [bar for bar in bars if bar.vwap is not None]
    ax_price.plot([mdates.date2num(bar.window_start + timedelta(seconds=30)) for bar in with_vwap],
                  [float(bar.vwap) for bar in with_vwap], "_", color=VWAP_COLOR, markersize=8, markeredgewidth=2,
                  label="VWAP")
    ax_price.legend(loc="upper left", fontsize="small")
    ax_price.set_title(title)
    ax_price.set_ylabel("price")
    ax_volume.set_ylabel("volume")
    ax_price.grid(alpha=0.3)
    ax_volume.grid(alpha=0.3)
    ax_price.ticklabel_format(axis="y", style="plain", useOffset=False)  # prices as prices, not "+8.374e4"
    ax_volume.xaxis.set_major_locator(mdates.MinuteLocator(interval=minute_tick_step(span_minutes(bars)), tz=timezone.utc))
    ax_volume.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    fig.autofmt_xdate()
    return fig


def span_minutes(bars: list[Bar]) -> int:
    """Minutes from the first bar's start to the last bar's end (empty minutes included)."""
    return int((bars[-1].window_start - bars[0].window_start).total_seconds() // 60) + 1


def minute_tick_step(minutes: int, max_ticks: int = 10) -> int:
    """A tick every 1, 2, 5, 10, 15, 30 or 60 minutes: the smallest that keeps the axis under max_ticks labels."""
    return next((step for step in (1, 2, 5, 10, 15, 30) if minutes / step <= max_ticks), 60)


def render_html(bars: list[Bar], title: str, png: Path) -> str:
    """A self-contained page: the PNG inline and a table of the bars' exact values."""
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    head = "".join(f"<th>{name}</th>" for name in
                   ("minute (UTC)", "open", "high", "low", "close", "volume", "vwap", "trades", "state"))
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            bar.window_start.strftime("%Y-%m-%d %H:%M"), bar.open, bar.high, bar.low, bar.close, bar.volume,
            bar.vwap, bar.trade_count, bar_state(bar))) + "</tr>"
        for bar in bars)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}td{font-family:monospace;text-align:right;padding:0 .5em}</style>"
            f"</head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{image}\">\n"
            f"<table><tr>{head}</tr>\n{rows}\n</table>\n</body></html>\n")


def bar_state(bar: Bar) -> str:
    """'open' for the pair's newest minute, else 'closed'; ', revised N' when late trades changed it N times."""
    state = "open" if bar.is_open else "closed"
    return f"{state}, revised {bar.revision}" if bar.revision else state


def positive_pixels(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 50 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"{text!r}: pixels between 50 and 10000")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", default=GOLD_PATH, help="Gold bars Delta table (default %(default)s)")
    parser.add_argument("--symbol", required=True, help="the pair, e.g. XBT/USDT or BTC/USDT (either spelling)")
    parser.add_argument("--from", dest="start", type=parse_minute,
                        help="first minute, UTC, e.g. 2026-01-01T00:00 (inclusive; default: the pair's first bar)")
    parser.add_argument("--to", dest="end", type=parse_minute,
                        help="end of the range, UTC (exclusive; default: after the pair's last bar)")
    parser.add_argument("--png", required=True, type=Path, help="PNG file to write")
    parser.add_argument("--html", type=Path, help="also write an HTML page with the chart and the bars' values")
    parser.add_argument("--width", type=positive_pixels, default=DEFAULT_WIDTH,
                        help="PNG width in pixels (default %(default)s)")
    parser.add_argument("--height", type=positive_pixels, default=DEFAULT_HEIGHT,
                        help="PNG height in pixels (default %(default)s)")
    args = parser.parse_args(argv)
    if args.start and args.end and args.end <= args.start:
        parser.error("--to must be after --from")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    try:
        dataset = open_table(args.gold)
    except TableUnreadable as exc:  # no such table, or a stream that has not written a bar yet
        log.error("cannot read Gold at %s: %s", args.gold, exc)
        return 1
    held = held_symbols(dataset)
    symbol = find_symbol(args.symbol, held)
    if symbol is None:
        log.error("no bars for %s in %s; it holds %s", args.symbol, args.gold,
                  ", ".join(held) if held else "no bars yet")
        return 1
    bars = read_bars(dataset, symbol, args.start, args.end)
    span = describe_span(args.start, args.end, bars)
    if not bars:
        log.error("no bars for %s in %s in %s", symbol, span, args.gold)
        return 1
    title = f"{symbol} 1-minute candles, {span}"
    for path in filter(None, (args.png, args.html)):
        path.parent.mkdir(parents=True, exist_ok=True)
    render_png(bars, title, args.png, args.width, args.height)
    if args.html:
        args.html.write_text(render_html(bars, title, args.png), encoding="utf-8")
    log.info("rendered %d bars of %s to %s%s", len(bars), symbol, args.png,
             f" and {args.html}" if args.html else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
