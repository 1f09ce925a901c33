"""What /api/bars answers: a pair's newest minutes, each from Gold when Gold holds it, else live from the topic.

Pure functions. A minute's bar is Gold's row when Gold has it and has caught up with it (Gold's trade_count is at
least the live bar's), else the live bar, marked live. Once Gold holds all of a minute's trades its row replaces the
live bar, and the two must be equal: same_bar() tells, and the server counts any difference (a bug in one of them).

JSON: Gold's column names; prices, sizes and VWAP as decimal strings with Gold's 18 places ("83744.300000000000000000"),
times as ISO-8601 UTC ("2026-09-25T17:48:00Z"), trade_count a number, live true/false.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from lakehouse.gold.bars import EXACT, MINUTE_US, Bar, from_micros

PLACES = Decimal(1).scaleb(-18)
VALUES = ("open", "high", "low", "close", "volume", "vwap")


@dataclass(frozen=True)
class BarValues:
    """One minute's values, from Gold's row or a live bar."""

    symbol: str
    window_start_us: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None
    trade_count: int

    @classmethod
    def of_bar(cls, bar: Bar) -> "BarValues":
        return cls(bar.symbol, bar.window_start_us, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap,
                   bar.trade_count)


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal(38,18) value as Gold stores it: 18 places, plain digits (never 1E-8)."""
    return None if value is None else format(value.quantize(PLACES, context=EXACT), "f")


def iso_utc(micros: int) -> str:
    moment = from_micros(micros)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}Z" if moment.microsecond else "Z")


def bar_json(bar: BarValues, live: bool) -> dict[str, Any]:
    return {"symbol": bar.symbol, "window_start": iso_utc(bar.window_start_us),
            "window_end": iso_utc(bar.window_start_us + MINUTE_US),
            **{name: decimal_text(getattr(bar, name)) for name in VALUES},
            "trade_count": bar.trade_count, "live": live}


def same_bar(a: BarValues, b: BarValues) -> bool:
    """Equal as Gold compares bars: every value numerically, and the trade count."""
    return all(getattr(a, n) == getattr(b, n) for n in VALUES) and a.trade_count == b.trade_count


def choose(gold: BarValues | None, live: BarValues | None) -> tuple[BarValues, bool] | None:
    """(the bar to show, whether it is live) for one minute."""
    if gold is not None and (live is None or gold.trade_count >= live.trade_count):
        return gold, False
    if live is not None:
        return live, True
    return None


def newest_bars(gold: dict[int, BarValues], live: dict[int, BarValues], minutes: int) -> list[dict[str, Any]]:
    """The newest `minutes` minutes holding trades, by trade time, oldest first, as JSON."""
    chosen = [choose(gold.get(m), live.get(m)) for m in sorted(set(gold) | set(live))[-minutes:]]
    return [bar_json(bar, is_live) for bar, is_live in filter(None, chosen)]


def mismatches(gold: dict[int, BarValues], live: dict[int, BarValues]) -> list[int]:
    """Minutes where Gold holds as many trades as the live bar but other values: one of the two is wrong."""
    return [m for m in set(gold) & set(live)
            if gold[m].trade_count == live[m].trade_count and not same_bar(gold[m], live[m])]


def utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
