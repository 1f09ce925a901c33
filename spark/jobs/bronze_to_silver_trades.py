"""Bronze -> Silver: parse, type and deduplicate the trades Bronze landed; quarantine what cannot be parsed.

Reads the Bronze Parquet folder as a stream (only files Bronze committed in its _spark_metadata) and writes two
Parquet outputs, each with its own checkpoint:

Silver (<out>, partitioned by trade_date), one row per trade, columns in this order:
    symbol string, price decimal(38,18), size decimal(38,18), side string, ord_type string, trade_id long (null for
    API v1), ts_event timestamp, ts_ingest timestamp, topic string, partition int, offset long, ts_kafka timestamp,
    trade_date date (the UTC date of ts_event)

Quarantine (<quarantine>), one row per Bronze record that is not a valid trade:
    value_raw string (the Kafka bytes unchanged), topic, partition, offset, ts_kafka, key, reason string,
    quarantined_at timestamp

Every Bronze record ends up in exactly one of the two (before deduplication): rows in = Silver rows + duplicates
dropped + quarantine rows. Reasons are human-readable: "not valid UTF-8", "not JSON", "missing field price",
"price 'abc' is not a decimal", "size '0.0000000000000000001' does not fit decimal(38,18)", "side 'hold' is not buy
or sell", "ts_event '...' is not an ISO-8601 UTC timestamp with at most 6 fractional digits", ...

Exact values. price and size arrive as decimal text; decimal(38,18) holds 20 integer and 18 fractional digits,
far beyond anything Kraken sends. Spark's cast to decimal ROUNDS extra fractional digits, so the text itself is
checked first: a value goes to Silver only when its digits past the 18th decimal place are all zeros and its
integer part has at most 20 significant digits; anything else is quarantined, never rounded. decimal(38,18) has a
fixed scale: "0.00044780" is stored as 0.000447800000000000, numerically equal (trailing zeros of the text are not
kept as a scale; compare as numbers). ts_event/ts_ingest must be ISO-8601 with at most 6 fractional digits (Spark
would silently truncate a 7th) and Z or an offset; they are stored as UTC microsecond timestamps.

Deduplication. The same trade (same symbol and trade_id) seen twice within --watermark of each other keeps the
first copy. The watermark is on ts_kafka (when the record reached Kafka), not ts_event: a duplicate from a
restarted producer, a replayed recording or a v2 snapshot re-sent on reconnect carries the ORIGINAL ts_event but a
new ts_kafka, so "how late may a duplicate arrive" is a Kafka-time question; and an event-time watermark would
drop a genuinely new record whose ts_event is old (a slow pair, a v1 trade) as "late". Records without a trade_id
(API v1) are never merged: their key includes topic/partition/offset, unique per Kafka record. What to expect:
  - a duplicate arriving within the watermark of the first copy is dropped (the first copy stays);
  - a duplicate arriving more than about twice the watermark later (in Kafka time) is KEPT: the first copy's state
    has expired. Between one and two watermarks it depends on micro-batch timing. A replay of data older than
    the watermark therefore duplicates in Silver; deduplicate by (symbol, trade_id) in batch downstream if needed;
  - a record whose ts_kafka is older than the watermark when it is read (Kafka time running backwards by more than
    the watermark across partitions) is dropped by Spark; the job logs such drops as a warning per batch;
  - when two copies land in the same micro-batch Spark keeps one of them; which one is not specified (their trade
    columns are identical, their lineage columns differ).

Exactly once for both outputs. Two streaming queries over the same Bronze, each a Parquet file sink with its own
checkpoint (<checkpoint>/silver and <checkpoint>/quarantine). A file sink lists a batch's files in its
_spark_metadata and the checkpoint commits the batch only afterwards, so after any stop (Ctrl-C, SIGTERM, kill -9)
a restart redoes an unfinished batch with the same input files and readers going through _spark_metadata
(spark.read.parquet(<out>)) see each row once. The deduplication state lives in the Silver query's checkpoint.
(foreachBatch writing both outputs would be at-least-once and need hand-made idempotence; two sinks get it free, at
the price of reading Bronze twice.) Rebuilding (new --out, --quarantine and --checkpoint over the same Bronze)
gives the same rows, except quarantined_at and, for duplicates, the caveats above.

Usage:
    python spark/jobs/bronze_to_silver_trades.py --bronze data/bronze/crypto_trades \\
        --out data/silver/crypto_trades --quarantine data/silver/crypto_trades_quarantine \\
        --checkpoint data/checkpoints/bronze_to_silver_trades --trigger "2 seconds" --watermark "10 minutes"

    # a backfill or rebuild: process everything Bronze holds now, then exit
    python spark/jobs/bronze_to_silver_trades.py --available-now

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 a query failed;
2 a bad flag, or an output folder and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from streaming_common import (StopRequest, build_spark, configure_logging, parse_trigger, positive_int, run_queries,
                              sink_pairing_problem, start_parquet_sink)

DEFAULT_BRONZE = "data/bronze/crypto_trades"
DEFAULT_OUT = "data/silver/crypto_trades"
DEFAULT_QUARANTINE = "data/silver/crypto_trades_quarantine"
DEFAULT_CHECKPOINT = "data/checkpoints/bronze_to_silver_trades"
DEFAULT_WATERMARK = "10 minutes"

BRONZE_SCHEMA = ("topic string, partition int, offset long, ts_kafka timestamp, ts_type int, key string, "
                 "value_raw string")
DECIMAL_TYPE = "decimal(38,18)"
SILVER_COLUMNS = ["symbol", "price", "size", "side", "ord_type", "trade_id", "ts_event", "ts_ingest",
                  "topic", "partition", "offset", "ts_kafka", "trade_date"]
QUARANTINE_COLUMNS = ["value_raw", "topic", "partition", "offset", "ts_kafka", "key", "reason", "quarantined_at"]
# Fields a trade must carry (JSON null counts as missing); trade_id is optional (null on API v1), api is ignored.
REQUIRED_FIELDS = ["symbol", "price", "size", "side", "ord_type", "ts_event", "ts_ingest"]
JSON_FIELDS = [*REQUIRED_FIELDS, "trade_id"]
SIDES = ("buy", "sell")
ORD_TYPES = ("limit", "market")
DEDUP_KEY = ["symbol", "trade_id", "v1_record"]

# Java regexes (also valid Python `re`; the unit tests check them with `re`).
DECIMAL_RE = r"^[0-9]+(\.[0-9]+)?$"
# At most 20 significant integer digits; anything past the 18th fractional digit must be zeros. Text that matches
# this converts to decimal(38,18) exactly, so Spark's rounding cast cannot change its value.
DECIMAL_FITS_RE = r"^0*[0-9]{1,20}(\.[0-9]{0,18}0*)?$"
INTEGER_RE = r"^[0-9]{1,19}$"
# ISO-8601 with at most 6 fractional digits (Spark truncates a 7th silently) and an explicit zone.
TIMESTAMP_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
REASON_VALUE_CHARS = 80  # how much of an offending value the reason quotes

log = logging.getLogger("bronze_to_silver_trades")


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions (DataFrame transforms: no I/O)


def _quoted(value):
    """"'<value>'" for a reason text, cut to REASON_VALUE_CHARS characters."""
    from pyspark.sql import functions as F

    return F.concat(F.lit("'"), F.substring(value, 1, REASON_VALUE_CHARS), F.lit("'"))


def _decimal_problem(name: str, text):
    """The reason a price/size text is not an exact decimal(38,18), or null."""
    from pyspark.sql import functions as F

    return (F.when(~text.rlike(DECIMAL_RE), F.concat(F.lit(f"{name} "), _quoted(text), F.lit(" is not a decimal")))
            .when(~text.rlike(DECIMAL_FITS_RE) | text.cast(DECIMAL_TYPE).isNull(),
                  F.concat(F.lit(f"{name} "), _quoted(text), F.lit(f" does not fit {DECIMAL_TYPE}"))))


def _timestamp_problem(name: str, text):
    from pyspark.sql import functions as F

    return F.when(~text.rlike(TIMESTAMP_RE) | text.cast("timestamp").isNull(),
                  F.concat(F.lit(f"{name} "), _quoted(text),
                           F.lit(" is not an ISO-8601 timestamp with a zone and at most 6 fractional digits")))


def _choice_problem(name: str, text, allowed: tuple[str, ...]):
    from pyspark.sql import functions as F

    return F.when(~text.isin(*allowed),
                  F.concat(F.lit(f"{name} "), _quoted(text), F.lit(f" is not {' or '.join(allowed)}")))


def parse_bronze(bronze_df):
    """Bronze rows -> Bronze lineage + `value_raw` + the JSON fields as text + `reason` (null for a valid trade).

    The first problem found is the reason, in this order: bytes, JSON, required fields, then each field's format.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    raw = F.col("value_raw").cast("binary")
    # Every field read as text: Spark keeps the JSON text of numbers (12.50 -> "12.50"), so nothing is rounded.
    schema = T.StructType([T.StructField(f, T.StringType()) for f in [*JSON_FIELDS, "_corrupt_record"]])
    parsed = bronze_df.withColumn(
        "j", F.from_json("value_raw", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}))
    field = {f: F.col(f"j.{f}") for f in JSON_FIELDS}
    checks = [
        F.when(F.col("value_raw").isNull(), F.lit("no value (null Kafka record)")),
        F.when(F.encode(F.decode(raw, "UTF-8"), "UTF-8") != raw, F.lit("not valid UTF-8")),
        F.when(F.col("j").isNull() | F.col("j._corrupt_record").isNotNull(), F.lit("not JSON (or not a JSON object)")),
        *[F.when(field[f].isNull(), F.lit(f"missing field {f}")) for f in REQUIRED_FIELDS],
        F.when(F.trim(field["symbol"]) == "", F.lit("symbol is empty")),
        _decimal_problem("price", field["price"]),
        _decimal_problem("size", field["size"]),
        _choice_problem("side", field["side"], SIDES),
        _choice_problem("ord_type", field["ord_type"], ORD_TYPES),
        F.when(field["trade_id"].isNotNull() & (~field["trade_id"].rlike(INTEGER_RE)
                                                  | field["trade_id"].cast("long").isNull()),
               F.concat(F.lit("trade_id "), _quoted(field["trade_id"]), F.lit(" is not a non-negative integer"))),
        _timestamp_problem("ts_event", field["ts_event"]),
        _timestamp_problem("ts_ingest", field["ts_ingest"]),
    ]
    return parsed.withColumn("reason", F.coalesce(*checks))


def to_silver_rows(parsed_df):
    """Valid trades from parse_bronze's output, typed, in Silver's column order, plus `v1_record` for the dedup key
    (the Kafka coordinates when there is no trade_id, so v1 trades are never merged with each other)."""
    from pyspark.sql import functions as F

    ts_event = F.col("j.ts_event").cast("timestamp")
    return (
        parsed_df.where(F.col("reason").isNull())
        .select(
            F.col("j.symbol").alias("symbol"),
            F.col("j.price").cast(DECIMAL_TYPE).alias("price"),
            F.col("j.size").cast(DECIMAL_TYPE).alias("size"),
            F.col("j.side").alias("side"),
            F.col("j.ord_type").alias("ord_type"),
            F.col("j.trade_id").cast("long").alias("trade_id"),
            ts_event.alias("ts_event"),
            F.col("j.ts_ingest").cast("timestamp").alias("ts_ingest"),
            "topic", "partition", "offset", "ts_kafka",
            F.to_date(ts_event).alias("trade_date"),  # the session time zone is UTC (build_spark)
            F.when(F.col("j.trade_id").isNull(), F.concat_ws(":", "topic", "partition", "offset")).alias("v1_record"),
        )
    )


def deduplicate(silver_rows_df, watermark: str):
    """Drop a trade seen again within `watermark` of its first copy (in Kafka time); Silver's columns only."""
    return (silver_rows_df.withWatermark("ts_kafka", watermark)
            .dropDuplicatesWithinWatermark(DEDUP_KEY)
            .select(*SILVER_COLUMNS))


def to_quarantine(parsed_df):
    """Invalid records from parse_bronze's output, in the quarantine's column order."""
    from pyspark.sql import functions as F

    return (parsed_df.where(F.col("reason").isNotNull())
            .select("value_raw", "topic", "partition", "offset", "ts_kafka", "key", "reason",
                    F.current_timestamp().alias("quarantined_at")))


def format_batch(name: str, progress: dict[str, Any]) -> str | None:
    """One log line per micro-batch of one of the two queries (None for a batch that read nothing)."""
    if not progress.get("numInputRows"):
        return None
    parts = [f"{name}", f"batch={progress.get('batchId')}", f"bronze_rows={progress.get('numInputRows', 0)}"]
    for operator in progress.get("stateOperators", []):
        parts.append(f"duplicates_dropped={operator.get('numDroppedDuplicateRows', 0)}")
        parts.append(f"late_dropped={operator.get('numRowsDroppedByWatermark', 0)}")
        parts.append(f"state_rows={operator.get('numRowsTotal', 0)}")
    for metrics in (progress.get("observedMetrics") or {}).values():
        parts.extend(f"{key}={value}" for key, value in metrics.items())
    parts.append(f"duration_ms={progress.get('durationMs', {}).get('triggerExecution', 0)}")
    if progress.get("eventTime", {}).get("watermark"):
        parts.append(f"watermark={progress['eventTime']['watermark']}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# I/O


def read_bronze(spark, bronze: str, max_files_per_trigger: int | None):
    reader = spark.readStream.schema(BRONZE_SCHEMA)
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    return reader.parquet(bronze)


def start_queries(spark, args: argparse.Namespace) -> dict[str, Any]:
    """Start the Silver and the quarantine queries; {name: StreamingQuery}."""
    from pyspark.sql import functions as F

    parsed = parse_bronze(read_bronze(spark, args.bronze, args.max_files_per_trigger))
    silver = deduplicate(to_silver_rows(parsed), args.watermark)
    quarantine = to_quarantine(parsed).observe("quarantine_counts", F.count(F.lit(1)).alias("quarantined"))
    outputs = (("silver", silver, args.out, ["trade_date"]), ("quarantine", quarantine, args.quarantine, []))
    return {
        name: start_parquet_sink(df, path=path, checkpoint=f"{args.checkpoint.rstrip('/')}/{name}",
                                 trigger=args.trigger, available_now=args.available_now,
                                 name=f"bronze_to_silver_trades_{name}", partition_by=partition_by)
        for name, df, path, partition_by in outputs
    }


# ---------------------------------------------------------------------------------------------------------------------
# The job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bronze", default=DEFAULT_BRONZE, help="Bronze Parquet folder to read (default %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="Silver Parquet folder (default %(default)s)")
    parser.add_argument("--quarantine", default=DEFAULT_QUARANTINE,
                        help="folder for records that are not valid trades (default %(default)s)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint folder (holds silver/ and quarantine/); one per --out, never shared "
                             "(default %(default)s)")
    parser.add_argument("--trigger", default="2 seconds", type=parse_trigger,
                        help='micro-batch interval, e.g. "2 seconds" (default "2 seconds")')
    parser.add_argument("--watermark", default=DEFAULT_WATERMARK, type=parse_trigger,
                        help="how late (in Kafka time) a duplicate may arrive and still be dropped, e.g. "
                             '"10 minutes" (default "%(default)s")')
    parser.add_argument("--available-now", action="store_true",
                        help="process everything Bronze holds now, in as many batches as needed, then exit")
    parser.add_argument("--max-files-per-trigger", type=positive_int,
                        help="cap on Bronze files per micro-batch (bounds memory when catching up)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    for path, name in ((args.out, "silver"), (args.quarantine, "quarantine")):
        mismatch = sink_pairing_problem(path, f"{args.checkpoint.rstrip('/')}/{name}")
        if mismatch:
            print(f"error: {mismatch}", file=sys.stderr)
            return 2
    stop = StopRequest().install()
    spark = build_spark("bronze_to_silver_trades", conf={"spark.sql.session.timeZone": "UTC"})
    queries = start_queries(spark, args)
    log.info("Bronze %s -> Silver %s + quarantine %s (checkpoint %s, watermark %s on ts_kafka, %s)", args.bronze,
             args.out, args.quarantine, args.checkpoint, args.watermark,
             "available-now" if args.available_now else f"trigger every {args.trigger}")
    code = run_queries(queries, stop, describe=format_batch)
    log.info("stopped; Silver is at %s, quarantine at %s", args.out, args.quarantine)
    spark.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
