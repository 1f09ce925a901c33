"""Benchmark: does a micro-batch's cost follow the batch, or the table? A Silver + Gold batch on a small table and on
a large one, in the same run.

Two Silver tables, built the way trades arrive (trade_id growing with time, one trade_date partition per day): a
small one (a day) and a large one (--large-rows, 20 million by default: 30 days), each with its Gold built from it.
On each, the same kind of batch is written --repeats times with the jobs' own code (SilverWriter with its
GoldWriter, as the one-application pipeline runs them: parse, dedup, insert-only MERGE pruned by date and per-symbol
trade_id range; then the batch's new trades folded into Gold): 1,000 new trades of three pairs plus 100 copies of
trades already held (which the MERGE must find and skip). The median seconds per batch on the large table, as a ratio
to the small one, should be near 1. The reference measured in the same run: the same Silver MERGE on the large table
WITHOUT the pruning predicates (what a plain `MERGE ... ON t.symbol = s.symbol AND t.trade_id = s.trade_id` costs: it
reads the whole table).

Usage:
    python bench/merge_cost.py                 # 20M rows; about 6-10 minutes on 2 cores
    python bench/merge_cost.py --quick         # 2M rows
    python bench/merge_cost.py --large-rows 50000000
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import bench_common as bc
from bench_stats import table, verdict

NAME = "merge_cost"
PAIRS = {"XBT/USDT": "83744.3", "ETH/USD": "2011.37", "XDG/USD": "0.1234567"}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
BATCH_TRADES, BATCH_COPIES = 1000, 100

log = logging.getLogger(NAME)


def build_silver(spark, path: Path, rows: int, days: int) -> int:
    """A Silver table of `rows` trades over `days` days (ids growing with time, as Kraken's do); returns the next
    trade_id."""
    from pyspark.sql import functions as F

    from lakehouse.silver.job import ensure_silver

    ensure_silver(spark, str(path))
    step_us = days * 86_400_000_000 // max(rows, 1)
    symbols = F.array(*[F.lit(s) for s in PAIRS])
    df = (spark.range(rows, numPartitions=max(2, days))
          .withColumn("ts_event", F.timestamp_micros(F.lit(int(START.timestamp() * 1e6)) + F.col("id") * step_us))
          .select(symbols[F.col("id") % 3].alias("symbol"),
                  (F.lit(100) + (F.col("id") % 997) / 10).cast("decimal(38,18)").alias("price"),
                  (F.col("id") % 1000 / 1000 + 0.001).cast("decimal(38,18)").alias("size"),
                  F.lit("buy").alias("side"), F.lit("limit").alias("ord_type"),
                  (F.col("id") + 1).alias("trade_id"), F.lit(None).cast("int").alias("v1_ordinal"),
                  "ts_event", F.col("ts_event").alias("ts_ingest"), F.lit("ws").alias("source"),
                  F.lit("bench").alias("topic"), (F.col("id") % 3).cast("int").alias("partition"),
                  F.col("id").alias("offset"), F.col("ts_event").alias("ts_kafka"),
                  F.to_date("ts_event").alias("trade_date")))
    # spark.range's partitions are consecutive id ranges, one day each: files come out ordered by time, as a stream
    # writes them (and as compaction keeps them, partition by partition)
    df.write.format("delta").mode("append").partitionBy("trade_date").save(str(path))
    return rows + 1


def bronze_batch(spark, first_id: int, at: datetime, copies_of: int, trades: int = BATCH_TRADES,
                 copies: int = BATCH_COPIES) -> Any:
    """A Bronze-shaped micro-batch: `trades` new trades from `first_id` at `at`, and `copies` copies of the trades
    just before `copies_of` (held already). Written as a Parquet file (pyarrow, in this process) and read by Spark
    as the Silver job reads Bronze: a DataFrame made from Python rows would run Python workers that no live batch runs,
    and their CPU would count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = []
    for i in range(trades):
        messages.append((first_id + i, at + timedelta(milliseconds=10 * i)))
    for i in range(copies):
        messages.append((copies_of - 1 - i * 3, None))
    rows = []
    for offset, (trade_id, ts) in enumerate(messages):
        symbol = list(PAIRS)[(trade_id - 1) % 3]
        ts_text = (ts or at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        value = json.dumps({"symbol": symbol, "price": PAIRS[symbol], "size": "0.5", "side": "sell",
                            "ord_type": "market", "trade_id": trade_id, "ts_event": ts_text, "ts_ingest": ts_text,
                            "api": "v2", "pair_native": symbol, "source": "ws"})
        rows.append({"topic": "bench", "partition": 0, "offset": offset, "ts_kafka": at.replace(tzinfo=None),
                     "ts_type": 0, "key": symbol, "value_raw": value})
    schema = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
                        ("ts_kafka", pa.timestamp("us")), ("ts_type", pa.int32()), ("key", pa.string()),
                        ("value_raw", pa.string())])
    path = Path(tempfile.mkdtemp(prefix="bronze-batch-")) / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema), path)
    return spark.read.schema("topic string, partition int, offset long, ts_kafka timestamp, ts_type int, "
                             "key string, value_raw string").parquet(str(path))


def batch_writers(spark, silver: Path, gold: Path):
    """The one-application pipeline's writers over these tables: a SilverWriter folding into a GoldWriter; Gold built
    from Silver first (as the pipeline does when it starts)."""
    from lakehouse.gold.job import ensure_gold
    from lakehouse.gold.table import GoldWriter
    from lakehouse.silver.job import SilverWriter, ensure_quarantine

    ensure_gold(spark, str(gold))
    ensure_quarantine(spark, str(silver) + "_quarantine")
    gold_writer = GoldWriter(str(gold), str(silver))
    gold_writer.prepare(spark)
    gold_writer.follow(spark)
    return SilverWriter(str(silver), str(silver) + "_quarantine", gold=gold_writer)


def timed_batches(spark, silver: Path, gold: Path, next_id: int, last_ts: datetime, repeats: int, warmup: int = 1,
                  trades: int = BATCH_TRADES, copies: int = BATCH_COPIES,
                  cpu_s: Callable[[], float] = lambda: 0.0,
                  between: Callable[[int], None] = lambda _i: None) -> dict[str, list]:
    """Seconds (and, with `cpu_s`, the process's CPU seconds) per Silver + Gold batch, `repeats` times after `warmup`
    batches (the JVM's JIT), with the pipeline's own writers; between(i) runs before batch i (uncounted)."""
    writer = batch_writers(spark, silver, gold)
    times: dict[str, list] = {"batch": [], "batch_cpu": []}
    for batch in range(warmup + repeats):
        between(batch)
        at = last_ts + timedelta(seconds=20 * (batch + 1))
        bronze = bronze_batch(spark, next_id, at, copies_of=next_id, trades=trades, copies=copies)
        started, cpu_started = time.monotonic(), cpu_s()
        writer(bronze, batch)
        elapsed, cpu = time.monotonic() - started, cpu_s() - cpu_started
        assert writer.last["inserted"] == trades, writer.last
        next_id += trades
        if batch >= warmup:
            times["batch"].append(elapsed)
            times["batch_cpu"].append(cpu)
    return times


def unpruned_merge_s(spark, silver: Path, next_id: int, at: datetime) -> float:
    """The reference: the same insert-only MERGE of a batch without the date and trade_id range predicates."""
    from delta.tables import DeltaTable

    from lakehouse.silver import parse

    batch = parse.v2_batch_trades(parse.to_silver_rows(parse.parse_bronze(bronze_batch(spark, next_id, at,
                                                                                      copies_of=next_id))))
    started = time.monotonic()
    (DeltaTable.forPath(spark, str(silver)).alias("t").merge(batch.alias("s"), parse.v2_match())
     .whenNotMatchedInsertAll().execute())
    return time.monotonic() - started


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2M rows, 3 repeats")
    p.add_argument("--large-rows", type=int, help="rows of the large Silver table (default 20,000,000)")
    p.add_argument("--repeats", type=int, help="measured batches per table (default 5)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    large_rows = args.large_rows or (2_000_000 if args.quick else 20_000_000)
    repeats = args.repeats or (3 if args.quick else 5)
    from lakehouse.lake.delta import WRITER_SESSION_CONF
    from lakehouse.spark.session import build_spark

    spark = build_spark("bench_merge_cost", delta=True, conf={"spark.master": "local[2]", **WRITER_SESSION_CONF,
                                                              "spark.driver.memory": "3g"})
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="merge-cost-") as tmp:
        for size, rows, days in (("small", 50_000, 1), ("large", large_rows, 30)):
            silver, gold = Path(tmp) / f"silver_{size}", Path(tmp) / f"gold_{size}"
            started = time.monotonic()
            next_id = build_silver(spark, silver, rows, days)
            log.info("%s Silver: %d rows in %.0fs", size, rows, time.monotonic() - started)
            last_ts = START + timedelta(days=days) - timedelta(minutes=5)
            times = timed_batches(spark, silver, gold, next_id, last_ts, repeats)
            figures[size] = {"rows": rows, "batch_s": times["batch"],
                             "batch_median_s": round(statistics.median(times["batch"]), 3)}
            if size == "large":
                figures["large"]["unpruned_merge_s"] = round(
                    unpruned_merge_s(spark, silver, next_id + 100 * BATCH_TRADES, last_ts), 3)
    spark.stop()
    small, large = figures["small"], figures["large"]
    ratio = round(large["batch_median_s"] / small["batch_median_s"], 2)
    print(table([[k, f"{v['rows']:,}", v["batch_median_s"]] for k, v in figures.items()],
                ["table", "rows", "Silver + Gold batch s (median)"]))
    print(f"large / small: {ratio}; the same Silver MERGE on the large table without pruning: "
          f"{large['unpruned_merge_s']} s ({large['unpruned_merge_s'] / large['batch_median_s']:.1f}x a whole pruned "
          f"batch)")
    rows = [bc.summary_row("merge cost", f"Silver + Gold batch s at {large['rows']:,} rows", large["batch_median_s"],
                           "same batch, small table", small["batch_median_s"], ratio, "<= 1.5",
                           verdict(ratio, 1.5, higher_is_better=False), "batch size, not table size")]
    path = bc.write_results(NAME, {"machine": bc.machine_info(), "figures": figures, "rows": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
