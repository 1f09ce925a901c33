"""Gold in batch: recompute the 1-minute OHLCV + VWAP bars of a time range from Silver, with every trade Silver holds.
Same computation as the stream (lakehouse.gold.table.minute_partials, lakehouse.gold.bars), so for the same Silver it
gives the same bars, to the last digit, with is_open set the same way (the pair's newest minute in Silver).

A bar belongs to the range when its minute starts in [--from, --to); both must be whole minutes (UTC). The output is
a Delta table with Gold's columns (revision 0, updated_at the time of the run), replaced by the range's bars on each
run; the range is computed one UTC day at a time, so a long range never holds more than a day's bars in memory. It
may not be the stream's Gold table: the stream owns that one (and a late trade already corrects its bar there).

Usage (examples in the entry point's docstring, spark/jobs/gold_ohlcv_batch.py):
    python spark/jobs/gold_ohlcv_batch.py --help

Exit codes: 0 written; 2 a bad flag, or --out is the stream's Gold table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timedelta, timezone
from typing import Iterator

from lakehouse.common.logs import configure_logging
from lakehouse.common.timefmt import parse_minute, spark_timestamp
from lakehouse.defaults import GOLD_RECOMPUTE_PATH, SILVER_PATH
from lakehouse.gold.bars import GoldBar, minute_us
from lakehouse.gold.job import QUERY_NAME
from lakehouse.gold.table import GOLD_DDL, bar_of_row, gold_row, minute_partials
from lakehouse.lake.delta import table_owner, table_version
from lakehouse.spark.flags import add_master_argument
from lakehouse.spark.session import build_spark


log = logging.getLogger("gold_ohlcv_batch")


def day_chunks(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: (00:30, next day 02:00) -> (00:30, 24:00), (24:00, 02:00)."""
    while start < end:
        midnight = datetime(start.year, start.month, start.day, tzinfo=timezone.utc) + timedelta(days=1)
        yield start, min(end, midnight)
        start = min(end, midnight)


def select_range(trades, start: datetime, end: datetime):
    """Trades whose minute starts in [start, end): with whole-minute bounds, exactly ts_event in [start, end).
    The trade_date filter lets Spark skip Silver's other date partitions."""
    from pyspark.sql import functions as F

    return trades.where(
        (F.col("trade_date") >= F.lit(start.date())) & (F.col("trade_date") <= F.lit(end.date()))
        & (F.col("ts_event") >= F.to_timestamp(F.lit(spark_timestamp(start))))
        & (F.col("ts_event") < F.to_timestamp(F.lit(spark_timestamp(end)))))


def newest_minutes(trades) -> dict[str, int]:
    """Each pair's newest minute in Silver (microseconds since the epoch): the one bar per pair that is_open."""
    from pyspark.sql import functions as F

    rows = trades.groupBy("symbol").agg(F.unix_micros(F.max("ts_event")).alias("m")).collect()
    return {row.symbol: minute_us(row.m) for row in rows}


def recompute(silver_df, version: int, newest: dict[str, int], start: datetime, end: datetime) -> list[GoldBar]:
    """The bars of [start, end) from Silver's trades (read at `version`), each complete: revision 0, is_open for the
    pair's newest minute."""
    bars = [bar_of_row(row) for row in minute_partials(select_range(silver_df, start, end), version).collect()]
    return [GoldBar(bar, bar.window_start_us == newest.get(bar.symbol), 0) for bar in bars]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    parser.add_argument("--silver", default=SILVER_PATH, help="Silver trades Delta table (default %(default)s)")
    parser.add_argument("--from", dest="start", required=True, type=parse_minute,
                        help="first minute to recompute, UTC, e.g. 2026-01-01T00:00 (inclusive)")
    parser.add_argument("--to", dest="end", required=True, type=parse_minute,
                        help="end of the range, UTC, e.g. 2026-01-02T00:00 (exclusive)")
    parser.add_argument("--out", default=GOLD_RECOMPUTE_PATH,
                        help="Delta table to (re)write with the range's bars; not the stream's Gold table "
                             "(default %(default)s)")
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error("--to must be after --from")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    spark = build_spark("gold_ohlcv_batch", delta=True, master=args.master)
    if table_owner(spark, args.out) == QUERY_NAME:
        print(f"error: --out {args.out} is the stream's Gold table (written by {QUERY_NAME}); the batch recompute "
              f"writes its own table, e.g. {GOLD_RECOMPUTE_PATH}", file=sys.stderr)
        spark.stop()
        return 2
    version = table_version(spark, args.silver)
    silver = spark.read.format("delta").option("versionAsOf", version).load(args.silver)
    newest = newest_minutes(silver)
    written, now = 0, datetime.now(timezone.utc)
    for number, (start, end) in enumerate(day_chunks(args.start, args.end)):
        bars = recompute(silver, version, newest, start, end)
        if not bars and number > 0:
            continue
        (spark.createDataFrame([gold_row(bar, now) for bar in bars], GOLD_DDL).write.format("delta")
         .mode("overwrite" if number == 0 else "append").option("overwriteSchema", "true").partitionBy("bar_date")
         .save(args.out))
        written += len(bars)
    log.info("wrote %d bar(s) for [%s, %s) from %s into %s", written, args.start.isoformat(), args.end.isoformat(),
             args.silver, args.out)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
