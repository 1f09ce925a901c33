"""Silver -> Gold: one 1-minute OHLCV + VWAP bar per pair per minute of event time (ts_event), streaming.

Each bar is written once, when it is final: Spark keeps a minute open until the watermark (the newest event time seen
minus --watermark) passes its end, then appends it to Parquet (with _spark_metadata, so readers that go through it,
e.g. spark.read.parquet(<out>), see every bar exactly once, also after a kill -9 and a restart).

Gold columns:

    symbol (string), window_start (timestamp), window_end (timestamp),
    open, high, low, close (decimal(38,18)), volume (decimal(38,18)), vwap (decimal(38,18)), trade_count (long)

- open / close: the first / last trade of the minute by ts_event; trades with the same ts_event are ordered by
  trade_id, and where trade_id is null (API v1) by Kafka (partition, offset).
- high / low: max / min price. volume: sum of sizes, exact.
- vwap: sum(price * size) / volume, rounded half-even to 18 decimal places. The sum of products is kept exact: each
  price and size is split into five base-10^9 integer limbs, the limb products are summed as decimal(29,0) (no
  Spark decimal rounding is involved), and the one division happens in Python integers (Spark's own decimal(38,18) *
  decimal(38,18) would silently drop digits). Exact for any decimal(38,18) prices and sizes.

Late trades: a trade whose ts_event is older than the watermark when it arrives is dropped by Spark (its minute was
already written). Every micro-batch that drops trades logs a warning with Spark's count (numRowsDroppedByWatermark,
counted after Spark's per-partition pre-aggregation: 0 means nothing was dropped, n > 0 means at least n trades were);
the job logs the total when it stops. Remedies: a longer --watermark, or recompute a range from Silver in batch with
spark/jobs/gold_ohlcv_batch.py (same aggregation, all trades).

Usage:
    python spark/jobs/silver_to_gold_ohlcv.py --silver data/silver/crypto_trades --out data/gold/ohlcv_1m \\
        --checkpoint data/checkpoints/silver_to_gold_ohlcv --trigger "2 seconds" --watermark "2 minutes"

    # a backfill (or a test): aggregate everything Silver holds now, write every bar the watermark closed, then exit
    python spark/jobs/silver_to_gold_ohlcv.py --available-now

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed; 2 a bad flag,
or an output folder and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from decimal import Context, Decimal
from typing import Any, Iterable

from streaming_common import (StopRequest, build_spark, configure_logging, parse_trigger, run_queries,
                              sink_pairing_problem, start_parquet_sink)

DEFAULT_SILVER = "data/silver/crypto_trades"
DEFAULT_OUT = "data/gold/ohlcv_1m"
DEFAULT_CHECKPOINT = "data/checkpoints/silver_to_gold_ohlcv"
DEFAULT_TRIGGER = "2 seconds"
DEFAULT_WATERMARK = "2 minutes"
BAR_LENGTH = "1 minute"
LATE_HINT = (" (their minutes were already written; see --watermark, or recompute the range with "
             "gold_ohlcv_batch.py)")

SILVER_DDL = ("symbol STRING, price DECIMAL(38,18), size DECIMAL(38,18), side STRING, ord_type STRING, "
              "trade_id BIGINT, ts_event TIMESTAMP, ts_ingest TIMESTAMP, topic STRING, partition INT, offset BIGINT, "
              "ts_kafka TIMESTAMP, trade_date DATE")
GOLD_COLUMNS = ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume", "vwap",
                "trade_count"]
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
# Spark transforms (shared by the stream here and the batch recompute in gold_ohlcv_batch.py)


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


def ship_this_module_to_workers() -> None:
    """Python workers cannot import this file (spark/jobs is not on their path); when it is imported (batch
    recompute, tests) rather than run, pickle its functions by value so the VWAP UDF travels with the job."""
    if __name__ != "__main__":
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])


def ohlcv_bars(trades):
    """Silver trades -> Gold bars, one per (symbol, minute of ts_event). The one aggregation both the stream and the
    batch recompute use; a watermark, if any, is set by the caller on `trades`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType

    ship_this_module_to_workers()
    order_key = F.struct("ts_event", "trade_id", "partition", "offset")
    vwap = F.udf(lambda volume, *sums: vwap_from_terms(sums, volume), DecimalType(38, SCALE))
    bars = (
        with_notional_terms(trades)
        .groupBy("symbol", F.window("ts_event", BAR_LENGTH).alias("bar"))
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
    return bars.select(
        "symbol",
        F.col("bar.start").alias("window_start"),
        F.col("bar.end").alias("window_end"),
        "open", "high", "low", "close", "volume",
        vwap("volume", *[f"_n{k}" for k in range(NOTIONAL_TERMS)]).alias("vwap"),
        "trade_count",
    )


def read_silver_stream(spark, silver: str):
    return spark.readStream.schema(SILVER_DDL).parquet(silver)


# ---------------------------------------------------------------------------------------------------------------------
# Late-trade accounting


# ---------------------------------------------------------------------------------------------------------------------
# The job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silver", default=DEFAULT_SILVER,
                        help="Silver trades Parquet folder written by bronze_to_silver_trades.py (default %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="Gold bars Parquet folder (default %(default)s)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint folder; one per --out, never shared (default %(default)s)")
    parser.add_argument("--trigger", default=DEFAULT_TRIGGER, type=parse_trigger,
                        help=f'micro-batch interval, e.g. "2 seconds" (default "{DEFAULT_TRIGGER}")')
    parser.add_argument("--watermark", default=DEFAULT_WATERMARK, type=parse_trigger,
                        help="how late (in event time) a trade may arrive and still count; a minute is written once "
                             f'the newest ts_event seen is this far past its end (default "{DEFAULT_WATERMARK}")')
    parser.add_argument("--available-now", action="store_true",
                        help="aggregate everything Silver holds now, write every bar the watermark closed, then exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    mismatch = sink_pairing_problem(args.out, args.checkpoint)
    if mismatch:
        print(f"error: {mismatch}", file=sys.stderr)
        return 2
    # The VWAP division runs in Python workers: make them this interpreter, not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    stop = StopRequest().install()
    spark = build_spark("silver_to_gold_ohlcv")
    trades = read_silver_stream(spark, args.silver).withWatermark("ts_event", args.watermark)
    query = start_parquet_sink(ohlcv_bars(trades), path=args.out, checkpoint=args.checkpoint, trigger=args.trigger,
                               available_now=args.available_now, name="silver_to_gold_ohlcv")
    log.info("writing 1-minute bars from %s into %s (checkpoint %s, watermark %s, %s)", args.silver, args.out,
             args.checkpoint, args.watermark, "available-now" if args.available_now else f"trigger every {args.trigger}")
    code = run_queries({"gold": query}, stop, late_hint=LATE_HINT)
    log.info("stopped; Gold is at %s", args.out)
    spark.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
