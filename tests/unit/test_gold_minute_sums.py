"""Gold's aggregation itself (silver_to_gold_ohlcv.minute_sums + finish_bars, the code the stream and the batch
recompute run), on a local Spark session: no broker, no Delta, no extra jars (about 10 s for the session)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from lakehouse.gold.job import finish_bars, minute_sums

T0 = datetime(2026, 1, 1, 9, 30, 15, tzinfo=timezone.utc)
SILVER_DDL = ("symbol string, price decimal(38,18), size decimal(38,18), trade_id long, ts_event timestamp, "
              "partition int, offset long")


@pytest.fixture(scope="module")
def spark():
    """A local session of our own; or, when this pytest process already runs one (the integration tests' session,
    in the same xdist worker), that one, left running (its time zone is UTC too)."""
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:
        assert running.conf.get("spark.sql.session.timeZone") == "UTC"
        yield running
        return
    session = (SparkSession.builder.master("local[1]").appName("unit-gold-minute-sums")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
               .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    yield session
    session.stop()
    # Also end this JVM: it was started without the Kafka/Delta jars, and a later session in the same pytest process
    # (the integration tests' `spark` fixture) must start its own JVM with them.
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    gateway.shutdown()
    if getattr(gateway, "proc", None) is not None:  # the JVM process pyspark launched (else it idles until exit)
        gateway.proc.kill()
        gateway.proc.wait(30)
    SparkContext._gateway, SparkContext._jvm = None, None


def bars(spark, trades):
    rows = minute_sums(spark.createDataFrame(trades, SILVER_DDL)).collect()
    return {bar[0]: bar for bar in finish_bars(rows, {}, T0)}


def test_ties_on_ts_event_open_and_close_by_trade_id_then_kafka_position(spark):
    """Three v2 trades in the same microsecond whose Kafka offsets run against their trade_ids, and v1 trades (no id)
    in the same microsecond: open/close follow trade_id for v2, (partition, offset) for v1."""
    d = Decimal
    trades = [  # symbol, price, size, trade_id, ts_event, partition, offset
        ("BTC/USD", d("101"), d("1"), 11, T0, 0, 5), ("BTC/USD", d("100"), d("1"), 10, T0, 0, 7),
        ("BTC/USD", d("102"), d("2"), 12, T0, 0, 3),
        ("XBT/EUR", d("7"), d("1"), None, T0, 1, 9), ("XBT/EUR", d("5"), d("1"), None, T0, 0, 8),
        ("XBT/EUR", d("6"), d("1"), None, T0, 1, 2),
    ]
    got = bars(spark, trades)
    symbol, start, end, open_, high, low, close, volume, vwap, count = got["BTC/USD"][:10]
    assert (start, end) == (datetime(2026, 1, 1, 9, 30, tzinfo=timezone.utc),
                            datetime(2026, 1, 1, 9, 31, tzinfo=timezone.utc))
    assert (open_, high, low, close, volume, count) == (d("100"), d("102"), d("100"), d("102"), d("4"), 3)
    assert vwap == d("101.25")  # (101 + 100 + 204) / 4
    assert got["XBT/EUR"][3:7] == (d("5"), d("7"), d("5"), d("7"))  # open (0, 8); close (1, 9)


def test_each_symbol_and_minute_is_its_own_bar(spark):
    d = Decimal
    later = T0.replace(minute=31, second=0)
    trades = [("BTC/USD", d("1.5"), d("0.1"), 1, T0, 0, 0), ("BTC/USD", d("2.5"), d("0.3"), 2, later, 0, 1),
              ("ETH/USD", d("3"), d("1"), 1, T0, 1, 0)]
    rows = minute_sums(spark.createDataFrame(trades, SILVER_DDL)).collect()
    got = sorted((r["symbol"], r["window_start_us"], r["open"], r["close"], r["trade_count"]) for r in rows)
    minute = int(T0.replace(second=0).timestamp()) * 1_000_000
    assert got == [("BTC/USD", minute, d("1.5"), d("1.5"), 1), ("BTC/USD", minute + 60_000_000, d("2.5"), d("2.5"), 1),
                   ("ETH/USD", minute, d("3"), d("3"), 1)]
