"""Gold in batch: recompute the 1-minute OHLCV + VWAP bars of a time range from Silver, with every trade Silver holds
(also those the stream dropped as later than its watermark). Same aggregation as the stream
(silver_to_gold_ohlcv.ohlcv_bars), so for the same trades it gives the same bars, to the last digit.

A bar belongs to the range when its minute starts in [--from, --to); both must be whole minutes (UTC). The output
folder is replaced by the range's bars (plain Parquet, no _spark_metadata). It may not be the stream's Gold folder:
files written there without the stream's _spark_metadata log would be invisible to its readers.

Usage:
    python spark/jobs/gold_ohlcv_batch.py --silver data/silver/crypto_trades \\
        --from 2026-01-01T00:00 --to 2026-01-02T00:00 --out data/gold/ohlcv_1m_recompute

Exit codes: 0 written; 2 a bad flag.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from silver_to_gold_ohlcv import DEFAULT_SILVER, SILVER_DDL, ohlcv_bars
from streaming_common import build_spark, configure_logging

DEFAULT_OUT = "data/gold/ohlcv_1m_recompute"

log = logging.getLogger("gold_ohlcv_batch")


def parse_minute(text: str) -> datetime:
    """'2026-01-01T00:00', '2026-01-01 00:00:00' or with a Z / +00:00 suffix -> an aware UTC datetime on a whole
    minute. A time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; use e.g. 2026-01-01T00:00 (UTC)") from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    if moment.second or moment.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r}: bars are whole minutes; give a time on a minute (seconds 00)")
    return moment


def spark_timestamp(moment: datetime) -> str:
    """A UTC timestamp literal for Spark SQL (the session time zone is UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def select_range(trades, start: datetime, end: datetime):
    """Trades whose minute starts in [start, end): with whole-minute bounds, exactly ts_event in [start, end).
    The trade_date filter lets Spark skip Silver's other date partitions."""
    from pyspark.sql import functions as F

    return trades.where(
        (F.col("trade_date") >= F.lit(start.date())) & (F.col("trade_date") <= F.lit(end.date()))
        & (F.col("ts_event") >= F.to_timestamp(F.lit(spark_timestamp(start))))
        & (F.col("ts_event") < F.to_timestamp(F.lit(spark_timestamp(end)))))


def is_stream_sink(folder: str) -> bool:
    return (Path(folder) / "_spark_metadata").is_dir()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silver", default=DEFAULT_SILVER, help="Silver trades Parquet folder (default %(default)s)")
    parser.add_argument("--from", dest="start", required=True, type=parse_minute,
                        help="first minute to recompute, UTC, e.g. 2026-01-01T00:00 (inclusive)")
    parser.add_argument("--to", dest="end", required=True, type=parse_minute,
                        help="end of the range, UTC, e.g. 2026-01-02T00:00 (exclusive)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="folder to (re)write with the range's bars; not the stream's Gold folder "
                             "(default %(default)s)")
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error("--to must be after --from")
    if is_stream_sink(args.out):
        parser.error(f"--out {args.out} is a streaming sink (it has _spark_metadata); its readers would not see "
                     "files written here. Use another folder, e.g. data/gold/ohlcv_1m_recompute")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the VWAP division runs in Python workers
    spark = build_spark("gold_ohlcv_batch")
    trades = select_range(spark.read.schema(SILVER_DDL).parquet(args.silver), args.start, args.end)
    bars = ohlcv_bars(trades).orderBy("symbol", "window_start")
    bars.write.mode("overwrite").parquet(args.out)
    written = spark.read.parquet(args.out).count()
    log.info("wrote %d bar(s) for [%s, %s) from %s into %s", written, args.start.isoformat(), args.end.isoformat(),
             args.silver, args.out)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
