"""Silver -> Gold: one 1-minute OHLCV + VWAP bar per pair per minute of event time (ts_event), kept exact and live.

Reads the Silver Delta table as a stream. For each micro-batch of new trades it recomputes, from Silver itself, every
minute the batch touches (plus the pair's open minute) and merges those bars into the Gold Delta table: a bar
appears within a trigger or two of its first trade, grows as its trades arrive, and a late trade, however late,
corrects its bar (instead of being dropped). Every bar is always exactly what Silver's trades of that minute give;
recomputing from the table makes that true and makes a redone batch harmless at once. No state store, no watermark.

Gold columns (a Delta table partitioned by bar_date):

    symbol (string), window_start (timestamp), window_end (timestamp),
    open, high, low, close (decimal(38,18)), volume (decimal(38,18)), vwap (decimal(38,18)), trade_count (long),
    is_open (boolean), revision (int), updated_at (timestamp), bar_date (date)

- open / close: the first / last trade of the minute by ts_event; trades with the same ts_event are ordered by
  trade_id, and where trade_id is null (API v1) by Kafka (partition, offset).
- high / low: max / min price. volume: sum of sizes, exact.
- vwap: sum(price * size) / volume, rounded half-even to 18 decimal places. The sum of products is kept exact: each
  price and size is split into five base-10^9 integer limbs, the limb products are summed as decimal(29,0) (no
  Spark decimal rounding is involved), and the one division happens in Python integers on the driver (Spark's own
  decimal(38,18) * decimal(38,18) would silently drop digits). Exact for any decimal(38,18) prices and sizes.
- is_open: true for the pair's newest minute (no trade of a later minute has reached Gold yet): more trades for it
  may still come. It turns false with the first trade of a later minute.
- revision: how many times the bar's values changed after it was first written (0: written once). A bar that was
  already closed (is_open false) and whose revision grew was restated by a late trade; Delta's time travel shows it
  as it was before (README).
- updated_at: when the bar was last written (values or is_open).
- bar_date: the UTC date of window_start (the partition).

Exactly once: the MERGE of each micro-batch carries a Delta transaction id (the query's id, the batch id), so a
batch redone after Ctrl-C, SIGTERM or kill -9 changes nothing (lakehouse/lake/delta.py); and as the bars are
recomputed from Silver, even a rebuild with a new checkpoint ends with the same bars. A MERGE that conflicts with a concurrent
compaction is retried.

Usage (examples in the entry point's docstring, spark/jobs/silver_to_gold_ohlcv.py):
    python spark/jobs/silver_to_gold_ohlcv.py --help

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed; 2 a bad flag,
or a table and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Any, Callable, Iterable

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import GOLD_CHECKPOINT, GOLD_PATH, SILVER_PATH
from lakehouse.lake.delta import (WRITER_SESSION_CONF, BatchWriter, Maintenance, add_maintenance_argument, ensure_table,
                                  in_list, is_delta_table, retry_on_conflict, sql_string, table_pairing_problem)
from lakehouse.spark.flags import add_drain_arguments, add_master_argument, parse_trigger, trigger_kwargs
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_queries, wait_until_ready
from lakehouse.spark.session import build_spark

DEFAULT_TRIGGER = "2 seconds"
QUERY_NAME = "silver_to_gold_ohlcv"
MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

GOLD_DDL = ("symbol STRING, window_start TIMESTAMP, window_end TIMESTAMP, open DECIMAL(38,18), high DECIMAL(38,18), "
            "low DECIMAL(38,18), close DECIMAL(38,18), volume DECIMAL(38,18), vwap DECIMAL(38,18), "
            "trade_count BIGINT, is_open BOOLEAN, revision INT, updated_at TIMESTAMP, bar_date DATE")
GOLD_COLUMNS = [column.split()[0] for column in GOLD_DDL.split(", ")]
BAR_VALUES = ["open", "high", "low", "close", "volume", "vwap", "trade_count"]  # a change of these is a revision
PRICE_TYPE = "DECIMAL(38,18)"
SCALE = 18  # decimal places of Silver's price and size, and of Gold's vwap
LIMB_BASE = 10 ** 9  # limbs below 10^9 make every limb product < 10^18 and a sum of five < 9.2 * 10^18 (a BIGINT)
LIMB_COUNT = 5  # 18 fraction digits = 2 limbs, 20 integer digits = 3 limbs
NOTIONAL_TERMS = 2 * LIMB_COUNT - 1  # sum_k of limb products p_i * s_j with i + j = k
EXACT = Context(prec=200)  # Decimal's default context keeps only 28 digits; decimal(38,18) needs 38

log = logging.getLogger("silver_to_gold_ohlcv")


# ---------------------------------------------------------------------------------------------------------------------
# Exact VWAP, pure Python (also what the Spark expressions below mirror)


def unscaled_18(value: Decimal) -> int:
    """value * 10^18 as an exact integer (value has at most 18 decimal places, as decimal(38,18) does)."""
    scaled = Decimal(value).scaleb(SCALE, context=EXACT)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {SCALE} decimal places")
    return int(scaled)


def decimal_limbs(value: Decimal) -> list[int]:
    """The base-10^9 limbs (least significant first) of value's unscaled integer at scale 18, truncating like
    Spark's % and div, so sum(limb * 10^(9k)) == value * 10^18 for any sign."""
    unscaled = unscaled_18(value)
    sign, magnitude = (-1 if unscaled < 0 else 1), abs(unscaled)
    limbs = []
    for _ in range(LIMB_COUNT):
        magnitude, limb = divmod(magnitude, LIMB_BASE)
        limbs.append(sign * limb)
    return limbs


def notional_terms(price_limbs: list[int], size_limbs: list[int]) -> list[int]:
    """The limb convolution of one trade: term k = sum of price_limbs[i] * size_limbs[j] with i + j = k."""
    return [sum(price_limbs[i] * size_limbs[k - i] for i in range(LIMB_COUNT) if 0 <= k - i < LIMB_COUNT)
            for k in range(NOTIONAL_TERMS)]


def vwap_from_terms(term_sums: Iterable[Any], volume: Decimal | None) -> Decimal | None:
    """VWAP = sum(price * size) / volume, rounded half-even to 18 decimal places, from the summed limb terms.

    sum(price * size) = sum_k term_sums[k] * 10^(9k) / 10^36 and volume = V / 10^18, so vwap * 10^18 = T / V with
    T = sum_k term_sums[k] * 10^(9k): one exact integer division, rounded half-even. None when volume is 0 or null.
    """
    sums = list(term_sums)
    if volume is None or volume == 0 or any(s is None for s in sums):
        return None
    total = sum(int(s) * LIMB_BASE ** k for k, s in enumerate(sums))
    denominator = unscaled_18(volume)
    if denominator < 0:
        total, denominator = -total, -denominator
    quotient, remainder = divmod(total, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return Decimal(quotient).scaleb(-SCALE, context=EXACT)


# ---------------------------------------------------------------------------------------------------------------------
# Spark expressions for the limbs


def limb_sql(column: str) -> list[str]:
    """Spark SQL for decimal_limbs(column) of a DECIMAL(38,18) column, as BIGINTs; every step is exact:
    `x % 1` is DECIMAL(28,18), times 10^18 is an integer below 10^18; `x - x % 1` is an integer below 10^20."""
    fraction = f"CAST(CAST(({column} % 1) * 1000000000000000000BD AS DECIMAL(18,0)) AS BIGINT)"
    integer = f"CAST({column} - ({column} % 1) AS DECIMAL(20,0))"
    return [
        f"{fraction} % 1000000000",
        f"{fraction} div 1000000000",
        f"CAST({integer} % 1000000000 AS BIGINT)",
        f"({integer} div 1000000000) % 1000000000",
        f"{integer} div 1000000000000000000",
    ]


def with_notional_terms(trades):
    """Add _n0.._n8: the trade's exact price * size as limb-product terms (DECIMAL(19,0) each)."""
    from pyspark.sql import functions as F

    price_limbs, size_limbs = limb_sql("price"), limb_sql("size")
    terms = []
    for k in range(NOTIONAL_TERMS):
        products = [f"({price_limbs[i]}) * ({size_limbs[k - i]})"
                    for i in range(LIMB_COUNT) if 0 <= k - i < LIMB_COUNT]
        terms.append(F.expr(f"CAST({' + '.join(products)} AS DECIMAL(19,0))").alias(f"_n{k}"))
    return trades.select("*", *terms)


# ---------------------------------------------------------------------------------------------------------------------
# Bars: Spark sums the minute's trades, the driver finishes each bar in exact Python (shared by the stream and the batch
# recompute in gold_ohlcv_batch.py, lakehouse/gold/recompute.py)


def minute_sums(trades):
    """Silver trades -> one row per (symbol, minute of ts_event): window_start_us/window_end_us (microseconds since
    the epoch: collected timestamps would be turned into the Python process's local time), open, high, low, close,
    volume, trade_count and the limb sums _n0.._n8 of sum(price * size)."""
    from pyspark.sql import functions as F

    order_key = F.struct("ts_event", "trade_id", "partition", "offset")
    sums = (
        with_notional_terms(trades)
        .groupBy("symbol", F.window("ts_event", "1 minute").alias("bar"))
        .agg(
            F.min_by("price", order_key).alias("open"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.max_by("price", order_key).alias("close"),
            F.sum("size").cast(PRICE_TYPE).alias("volume"),
            F.count(F.lit(1)).alias("trade_count"),
            *[F.sum(f"_n{k}").alias(f"_n{k}") for k in range(NOTIONAL_TERMS)],
        )
    )
    return sums.select("symbol", F.unix_micros("bar.start").alias("window_start_us"),
                       F.unix_micros("bar.end").alias("window_end_us"), "open", "high", "low", "close", "volume",
                       "trade_count", *[f"_n{k}" for k in range(NOTIONAL_TERMS)])


def finish_bars(sums: Iterable[Any], newest: dict[str, datetime], updated_at: datetime) -> list[tuple]:
    """Rows of minute_sums() (collected) -> Gold rows (GOLD_COLUMNS order) with the exact VWAP; a bar is open when
    its minute is `newest[symbol]`, the pair's newest minute. revision is 0 (the MERGE counts revisions)."""
    bars = []
    for row in sums:
        terms = [row[f"_n{k}"] for k in range(NOTIONAL_TERMS)]
        window_start = from_micros(row["window_start_us"])
        bars.append((row["symbol"], window_start, from_micros(row["window_end_us"]), row["open"], row["high"], row["low"],
                     row["close"], row["volume"], vwap_from_terms(terms, row["volume"]), row["trade_count"],
                     window_start == newest.get(row["symbol"]), 0, updated_at, window_start.date()))
    return bars


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch (Spark's unix_micros) -> an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


def bars_dataframe(spark, bars: list[tuple]):
    return spark.createDataFrame(bars, GOLD_DDL)


def minute_filter(keys: dict[str, set[datetime]]) -> str:
    """SQL selecting the Silver trades of the given minutes per symbol: the dates as a partition filter, then per
    symbol its time span (Delta's file statistics skip the files outside it); the exact minutes are joined after."""
    dates = sorted({m.date() for minutes in keys.values() for m in minutes})
    per_symbol = " OR ".join(
        f"(symbol = {sql_string(symbol)} AND ts_event >= TIMESTAMP {sql_string(spark_text(min(minutes)))} "
        f"AND ts_event < TIMESTAMP {sql_string(spark_text(max(minutes) + MINUTE))})"
        for symbol, minutes in sorted(keys.items()))
    return f"{in_list('trade_date', dates)} AND ({per_symbol or 'FALSE'})"


def spark_text(moment: datetime) -> str:
    """A UTC timestamp as Spark SQL text (the session time zone is UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def merge_bars_sql(gold: str, source_view: str, dates: list[Any]) -> str:
    """MERGE SQL: insert new bars; update a bar when its values or is_open changed, counting a value change as a
    revision. The target is pruned to the batch's bar dates."""
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in BAR_VALUES)
    updates = ", ".join(f"t.{c} = s.{c}" for c in [*BAR_VALUES, "is_open", "updated_at"])
    return (f"MERGE INTO delta.`{gold}` AS t USING {source_view} AS s "
            f"ON {in_list('t.bar_date', dates)} AND t.symbol = s.symbol AND t.bar_date = s.bar_date "
            f"AND t.window_start = s.window_start "
            f"WHEN MATCHED AND ({changed} OR t.is_open <> s.is_open) THEN UPDATE SET {updates}, "
            f"t.revision = t.revision + CASE WHEN {changed} THEN 1 ELSE 0 END "
            f"WHEN NOT MATCHED THEN INSERT *")


# ---------------------------------------------------------------------------------------------------------------------
# I/O


def read_silver_stream(spark, silver: str):
    return spark.readStream.format("delta").load(silver)


def read_silver(spark, silver: str):
    return spark.read.format("delta").load(silver)


def recompute_minutes(spark, silver: str, keys: dict[str, set[datetime]]) -> list[Any]:
    """minute_sums() of exactly the given (symbol, minute) keys, from the Silver table as it is now; collected."""
    from pyspark.sql import functions as F

    wanted = spark.createDataFrame([(s, m) for s, minutes in keys.items() for m in minutes],
                                   "symbol STRING, window_start TIMESTAMP")
    trades = (read_silver(spark, silver).where(minute_filter(keys))
              .withColumn("window_start", F.date_trunc("minute", "ts_event"))
              .join(F.broadcast(wanted), ["symbol", "window_start"]).drop("window_start"))
    return minute_sums(trades).collect()


class GoldBatchWriter(BatchWriter):
    """foreachBatch: the minutes a Silver micro-batch touches (and each pair's open minute) recomputed from Silver and
    merged into Gold, idempotently."""

    def __init__(self, spark, query_name: str, silver: str, gold: str) -> None:
        super().__init__(spark, query_name)
        self.silver, self.gold = silver, gold

    def write(self, batch_df, batch_id: int, txn: Callable[[str], Any]) -> None:
        from pyspark.sql import functions as F

        started = time.monotonic()
        session = batch_df.sparkSession
        touched = (batch_df.groupBy("symbol", F.unix_micros(F.date_trunc("minute", "ts_event")).alias("m"))
                   .count().collect())  # one pass over the batch: its minutes and its number of trades
        keys: dict[str, set[datetime]] = {}
        for row in touched:
            keys.setdefault(row.symbol, set()).add(from_micros(row.m))
        if not keys:
            return
        open_bars = (session.read.format("delta").load(self.gold)
                     .where(f"is_open AND {in_list('symbol', sorted(keys))}")
                     .select("symbol", F.unix_micros("window_start").alias("m")).collect())
        newest = {symbol: max(minutes) for symbol, minutes in keys.items()}
        for row in open_bars:
            keys[row.symbol].add(from_micros(row.m))
            newest[row.symbol] = max(newest[row.symbol], from_micros(row.m))
        bars = finish_bars(recompute_minutes(session, self.silver, keys), newest, datetime.now(timezone.utc))
        bars_dataframe(session, bars).createOrReplaceTempView("gold_batch")
        dates = sorted({bar[-1] for bar in bars})

        def merge() -> list[Any]:
            with txn("gold"):
                return session.sql(merge_bars_sql(self.gold, "gold_batch", dates)).collect()

        result = retry_on_conflict(merge, f"gold batch MERGE into {self.gold}")
        metrics = result[0].asDict() if result else {}
        log.info("gold batch=%d trades=%d bars=%d inserted=%s updated=%s duration_ms=%d", batch_id,
                 sum(row["count"] for row in touched), len(bars), metrics.get("num_inserted_rows", 0),
                 metrics.get("num_updated_rows", 0), int((time.monotonic() - started) * 1000))


def start_query(spark, args: argparse.Namespace, query_name: str = QUERY_NAME):
    """Create the Gold table if needed and start the Silver -> Gold query; returns the StreamingQuery."""
    ensure_table(spark, args.out, GOLD_DDL, partition_by=["bar_date"], owner=QUERY_NAME)
    return (read_silver_stream(spark, args.silver).writeStream
            .foreachBatch(GoldBatchWriter(spark, query_name, args.silver, args.out))
            .option("checkpointLocation", args.checkpoint)
            .trigger(**trigger_kwargs(args.trigger, args.available_now))
            .queryName(query_name)
            .start())


# ---------------------------------------------------------------------------------------------------------------------
# The job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    parser.add_argument("--silver", default=SILVER_PATH,
                        help="Silver trades Delta table written by bronze_to_silver_trades.py (default %(default)s)")
    parser.add_argument("--out", default=GOLD_PATH, help="Gold bars Delta table (default %(default)s)")
    parser.add_argument("--checkpoint", default=GOLD_CHECKPOINT,
                        help="checkpoint folder; one per --out, never shared (default %(default)s)")
    parser.add_argument("--trigger", default=DEFAULT_TRIGGER, type=parse_trigger,
                        help=f'micro-batch interval, e.g. "2 seconds" (default "{DEFAULT_TRIGGER}")')
    parser.add_argument("--watermark", type=parse_trigger,
                        help="no longer used: late trades correct their bar however late they arrive (accepted so "
                             "that older commands keep working)")
    parser.add_argument("--available-now", action="store_true",
                        help="bring Gold up to what Silver holds now, then exit")
    add_maintenance_argument(parser)
    add_drain_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    if args.watermark:
        log.warning("--watermark is no longer used: late trades correct their bar however late they arrive")
    mismatch = table_pairing_problem(args.out, args.checkpoint)
    if mismatch:
        print(f"error: {mismatch}", file=sys.stderr)
        return 2
    stop = StopRequest().install()
    spark = build_spark(QUERY_NAME, delta=True, conf=WRITER_SESSION_CONF, master=args.master)
    if not wait_until_ready(lambda: is_delta_table(spark, args.silver), stop,
                            f"Silver at {args.silver} is not a Delta table yet: waiting for the Silver job to create "
                            f"it"):
        spark.stop()
        return 0
    query = start_query(spark, args)
    log.info("writing 1-minute bars from %s into %s (Delta; checkpoint %s, %s)", args.silver, args.out,
             args.checkpoint, "available-now" if args.available_now else f"trigger every {args.trigger}")
    maintenance = Maintenance(spark, [args.out], args.maintenance_every).start()
    drain = {"gold": drain_restart(start_query, spark, args)} if args.drain_on_stop else None
    code = run_queries({"gold": query}, stop, describe=lambda _name, _progress: None, drain=drain,
                       drain_timeout=args.drain_timeout)
    log.info("stopped; Gold is at %s", args.out)
    maintenance.stop()
    spark.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
