"""Benchmark: does a micro-batch's cost follow the batch, or the table? Silver's and Gold's per-batch MERGE on a small
table and on a large one, in the same run.

Two Silver tables, built the way trades arrive (trade_id growing with time, one trade_date partition per day): a
small one (a day) and a large one (--large-rows, 20 million by default: 30 days). On each, the same kind of batch is
written --repeats times with the jobs' own code (SilverBatchWriter: parse, dedup, insert-only MERGE pruned by date and
per-symbol trade_id range; then GoldBatchWriter: the touched minutes recomputed from Silver and merged into Gold):
1,000 new trades of three pairs plus 100 copies of trades already held (which the MERGE must find and skip). The
median seconds per batch on the large table, as a ratio to the small one, should be near 1. The reference measured
in the same run: the same Silver MERGE on the large table WITHOUT the pruning predicates (what a plain
`MERGE ... ON t.symbol = s.symbol AND t.trade_id = s.trade_id` costs: it reads the whole table).

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
    from lakehouse.lake.delta import ensure_table
    from pyspark.sql import functions as F

    from lakehouse.silver import job as silver_job

    ensure_table(spark, str(path), silver_job.SILVER_DDL, partition_by=["trade_date"], owner="bench")
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
    just before `copies_of` (held already)."""
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
        rows.append(("bench", 0, offset, at.replace(tzinfo=None), 0, symbol, value))
    return spark.createDataFrame(rows, "topic string, partition int, offset long, ts_kafka timestamp, ts_type int, "
                                       "key string, value_raw string")


def timed_batches(spark, silver: Path, gold: Path, next_id: int, last_ts: datetime, repeats: int, warmup: int = 1,
                  trades: int = BATCH_TRADES, copies: int = BATCH_COPIES,
                  cpu_s: Callable[[], float] = lambda: 0.0) -> dict[str, list]:
    """Seconds per Silver batch and per Gold batch, `repeats` times after `warmup` batches (the JVM's JIT), with the
    jobs' own writers; with `cpu_s` (the process's CPU seconds so far), also the CPU seconds of each."""
    from lakehouse.lake.delta import delta_transaction, ensure_table

    from lakehouse.gold import job as gold_job
    from lakehouse.silver import job as silver_job

    ensure_table(spark, str(gold), gold_job.GOLD_DDL, partition_by=["bar_date"], owner="bench")
    silver_writer = silver_job.SilverBatchWriter(spark, "bench", str(silver), str(silver) + "_quarantine")
    gold_writer = gold_job.GoldBatchWriter(spark, "bench", str(silver), str(gold))
    ensure_table(spark, str(silver) + "_quarantine", silver_job.QUARANTINE_DDL, partition_by=[], owner="bench")
    times: dict[str, list] = {"silver": [], "gold": [], "silver_cpu": [], "gold_cpu": []}
    for batch in range(warmup + repeats):
        at = last_ts + timedelta(seconds=20 * (batch + 1))
        bronze = bronze_batch(spark, next_id, at, copies_of=next_id, trades=trades, copies=copies)
        started, cpu_started = time.monotonic(), cpu_s()
        silver_writer.write(bronze, batch, lambda out: delta_transaction(spark, f"bench-{out}", batch))
        silver_s, silver_cpu = time.monotonic() - started, cpu_s() - cpu_started
        new_trades = (spark.read.format("delta").load(str(silver))
                      .where(f"trade_id >= {next_id} AND trade_id < {next_id + trades}"))
        started, cpu_started = time.monotonic(), cpu_s()
        gold_writer.write(new_trades, batch, lambda out: delta_transaction(spark, f"bench-{out}", batch))
        gold_s, gold_cpu = time.monotonic() - started, cpu_s() - cpu_started
        next_id += trades
        if batch >= warmup:
            for name, value in (("silver", silver_s), ("gold", gold_s), ("silver_cpu", silver_cpu),
                                ("gold_cpu", gold_cpu)):
                times[name].append(value)
    return times


def unpruned_merge_s(spark, silver: Path, next_id: int, at: datetime) -> float:
    """The reference: the same insert-only MERGE of a batch without the date and trade_id range predicates."""
    from lakehouse.silver import job as silver_job

    parsed = silver_job.parse_bronze(bronze_batch(spark, next_id, at, copies_of=next_id))
    silver_job.v2_batch_trades(silver_job.to_silver_rows(parsed)).createOrReplaceTempView("unpruned_batch")
    started = time.monotonic()
    spark.sql(silver_job.insert_only_merge(str(silver), "unpruned_batch", "TRUE", silver_job.V2_MATCH)).collect()
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
            figures[size] = {"rows": rows, "silver_s": times["silver"], "gold_s": times["gold"],
                             "silver_median_s": round(statistics.median(times["silver"]), 3),
                             "gold_median_s": round(statistics.median(times["gold"]), 3)}
            if size == "large":
                figures["large"]["unpruned_merge_s"] = round(
                    unpruned_merge_s(spark, silver, next_id + 100 * BATCH_TRADES, last_ts), 3)
    spark.stop()
    small, large = figures["small"], figures["large"]
    silver_ratio = round(large["silver_median_s"] / small["silver_median_s"], 2)
    gold_ratio = round(large["gold_median_s"] / small["gold_median_s"], 2)
    print(table([[k, f"{v['rows']:,}", v["silver_median_s"], v["gold_median_s"]] for k, v in figures.items()],
                ["table", "rows", "Silver batch s (median)", "Gold batch s (median)"]))
    print(f"large / small: Silver {silver_ratio}, Gold {gold_ratio}; the same Silver MERGE on the large table "
          f"without pruning: {large['unpruned_merge_s']} s ({large['unpruned_merge_s'] / large['silver_median_s']:.1f}x "
          f"a whole pruned batch)")
    rows = [bc.summary_row("merge cost", f"Silver batch s at {large['rows']:,} rows", large["silver_median_s"],
                           "same batch, small table", small["silver_median_s"], silver_ratio, "<= 1.5",
                           verdict(silver_ratio, 1.5, higher_is_better=False), "batch size, not table size"),
            bc.summary_row("merge cost", f"Gold batch s at {large['rows']:,} Silver rows", large["gold_median_s"],
                           "same batch, small table", small["gold_median_s"], gold_ratio, "<= 1.5",
                           verdict(gold_ratio, 1.5, higher_is_better=False), "batch size, not table size")]
    path = bc.write_results(NAME, {"machine": bc.machine_info(), "figures": figures, "rows": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
