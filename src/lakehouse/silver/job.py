"""Bronze -> Silver: parse, type and deduplicate the trades Bronze landed; quarantine what cannot be parsed.

Reads the Bronze Parquet folder as a stream (only files Bronze committed in its _spark_metadata) and, per micro-batch,
merges the valid trades into the Silver Delta table and the invalid records into the quarantine Delta table.

Silver (<out>, a Delta table partitioned by trade_date), one row per trade, columns in this order:
    symbol string, price decimal(38,18), size decimal(38,18), side string, ord_type string, trade_id long (null for
    API v1), v1_ordinal int (API v1 only, see below; null for v2), ts_event timestamp, ts_ingest timestamp,
    source string ("ws", or "rest" for a trade the producer backfilled from Kraken's REST API), topic string,
    partition int, offset long, ts_kafka timestamp, trade_date date (the UTC date of ts_event)

Quarantine (<quarantine>, a Delta table), one row per Bronze record that is not a valid trade:
    value_raw string (the Kafka bytes unchanged), topic, partition, offset, ts_kafka, key, reason string,
    quarantined_at timestamp

Every Bronze record ends up in exactly one of the two, or is recognised as a copy of a trade Silver already holds:
rows in = inserted + duplicates + quarantined. Reasons are human-readable: "not valid UTF-8", "not JSON", "missing
field price", "price 'abc' is not a decimal", "size '0.0000000000000000001' does not fit decimal(38,18)", "side
'hold' is not buy or sell", "ts_event '...' is not an ISO-8601 timestamp with a zone and at most 6 fractional
digits", ...

Exact values. price and size arrive as decimal text; decimal(38,18) holds 20 integer and 18 fractional digits,
far beyond anything Kraken sends. Spark's cast to decimal ROUNDS extra fractional digits, so the text itself is
checked first: a value goes to Silver only when its digits past the 18th decimal place are all zeros and its
integer part has at most 20 significant digits; anything else is quarantined, never rounded. decimal(38,18) has a
fixed scale: "0.00044780" is stored as 0.000447800000000000, numerically equal (trailing zeros of the text are not
kept as a scale; compare as numbers). ts_event/ts_ingest must be ISO-8601 with at most 6 fractional digits (Spark
would silently truncate a 7th) and Z or an offset; they are stored as UTC microsecond timestamps.

Each trade once, exactly: the table itself is the deduplication state, so a copy is recognised however late it
arrives (a producer restarted without memory, a v2 snapshot re-sent on reconnect, a replayed recording, days later).
  - API v2 trades carry Kraken's trade_id: a trade is (symbol, trade_id), and an insert-only MERGE on
    (symbol, trade_date, trade_id) inserts it only when Silver does not hold it yet. Copies inside one micro-batch
    keep the first by Kafka (partition, offset).
  - API v1 trades have no id. A trade is its values (symbol, ts_event to the microsecond, price, size, side,
    ord_type) plus v1_ordinal, which tells identical trades apart: identical trades received in one WebSocket frame
    (the producer stamps ts_ingest per frame; one order filling two equal orders at the same price in the same
    microsecond) are numbered 1, 2, ... in Kafka order, also when the frame's trades reach Silver in different
    micro-batches. A copy received in another frame (a reconnect's overlap, a replayed recording) gets the same
    numbers, is recognised and is not inserted. The limit: nothing tells a second identical trade from a copy when
    both came in frames of their own; the second is then taken for a copy.
  Each MERGE is pruned to the batch's trade_date partitions and, through Delta's file statistics, to the batch's
  trade_id (v2) or ts_event (v1) range per symbol, so its cost follows the batch, not the table.

Exactly once, also for the quarantine (insert-only MERGE on topic, partition, offset): every write of a micro-batch
carries a Delta transaction id (the query's id and the batch id), so a batch redone after Ctrl-C, SIGTERM or kill -9
changes nothing that already landed (lakehouse/lake/delta.py). Rebuilding (new tables and checkpoint over the same
Bronze) gives the same rows, except quarantined_at. Auto compaction keeps the number of files small; compaction or VACUUM
running beside the job (`make optimize`) never fails it: a write that conflicts with a compaction is retried.

Usage (examples in the entry point's docstring, spark/jobs/bronze_to_silver_trades.py):
    python spark/jobs/bronze_to_silver_trades.py --help

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed;
2 a bad flag, or a table and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import BRONZE_PATH, QUARANTINE_PATH, SILVER_CHECKPOINT, SILVER_PATH
from lakehouse.lake.delta import (WRITER_SESSION_CONF, BatchWriter, Maintenance, add_maintenance_argument, ensure_table,
                                  in_list, retry_on_conflict, sql_string, table_pairing_problem)
from lakehouse.spark.flags import add_drain_arguments, add_master_argument, parse_trigger, positive_int, trigger_kwargs
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_queries, wait_until_ready
from lakehouse.spark.session import build_spark
from lakehouse.spark.sinks import path_exists

QUERY_NAME = "bronze_to_silver_trades"

BRONZE_SCHEMA = ("topic string, partition int, offset long, ts_kafka timestamp, ts_type int, key string, "
                 "value_raw string")
DECIMAL_TYPE = "decimal(38,18)"
SILVER_DDL = ("symbol STRING, price DECIMAL(38,18), size DECIMAL(38,18), side STRING, ord_type STRING, "
              "trade_id BIGINT, v1_ordinal INT, ts_event TIMESTAMP, ts_ingest TIMESTAMP, source STRING, "
              "topic STRING, partition INT, offset BIGINT, ts_kafka TIMESTAMP, trade_date DATE")
SILVER_COLUMNS = [column.split()[0] for column in SILVER_DDL.split(", ")]
QUARANTINE_DDL = ("value_raw STRING, topic STRING, partition INT, offset BIGINT, ts_kafka TIMESTAMP, key STRING, "
                  "reason STRING, quarantined_at TIMESTAMP")
QUARANTINE_COLUMNS = [column.split()[0] for column in QUARANTINE_DDL.split(", ")]
# Fields a trade must carry (JSON null counts as missing); trade_id is optional (null on API v1), source optional
# (producers before REST backfill did not send it: their trades came from the WebSocket), api is ignored.
REQUIRED_FIELDS = ["symbol", "price", "size", "side", "ord_type", "ts_event", "ts_ingest"]
JSON_FIELDS = [*REQUIRED_FIELDS, "trade_id", "source"]
SIDES = ("buy", "sell")
ORD_TYPES = ("limit", "market")
SOURCES = ("ws", "rest")
# What makes two v1 trades the same trade (they have no id); v1_ordinal tells identical ones apart.
V1_IDENTITY = ["symbol", "trade_date", "ts_event", "price", "size", "side", "ord_type"]

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
        F.when(field["source"].isNotNull(), _choice_problem("source", field["source"], SOURCES)),
    ]
    return parsed.withColumn("reason", F.coalesce(*checks))


def to_silver_rows(parsed_df):
    """Valid trades from parse_bronze's output, typed, in Silver's column order (v1_ordinal still null)."""
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
            F.lit(None).cast("int").alias("v1_ordinal"),
            ts_event.alias("ts_event"),
            F.col("j.ts_ingest").cast("timestamp").alias("ts_ingest"),
            F.coalesce(F.col("j.source"), F.lit("ws")).alias("source"),
            "topic", "partition", "offset", "ts_kafka",
            F.to_date(ts_event).alias("trade_date"),  # the session time zone is UTC (build_spark)
        )
    )


def v2_batch_trades(silver_rows_df):
    """The batch's API v2 trades, each (symbol, trade_date, trade_id) once: the first copy by Kafka position."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("symbol", "trade_date", "trade_id").orderBy("topic", "partition", "offset")
    return (silver_rows_df.where(F.col("trade_id").isNotNull())
            .withColumn("_copy", F.row_number().over(first)).where("_copy = 1").select(*SILVER_COLUMNS))


def v1_batch_trades(v1_rows_df, held_df=None):
    """The batch's API v1 trades (no trade_id) with their v1_ordinal, each (values, v1_ordinal) once.

    Identical trades received in one WebSocket frame share ts_ingest (the producer stamps it per frame): v1_ordinal is
    a trade's rank among them by Kafka position, counting those Silver already holds (`held_df`: Silver's v1 rows
    of the batch's span; a frame cut across micro-batches), so reprocessing the same records gives the same
    numbers. A copy received in another frame (a reconnect's overlap, a replay) gets the same numbers as the
    original: only the first by Kafka position is kept here, and the MERGE skips it when Silver holds it already."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame, position = [*V1_IDENTITY, "ts_ingest"], ["topic", "partition", "offset"]
    members = v1_rows_df.select(*frame, *position)
    if held_df is not None:
        members = members.unionByName(held_df.select(*frame, *position)).distinct()
    ranked = members.withColumn("v1_ordinal", F.row_number().over(
        Window.partitionBy(*frame).orderBy(*position)).cast("int"))
    first = Window.partitionBy(*V1_IDENTITY, "v1_ordinal").orderBy(*position)
    return (v1_rows_df.drop("v1_ordinal").join(ranked, [*frame, *position])
            .withColumn("_copy", F.row_number().over(first)).where("_copy = 1").select(*SILVER_COLUMNS))


def v1_held(silver_table_df, prune: str):
    """Silver's v1 trades within `prune` (the batch's symbols, dates and ts_event span)."""
    from pyspark.sql import functions as F

    return silver_table_df.where(prune).where(F.col("trade_id").isNull())


def batch_summary(parsed_df):
    """One row per kind of record and group, in one pass over the batch: kind "v2" / "v1" (valid trades with / without
    trade_id, grouped by symbol) or "bad" (grouped by topic and partition), with the count n and what the MERGEs are
    pruned by: first/last trade_id, first/last ts_event (as text), the trade_dates (as text), first/last offset."""
    from pyspark.sql import functions as F

    good = F.col("reason").isNull()
    kind = F.when(~good, "bad").when(F.col("j.trade_id").isNull(), "v1").otherwise("v2")
    ts_event = F.col("j.ts_event").cast("timestamp")
    return (parsed_df.groupBy(kind.alias("kind"), F.when(good, F.col("j.symbol")).otherwise(F.col("topic")).alias("group"),
                              F.when(~good, F.col("partition")).alias("partition"))
            .agg(F.count(F.lit(1)).alias("n"),
                 F.min(F.col("j.trade_id").cast("long")).alias("first_id"),
                 F.max(F.col("j.trade_id").cast("long")).alias("last_id"),
                 F.min(ts_event).cast("string").alias("first_ts"), F.max(ts_event).cast("string").alias("last_ts"),
                 F.collect_set(F.to_date(ts_event).cast("string")).alias("dates"),
                 F.min("offset").alias("first_offset"), F.max("offset").alias("last_offset")))


def to_quarantine(parsed_df):
    """Invalid records from parse_bronze's output, in the quarantine's column order."""
    from pyspark.sql import functions as F

    return (parsed_df.where(F.col("reason").isNotNull())
            .select("value_raw", "topic", "partition", "offset", "ts_kafka", "key", "reason",
                    F.current_timestamp().alias("quarantined_at")))


def id_ranges(rows: list[Any], alias: str = "t.") -> str:
    """SQL pruning the target of a v2 MERGE to the batch: its dates and, per symbol, its trade_id range (Delta's file
    statistics then skip every file outside it). `rows`: (symbol, first trade_id, last trade_id, [dates])."""
    dates = sorted({d for row in rows for d in row[3]})
    per_symbol = " OR ".join(f"({alias}symbol = {sql_string(r[0])} AND {alias}trade_id BETWEEN {int(r[1])} "
                             f"AND {int(r[2])})" for r in rows)
    return f"{in_list(f'{alias}trade_date', dates)} AND ({per_symbol or 'FALSE'})"


def time_ranges(rows: list[Any], alias: str = "t.") -> str:
    """The same for v1 trades, by ts_event: `rows`: (symbol, first ts_event, last ts_event, [dates])."""
    dates = sorted({d for row in rows for d in row[3]})
    per_symbol = " OR ".join(
        f"({alias}symbol = {sql_string(r[0])} AND {alias}ts_event BETWEEN TIMESTAMP {sql_string(r[1])} "
        f"AND TIMESTAMP {sql_string(r[2])})" for r in rows)
    return f"{in_list(f'{alias}trade_date', dates)} AND ({per_symbol or 'FALSE'})"


def offset_ranges(rows: list[Any]) -> str:
    """The same for the quarantine, by Kafka position: `rows`: (topic, partition, first offset, last offset)."""
    return " OR ".join(f"(t.topic = {sql_string(r[0])} AND t.partition = {int(r[1])} "
                       f"AND t.offset BETWEEN {int(r[2])} AND {int(r[3])})" for r in rows) or "FALSE"


V2_MATCH = "t.symbol = s.symbol AND t.trade_date = s.trade_date AND t.trade_id = s.trade_id"
V1_MATCH = (" AND ".join(f"t.{c} = s.{c}" for c in V1_IDENTITY)
            + " AND t.trade_id IS NULL AND t.v1_ordinal = s.v1_ordinal")
QUARANTINE_MATCH = "t.topic = s.topic AND t.partition = s.partition AND t.offset = s.offset"


def insert_only_merge(target: str, source_view: str, prune: str, match: str) -> str:
    """MERGE SQL inserting the source rows the target does not hold yet (`prune` limits the target files read)."""
    return (f"MERGE INTO delta.`{target}` AS t USING {source_view} AS s ON ({prune}) AND {match} "
            f"WHEN NOT MATCHED THEN INSERT *")


def format_batch(batch_id: int, counts: dict[str, int], seconds: float) -> str:
    """One log line per micro-batch."""
    return (f"silver batch={batch_id} bronze_rows={counts['bronze_rows']} inserted={counts['inserted']} "
            f"duplicates={counts['duplicates']} quarantined={counts['quarantined']} "
            f"duration_ms={int(seconds * 1000)}")


# ---------------------------------------------------------------------------------------------------------------------
# I/O


def read_bronze(spark, bronze: str, max_files_per_trigger: int | None):
    reader = spark.readStream.schema(BRONZE_SCHEMA)
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
    return reader.parquet(bronze)


class SilverBatchWriter(BatchWriter):
    """foreachBatch: one Bronze micro-batch -> insert-only MERGEs into Silver and the quarantine, idempotent."""

    def __init__(self, spark, query_name: str, out: str, quarantine: str) -> None:
        super().__init__(spark, query_name)
        self.out, self.quarantine = out, quarantine

    def write(self, batch_df, batch_id: int, txn: Callable[[str], Any]) -> None:
        from pyspark.sql import functions as F

        started = time.monotonic()
        parsed = parse_bronze(batch_df).persist()
        try:
            summary = batch_summary(parsed).collect()  # one pass: counts and every MERGE's pruning ranges
            v2_ranges = [(r.group, r.first_id, r.last_id, r.dates) for r in summary if r.kind == "v2"]
            v1_ranges = [(r.group, r.first_ts, r.last_ts, r.dates) for r in summary if r.kind == "v1"]
            bad_ranges = [(r.group, r.partition, r.first_offset, r.last_offset) for r in summary if r.kind == "bad"]
            rows = to_silver_rows(parsed)
            inserted = 0
            if v2_ranges:  # no trade of a kind in the batch: no commit at all
                inserted += self.merge(v2_batch_trades(rows), "silver-v2", self.out, id_ranges(v2_ranges), V2_MATCH,
                                       txn)
            if v1_ranges:
                held = v1_held(batch_df.sparkSession.read.format("delta").load(self.out),
                               time_ranges(v1_ranges, alias=""))
                inserted += self.merge(v1_batch_trades(rows.where(F.col("trade_id").isNull()), held), "silver-v1",
                                       self.out, time_ranges(v1_ranges), V1_MATCH, txn)
            if bad_ranges:
                self.merge(to_quarantine(parsed), "quarantine", self.quarantine, offset_ranges(bad_ranges),
                           QUARANTINE_MATCH, txn)
            bronze_rows = sum(r.n for r in summary)
            quarantined = sum(r.n for r in summary if r.kind == "bad")
            counts = {"bronze_rows": bronze_rows, "inserted": inserted, "quarantined": quarantined,
                      "duplicates": bronze_rows - quarantined - inserted}
            log.info("%s", format_batch(batch_id, counts, time.monotonic() - started))
        finally:
            parsed.unpersist()

    @staticmethod
    def merge(df, output: str, table: str, prune: str, match: str, txn: Callable[[str], Any]) -> int:
        """Insert-only MERGE of df into table under this batch's transaction id for `output`; rows inserted."""
        session = df.sparkSession
        view = f"silver_batch_{output.replace('-', '_')}"
        df.createOrReplaceTempView(view)

        def run() -> int:
            with txn(output):
                result = session.sql(insert_only_merge(table, view, prune, match)).collect()
            return int(result[0]["num_inserted_rows"]) if result else 0

        return retry_on_conflict(run, f"silver batch MERGE into {table}")


def bronze_ready(spark, bronze: str) -> bool:
    """Bronze can be read as a stream once its job committed a first batch (its _spark_metadata exists)."""
    return path_exists(spark, f"{bronze.rstrip('/')}/_spark_metadata")


def start_query(spark, args: argparse.Namespace, query_name: str = QUERY_NAME):
    """Create the tables if needed and start the Bronze -> Silver query; returns the StreamingQuery."""
    ensure_table(spark, args.out, SILVER_DDL, partition_by=["trade_date"], owner=QUERY_NAME)
    ensure_table(spark, args.quarantine, QUARANTINE_DDL, partition_by=[], owner=QUERY_NAME)
    writer = SilverBatchWriter(spark, query_name, args.out, args.quarantine)
    return (read_bronze(spark, args.bronze, args.max_files_per_trigger).writeStream
            .foreachBatch(writer)
            .option("checkpointLocation", args.checkpoint)
            .trigger(**trigger_kwargs(args.trigger, args.available_now))
            .queryName(query_name)
            .start())


# ---------------------------------------------------------------------------------------------------------------------
# The job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    parser.add_argument("--bronze", default=BRONZE_PATH, help="Bronze Parquet folder to read (default %(default)s)")
    parser.add_argument("--out", default=SILVER_PATH, help="Silver Delta table (default %(default)s)")
    parser.add_argument("--quarantine", default=QUARANTINE_PATH,
                        help="Delta table for records that are not valid trades (default %(default)s)")
    parser.add_argument("--checkpoint", default=SILVER_CHECKPOINT,
                        help="checkpoint folder; one per --out, never shared (default %(default)s)")
    parser.add_argument("--trigger", default="2 seconds", type=parse_trigger,
                        help='micro-batch interval, e.g. "2 seconds" (default "2 seconds")')
    parser.add_argument("--watermark", type=parse_trigger,
                        help="no longer used: Silver deduplicates against the table itself, however late a copy "
                             "arrives (accepted so that older commands keep working)")
    parser.add_argument("--available-now", action="store_true",
                        help="process everything Bronze holds now, in as many batches as needed, then exit")
    parser.add_argument("--max-files-per-trigger", type=positive_int,
                        help="cap on Bronze files per micro-batch (bounds memory when catching up)")
    add_maintenance_argument(parser)
    add_drain_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    if args.watermark:
        log.warning("--watermark is no longer used: Silver deduplicates against the table itself")
    for table in (args.out, args.quarantine):
        mismatch = table_pairing_problem(table, args.checkpoint)
        if mismatch:
            print(f"error: {mismatch}", file=sys.stderr)
            return 2
    stop = StopRequest().install()
    spark = build_spark(QUERY_NAME, delta=True, conf=WRITER_SESSION_CONF, master=args.master)
    if not wait_until_ready(lambda: bronze_ready(spark, args.bronze), stop,
                            f"Bronze at {args.bronze} has no committed batch yet: waiting for it"):
        spark.stop()
        return 0
    query = start_query(spark, args)
    log.info("Bronze %s -> Silver %s + quarantine %s (Delta; checkpoint %s, %s)", args.bronze, args.out,
             args.quarantine, args.checkpoint,
             "available-now" if args.available_now else f"trigger every {args.trigger}")
    maintenance = Maintenance(spark, [args.out, args.quarantine], args.maintenance_every).start()
    drain = {"silver": drain_restart(start_query, spark, args)} if args.drain_on_stop else None
    code = run_queries({"silver": query}, stop, describe=lambda _name, _progress: None, drain=drain,
                       drain_timeout=args.drain_timeout)
    log.info("stopped; Silver is at %s, quarantine at %s", args.out, args.quarantine)
    maintenance.stop()
    spark.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
