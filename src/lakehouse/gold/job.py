"""Silver -> Gold: one 1-minute OHLCV + VWAP bar per pair per minute of event time (ts_event), kept exact and live.

A Structured Streaming query over Silver's change feed: each micro-batch of new trades is summed per bar on Spark and
folded into the Gold Delta table by its one writer (lakehouse.gold.table.GoldWriter): a bar appears within a trigger
of its first trade, grows as its trades arrive, and a late trade, however late, corrects its bar (instead of being
dropped). Every bar always equals what Silver's trades of that minute give. No state store, no watermark. With the
layers in one application (all_layers.py, `make run`) Silver's own batch folds its new trades into Gold in the same
pass, with the same writer; this job is the layer run on its own (the README's step-by-step way).

Gold columns (a Delta table partitioned by bar_date):

    symbol (string), window_start (timestamp), window_end (timestamp),
    open, high, low, close (decimal(38,18)), volume (decimal(38,18)), vwap (decimal(38,18)), trade_count (long),
    is_open (boolean), revision (int), updated_at (timestamp),
    open_key, close_key, notional_limbs, silver_version (what folding more trades in needs; gold/table.py),
    bar_date (date)

- open / close: the first / last trade of the minute by ts_event; trades with the same ts_event are ordered by
  trade_id, and where trade_id is null (API v1) by Kafka (partition, offset).
- high / low: max / min price. volume: sum of sizes, exact.
- vwap: sum(price * size) / volume, rounded half-even to 18 decimal places. The sum of products is kept exact: each
  price and size is split into five base-10^9 integer limbs, the limb products are summed as decimals without any
  rounding, and the one division happens in Python integers (lakehouse.gold.bars). Exact for any decimal(38,18)
  prices and sizes.
- is_open: true for the pair's newest minute (no trade of a later minute has reached Gold yet): more trades for it
  may still come. It turns false with the first trade of a later minute.
- revision: how many writes changed the bar's values after it was first written (0: written once). A bar that was
  already closed (is_open false) and whose revision grew was restated by a late trade; Delta's time travel shows it
  as it was before.
- updated_at: when the bar was last written (values or is_open).
- bar_date: the UTC date of window_start (the partition).

Exactly once: each bar records the newest Silver version it holds, and a batch redone after Ctrl-C, SIGTERM or kill
-9 skips what its bars already hold. A new checkpoint beside an existing Gold starts where Gold is; a new Gold over an
existing Silver is first built from Silver's snapshot, a day at a time. A MERGE that conflicts with a concurrent
compaction is retried from a fresh read.

Usage (examples in the entry point's docstring, spark/jobs/silver_to_gold_ohlcv.py):
    python spark/jobs/silver_to_gold_ohlcv.py --help

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed; 2 a bad flag,
or a table and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import GOLD_CHECKPOINT, GOLD_PATH, SILVER_PATH
from lakehouse.gold.table import GOLD_DDL, GoldWriter, gold_ready
from lakehouse.lake.delta import (LIVE_ZORDER_PROPERTY, WRITER_SESSION_CONF, Maintenance, add_maintenance_argument,
                                  ensure_table, table_pairing_problem)
from lakehouse.spark.flags import (add_drain_arguments, add_master_argument, parse_trigger, positive_int,
                                   trigger_kwargs)
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_queries, wait_until_ready
from lakehouse.spark.session import build_spark

DEFAULT_TRIGGER = "2 seconds"
# Silver files per micro-batch of the change feed. A Silver file holds one trade_date of one Silver batch (MERGE writes
# one file per partition it touches; compaction's files are not in the feed), so at most silver.job.MAX_ROWS_PER_BATCH
# trades, and one Silver version of one day gives at most 1,440 bars per pair: a Gold batch sums at most
# 10 x 200,000 trades on Spark and brings at most 10 x 1,440 bars per pair to the driver.
DEFAULT_MAX_FILES_PER_TRIGGER = 10
QUERY_NAME = "silver_to_gold_ohlcv"
# Gold's layout: its MERGE rewrites the files holding the bars a batch moves, every batch each pair's open bar. The
# hourly maintenance splits the newest bar_date into small files by window_start (lakehouse.lake.delta, "live"
# partition) and the MERGE is pruned to the batch's minutes, so a batch rewrites about an hour of bars, not the day so
# far. No auto compaction: it would put the day back into one file (and a MERGE replaces the files it touches by one,
# so the number of files does not grow between rounds).
GOLD_PROPERTIES = {"delta.autoOptimize.autoCompact": "false", LIVE_ZORDER_PROPERTY: "window_start"}

log = logging.getLogger("silver_to_gold_ohlcv")


def ensure_gold(spark, gold: str) -> None:
    """Create the Gold table if needed (an older version's Gold is refused with what to do)."""
    ensure_table(spark, gold, GOLD_DDL, partition_by=["bar_date"], owner=QUERY_NAME, properties=GOLD_PROPERTIES)


def start_query(spark, args: argparse.Namespace, query_name: str = QUERY_NAME):
    """Create the Gold table if needed, bring it up to a known Silver version, and start the query over Silver's
    change feed from there; returns the StreamingQuery."""
    ensure_gold(spark, args.out)
    writer = GoldWriter(args.out, args.silver)
    first = writer.prepare(spark)
    changes = (spark.readStream.format("delta").option("readChangeFeed", "true").option("startingVersion", first)
               .option("maxFilesPerTrigger", args.max_files_per_trigger).load(args.silver))
    return (changes.writeStream
            .foreachBatch(writer.fold_changes)
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
    parser.add_argument("--max-files-per-trigger", type=positive_int, default=DEFAULT_MAX_FILES_PER_TRIGGER,
                        help="cap on Silver files per micro-batch of Silver's change feed: each holds one day "
                             "of one Silver batch, so a batch brings at most this many x 1,440 bars per pair to the "
                             "driver (bounds memory when catching up; default %(default)s)")
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
    if not wait_until_ready(lambda: gold_ready(spark, args.silver), stop,
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
