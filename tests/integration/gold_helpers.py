"""Helpers for the Gold tests: Silver-shaped data written into a Silver Delta table (created as the Silver job creates
it, one commit per append), the Gold job's query run in the test's session, and an independent plain-Python Decimal
computation of the bars to compare Gold with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Iterable

from lakehouse.gold import job as gold_job
from lakehouse.silver.job import ensure_silver
from lakehouse.silver.parse import SILVER_DDL
from lakehouse.spark.lifecycle import StopRequest, run_queries

UTC = timezone.utc
T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    ts_event: datetime
    trade_id: int | None
    partition: int
    offset: int

    def row(self) -> tuple:
        """The trade as a Silver row (SILVER_DDL's columns)."""
        ingest = self.ts_event + timedelta(milliseconds=50)
        return (self.symbol, self.price, self.size, "buy", "limit", self.trade_id,
                1 if self.trade_id is None else None, self.ts_event, ingest, "ws", "crypto.trades", self.partition,
                self.offset, ingest, self.ts_event.date())


class SilverWriter:
    """Appends batches of trades to a Silver Delta table (created as the Silver job creates it): each append is one
    more table version, which the Gold stream reads as new data."""

    def __init__(self, spark, root: Path) -> None:
        self.spark = spark
        self.path = root / "silver"
        ensure_silver(spark, str(self.path))

    def append(self, trades: Iterable[Trade]) -> None:
        rows = [t.row() for t in trades]
        self.spark.createDataFrame(rows, SILVER_DDL).write.format("delta").mode("append").save(str(self.path))


def gold_args(silver: Path, gold: Path, checkpoint: Path, *extra: str):
    return gold_job.parse_args(["--silver", str(silver), "--out", str(gold), "--checkpoint", str(checkpoint),
                                "--available-now", *extra])


def run_gold(spark, silver: Path, gold: Path, checkpoint: Path) -> None:
    """The Gold job's query, available-now, in this session (no JVM start)."""
    code = run_queries({"gold": gold_job.start_query(spark, gold_args(silver, gold, checkpoint))}, StopRequest())
    assert code == 0


# ---------------------------------------------------------------------------------------------------------------------
# Test data


def generate_trades(seed: int = 7, minutes: int = 20) -> list[Trade]:
    """A few thousand trades over `minutes` minutes from T0, three pairs with very different magnitudes:
    busy minutes, one-trade minutes, empty minutes, and bursts of identical timestamps at the start and end of
    minutes whose trade_id order (or, for the API v1 pair without trade_id, Kafka offset order) decides open/close.
    """
    rng = random.Random(seed)
    pairs = {  # symbol: (price text maker, size text maker, has trade_id, partition)
        "XBT/USDT": (lambda: f"{rng.randint(83000, 85000)}.{rng.randint(0, 9)}", lambda: f"0.{rng.randint(1, 99999999):08d}",
                     True, 0),
        "ETH/USDT": (lambda: f"{rng.randint(250000, 260000)}.{rng.randint(0, 99):02d}",
                     lambda: f"{rng.randint(0, 40)}.{rng.randint(0, 10**17 - 1):017d}", True, 1),
        "SHIB/USD": (lambda: f"0.0000{rng.randint(10**12, 10**13 - 1)}",
                     lambda: f"{rng.randint(1, 10**9)}.{rng.randint(0, 10**5 - 1):05d}", False, 2),
    }
    one_trade = {("XBT/USDT", 3), ("ETH/USDT", 7), ("SHIB/USD", 11), ("SHIB/USD", 12)}
    empty = {("XBT/USDT", 5), ("XBT/USDT", 6), ("ETH/USDT", 9), ("SHIB/USD", 2), ("SHIB/USD", 15),
             ("XBT/USDT", 13), ("ETH/USDT", 13), ("SHIB/USD", 13)}  # minute 13: no trade at all
    trades: list[Trade] = []
    next_id = {s: 100000 for s in pairs}
    next_offset = {s: 0 for s in pairs}
    for minute in range(minutes):
        for symbol, (price, size, has_id, partition) in pairs.items():
            if (symbol, minute) in empty:
                continue
            start = T0 + minute * MINUTE
            if (symbol, minute) in one_trade:
                stamps = [start + timedelta(seconds=rng.randint(0, 59), microseconds=rng.randint(0, 999999))]
            else:
                stamps = sorted(start + timedelta(microseconds=rng.randint(0, 59_999_999))
                                for _ in range(rng.randint(20, 70)))
                # identical timestamps: a burst at the very start and one at the very end of the minute
                stamps = [start] * 3 + stamps + [start + timedelta(seconds=59, microseconds=999999)] * 3
            burst = []
            for ts in stamps:
                trade_id = next_id[symbol] if has_id else None
                next_id[symbol] += 1
                burst.append([symbol, Decimal(price()), Decimal(size()), ts, trade_id, partition])
            # Kafka offsets in an order that differs from trade_id within each tied timestamp (v2 pairs), so only
            # a trade_id tie-break gives the right open/close; for the v1 pair offsets are the only order.
            for i, fields in enumerate(burst):
                tied_reversed = has_id and len(burst) > 6 and (i < 3 or i >= len(burst) - 3)
                order = (2 - i if i < 3 else len(burst) - 1 - (i - (len(burst) - 3))) if tied_reversed else i
                fields.append(next_offset[symbol] + order)
            next_offset[symbol] += len(burst)
            trades.extend(Trade(*fields) for fields in burst)
    return trades


def trade(symbol: str, price: str, size: str, ts: datetime, trade_id: int | None, offset: int,
          partition: int = 0) -> Trade:
    return Trade(symbol, Decimal(price), Decimal(size), ts, trade_id, partition, offset)


# ---------------------------------------------------------------------------------------------------------------------
# The independent computation


def minute_of(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def reference_bars(trades: Iterable[Trade]) -> dict[tuple[str, datetime], tuple]:
    """(symbol, window_start) -> (window_end, open, high, low, close, volume, vwap, trade_count), in plain Python:
    sums as exact Decimals, VWAP as an exact Fraction rounded half-even to 18 places."""
    groups: dict[tuple[str, datetime], list[Trade]] = {}
    for t in trades:
        groups.setdefault((t.symbol, minute_of(t.ts_event)), []).append(t)
    bars = {}
    for (symbol, start), members in groups.items():
        ordered = sorted(members, key=lambda t: (t.ts_event, -1 if t.trade_id is None else t.trade_id,
                                                  t.partition, t.offset))
        with localcontext(Context(prec=200)):  # Decimal's default context keeps only 28 digits
            volume = sum((t.size for t in members), Decimal(0))
        notional = sum(Fraction(t.price) * Fraction(t.size) for t in members)
        vwap_units = round(notional / Fraction(volume) * 10 ** 18)  # round() of a Fraction is half-even
        vwap = Decimal(vwap_units).scaleb(-18, context=Context(prec=200))
        bars[(symbol, start)] = (start + MINUTE, ordered[0].price, max(t.price for t in members),
                                 min(t.price for t in members), ordered[-1].price, volume, vwap, len(members))
    return bars


def read_bars(spark, table: Path, version: int | None = None) -> list[tuple]:
    """Gold rows as (symbol, window_start, window_end, open, high, low, close, volume, vwap, trade_count) with aware
    UTC datetimes, from the Delta table (at `version`: time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    rows = reader.load(str(table)).selectExpr(
        "symbol", "unix_micros(window_start) AS ws", "unix_micros(window_end) AS we",
        "open", "high", "low", "close", "volume", "vwap", "trade_count").collect()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [(r.symbol, epoch + timedelta(microseconds=r.ws), epoch + timedelta(microseconds=r.we), r.open, r.high,
             r.low, r.close, r.volume, r.vwap, r.trade_count) for r in rows]


def bar_states(spark, table: Path) -> dict[tuple[str, datetime], tuple[bool, int]]:
    """(symbol, window_start) -> (is_open, revision) of every Gold bar."""
    rows = spark.read.format("delta").load(str(table)).selectExpr(
        "symbol", "unix_micros(window_start) AS ws", "is_open", "revision").collect()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {(r.symbol, epoch + timedelta(microseconds=r.ws)): (r.is_open, r.revision) for r in rows}


def newest_minutes(trades: Iterable[Trade]) -> dict[str, datetime]:
    """Each pair's newest minute: the bar that must be open."""
    newest: dict[str, datetime] = {}
    for t in trades:
        newest[t.symbol] = max(newest.get(t.symbol, minute_of(t.ts_event)), minute_of(t.ts_event))
    return newest


def bars_by_key(rows: list[tuple]) -> dict[tuple[str, datetime], tuple]:
    """Index Gold rows by (symbol, window_start); fails on a duplicated bar."""
    indexed = {}
    for row in rows:
        key = (row[0], row[1])
        assert key not in indexed, f"bar written twice: {key}"
        indexed[key] = row[2:]
    return indexed
