"""Gold's sums on Spark (lakehouse.gold.table.minute_partials, the code the stream, the one-application pipeline and
the batch recompute run) and the filter that reads Gold's bars back, on a local Spark session: no broker, no Delta,
no extra jars."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from lakehouse.gold.bars import from_micros, to_micros
from lakehouse.gold.table import bar_of_row, bars_filter, minute_partials

T0 = datetime(2026, 1, 1, 9, 30, 15, tzinfo=timezone.utc)
SILVER_DDL = ("symbol string, price decimal(38,18), size decimal(38,18), trade_id long, ts_event timestamp, "
              "partition int, offset long")


def bars(spark, trades, version=3):
    return {bar.symbol: bar for bar in (bar_of_row(row) for row in
                                        minute_partials(spark.createDataFrame(trades, SILVER_DDL), version).collect())}


def test_ties_on_ts_event_open_and_close_by_trade_id_then_kafka_position(local_spark):
    """Three v2 trades in the same microsecond whose Kafka offsets run against their trade_ids, and v1 trades (no id)
    in the same microsecond: open/close follow trade_id for v2, (partition, offset) for v1."""
    d = Decimal
    trades = [  # symbol, price, size, trade_id, ts_event, partition, offset
        ("BTC/USD", d("101"), d("1"), 11, T0, 0, 5), ("BTC/USD", d("100"), d("1"), 10, T0, 0, 7),
        ("BTC/USD", d("102"), d("2"), 12, T0, 0, 3),
        ("XBT/EUR", d("7"), d("1"), None, T0, 1, 9), ("XBT/EUR", d("5"), d("1"), None, T0, 0, 8),
        ("XBT/EUR", d("6"), d("1"), None, T0, 1, 2),
    ]
    got = bars(local_spark, trades)
    btc = got["BTC/USD"]
    assert (btc.window_start, btc.window_end) == (datetime(2026, 1, 1, 9, 30, tzinfo=timezone.utc),
                                                  datetime(2026, 1, 1, 9, 31, tzinfo=timezone.utc))
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume, btc.trade_count) == (
        d("100"), d("102"), d("100"), d("102"), d("4"), 3)
    assert btc.vwap == d("101.25")  # (101 + 100 + 204) / 4
    assert (btc.open_key, btc.close_key, btc.silver_version) == ((to_micros(T0), 10, 0, 7), (to_micros(T0), 12, 0, 3), 3)
    xbt = got["XBT/EUR"]
    assert (xbt.open, xbt.high, xbt.low, xbt.close) == (d("5"), d("7"), d("5"), d("7"))  # open (0, 8); close (1, 9)


def test_each_symbol_minute_and_version_is_its_own_partial(local_spark):
    d = Decimal
    later = T0.replace(minute=31, second=0)
    trades = [("BTC/USD", d("1.5"), d("0.1"), 1, T0, 0, 0), ("BTC/USD", d("2.5"), d("0.3"), 2, later, 0, 1),
              ("ETH/USD", d("3"), d("1"), 1, T0, 1, 0)]
    from pyspark.sql import functions as F

    frame = local_spark.createDataFrame(trades, SILVER_DDL).withColumn("v", F.col("offset") + 7)
    rows = [bar_of_row(r) for r in minute_partials(frame, F.col("v")).collect()]
    got = sorted((b.symbol, b.window_start_us, b.open, b.close, b.trade_count, b.silver_version) for b in rows)
    minute = to_micros(T0.replace(second=0))
    assert got == [("BTC/USD", minute, d("1.5"), d("1.5"), 1, 7), ("BTC/USD", minute + 60_000_000, d("2.5"), d("2.5"), 1, 8),
                   ("ETH/USD", minute, d("3"), d("3"), 1, 7)]


def test_the_filter_reading_bars_back_selects_exactly_their_rows_whatever_the_symbol(local_spark):
    """Symbols with quotes, backslashes and SQL wildcards travel as literals: the filter selects exactly the asked
    bars and the open bars of the asked pairs, nothing else."""
    m0 = to_micros(T0.replace(second=0))
    odd = ["O'Neil/USD", "a\\", "x%_;--", 'q"uote', "\U0001F680/USD"]
    rows = []
    for i, symbol in enumerate(odd):
        for k in range(3):
            window = from_micros(m0 + k * 60_000_000)
            rows.append((symbol, window, window.date(), k == 2))
    frame = local_spark.createDataFrame(rows, "symbol string, window_start timestamp, bar_date date, is_open boolean")
    wanted = {("O'Neil/USD", m0), ("a\\", m0 + 60_000_000)}
    from pyspark.sql import functions as F

    got = frame.where(bars_filter(wanted, ["x%_;--"])).select("symbol", F.unix_micros("window_start").alias("m"))
    assert sorted((r.symbol, r.m) for r in got.collect()) == sorted(
        [*wanted, ("x%_;--", m0 + 120_000_000)])
    assert frame.where(bars_filter(set(), [])).count() == 0
