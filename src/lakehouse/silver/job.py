"""Bronze -> Silver: parse, type and deduplicate the trades Bronze landed; quarantine what cannot be parsed.

Reads the files Bronze committed (its _spark_metadata) as a stream, in the order Bronze committed them, through the
project's source (spark/source/lakehouse/spark/SinkFilesSource.java: each trigger reads only Bronze's new log files,
where Spark's own file source reads the list of every file Bronze ever wrote), and, per micro-batch, reads those
Parquet files and merges the valid trades into the Silver Delta table and the invalid records into the quarantine
Delta table. With the
layers in one application (all_layers.py, `make run`), the same batch then folds its new trades into Gold
(lakehouse.gold.table.GoldWriter.follow): one pass per batch for both layers.

Silver (<out>, a Delta table partitioned by trade_date), one row per trade, columns in this order:
    symbol string, price decimal(38,18), size decimal(38,18), side string, ord_type string, trade_id long (null for
    API v1), v1_ordinal int (API v1 only, see below; null for v2), ts_event timestamp, ts_ingest timestamp,
    source string ("ws", or "rest" for a trade the producer backfilled from Kraken's REST API), topic string,
    partition int, offset long, ts_kafka timestamp, trade_date date (the UTC date of ts_event)
It records its changes (delta.enableChangeDataFeed): Gold follows them.

Quarantine (<quarantine>, a Delta table), one row per Bronze record that is not a valid trade:
    value_text string (the record's value where it is valid UTF-8, else null), value_bytes binary (its bytes as
    Kafka held them), topic, partition, offset, ts_kafka, key_text, key_bytes, reason string, quarantined_at timestamp
A quarantine written by an older version (value_raw and key as strings) is migrated when the job starts.

Every Bronze record ends up in exactly one of the two, or is recognised as a copy of a trade Silver already holds:
rows in = inserted + duplicates + quarantined. What is checked, and the exact values: lakehouse/silver/parse.py.

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

Exactly once, also for the quarantine (an insert-only MERGE on topic, partition, offset): a batch redone after
Ctrl-C, SIGTERM or kill -9 inserts only what did not land, as every write matches on the rows' identity. A MERGE also
fails its commit when another writer inserted into what it read meanwhile, and is then retried from a fresh read.
Rebuilding (new tables and checkpoint over the same Bronze) gives the same rows, except quarantined_at. Auto
compaction keeps the number of files small; compaction or VACUUM beside the job (`make optimize`) never fails it.

Usage (examples in the entry point's docstring, spark/jobs/bronze_to_silver_trades.py):
    python spark/jobs/bronze_to_silver_trades.py --help

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed;
2 a bad flag, a table and a checkpoint that do not belong together, or the Bronze reader's jar not built (make setup).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from typing import Any, Optional

from lakehouse.bronze.job import DEFAULT_MAX_OFFSETS_PER_TRIGGER
from lakehouse.common.logs import configure_logging
from lakehouse.defaults import BRONZE_PATH, QUARANTINE_PATH, SILVER_CHECKPOINT, SILVER_PATH
from lakehouse.lake.delta import (WRITER_SESSION_CONF, Maintenance, add_maintenance_argument, commit_info,
                                  committed_version, ensure_table, is_delta_table, retry_on_conflict, set_properties,
                                  table_pairing_problem)
from lakehouse.observe import status
from lakehouse.silver.parse import (BRONZE_SCHEMA, DEFAULT_FUTURE_TOLERANCE_S, OLD_QUARANTINE_COLUMNS,
                                    QUARANTINE_COLUMNS, QUARANTINE_DDL, SILVER_DDL, batch_summary, id_ranges,
                                    offset_ranges, parse_bronze, quarantine_match, quarantine_rows, time_ranges,
                                    to_quarantine, to_silver_rows, v1_batch_trades, v1_match, v2_batch_trades,
                                    v2_match)
from lakehouse.spark.jars import SINK_FILES_CLASS, sink_files_source_problem
from lakehouse.spark.flags import (add_drain_arguments, add_master_argument, parse_seconds, parse_trigger,
                                   positive_int, trigger_kwargs)
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_queries, wait_until_ready
from lakehouse.spark.session import build_spark
from lakehouse.spark.sinks import path_exists

QUERY_NAME = "bronze_to_silver_trades"
# Bronze files per micro-batch. Spark 3.5's file source bounds files only, and Bronze's own bound makes each of its
# files hold at most DEFAULT_MAX_OFFSETS_PER_TRIGGER rows, so a Silver batch holds at most
# DEFAULT_MAX_FILES_PER_TRIGGER x DEFAULT_MAX_OFFSETS_PER_TRIGGER = 200,000 Bronze rows, however much Bronze holds when
# Silver (re)starts. (Bronze files written by an older version without the bound may hold more.)
DEFAULT_MAX_FILES_PER_TRIGGER = 4
MAX_ROWS_PER_BATCH = DEFAULT_MAX_FILES_PER_TRIGGER * DEFAULT_MAX_OFFSETS_PER_TRIGGER
SILVER_PROPERTIES = {"delta.enableChangeDataFeed": "true"}  # Gold follows Silver's changes

log = logging.getLogger("bronze_to_silver_trades")


def format_batch(batch_id: int, counts: dict[str, int], seconds: float) -> str:
    """One log line per micro-batch."""
    return (f"silver batch={batch_id} bronze_rows={counts['bronze_rows']} inserted={counts['inserted']} "
            f"duplicates={counts['duplicates']} quarantined={counts['quarantined']} "
            f"duration_ms={int(seconds * 1000)}")


# ---------------------------------------------------------------------------------------------------------------------
# I/O


def read_bronze(spark, bronze: str, max_files_per_trigger: int):
    """Bronze's committed files as a stream, at most `max_files_per_trigger` per micro-batch, in the order Bronze
    committed them: rows (path, size, file_index) from SinkFilesSource (its offset in Silver's checkpoint is the
    position of the next file, {"files": N}; a checkpoint of Spark's own file source is taken over). bronze_records
    reads a batch's files."""
    return (spark.readStream.format(SINK_FILES_CLASS).option("maxFilesPerTrigger", str(max_files_per_trigger))
            .load(bronze))


def glob_escaped(path: str) -> str:
    """`path` as a Hadoop glob pattern that matches only itself (Spark reads paths as patterns: a folder named
    "lake [old]" would otherwise match "lake o" and "lake d", or nothing)."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def bronze_records(session, files_df):
    """The Bronze records of a micro-batch's files, read as Parquet with Bronze's schema, each file as named."""
    paths = [glob_escaped(row.path) for row in files_df.select("path").collect()]
    if not paths:
        return session.createDataFrame([], BRONZE_SCHEMA)
    return session.read.schema(BRONZE_SCHEMA).parquet(*paths)


def over_bronze_files(writer):
    """foreachBatch over read_bronze's rows: `writer` gets the batch's Bronze records and its batch id."""
    def write_batch(files_df, batch_id: int) -> None:
        writer(bronze_records(files_df.sparkSession, files_df), batch_id)
    return write_batch


def insert_new(session, source_df, table: str, condition) -> tuple[int, Optional[int]]:
    """Insert-only MERGE of `source_df` into `table` on `condition` (Columns over t. and s.): (the rows it inserted,
    the table version it committed or None). Retried from a fresh read when it loses a race with another commit."""
    from delta.tables import DeltaTable

    def merge() -> Optional[int]:
        return committed_version(session, lambda: DeltaTable.forPath(session, table).alias("t").merge(
            source_df.alias("s"), condition).whenNotMatchedInsertAll().execute())

    version = retry_on_conflict(merge, f"silver batch MERGE into {table}")
    return (0, None) if version is None else (inserted_rows(session, table, version), version)


def inserted_rows(session, table: str, version: int, look_back: int = 5) -> int:
    """How many rows the MERGE that committed `version` inserted (from the commit's own metrics). `version` is the
    session's last commit: when the MERGE's write triggered auto compaction, that is the compaction's commit, right
    after the MERGE, so the newest MERGE at or before it is the one."""
    for candidate in range(version, max(version - look_back, -1), -1):
        info = commit_info(session, table, candidate)
        if info.get("operation") == "MERGE":
            return int((info.get("operationMetrics") or {}).get("numTargetRowsInserted", 0))
    return 0


class SilverWriter:
    """foreachBatch: one Bronze micro-batch -> insert-only MERGEs into Silver and the quarantine; with a GoldWriter,
    the trades it inserted are folded into Gold in the same pass."""

    def __init__(self, out: str, quarantine: str, future_tolerance_s: int = DEFAULT_FUTURE_TOLERANCE_S,
                 gold: Any = None) -> None:
        self.out, self.quarantine, self.future_tolerance_s, self.gold = out, quarantine, future_tolerance_s, gold
        self.last: dict[str, Any] = {}  # the last batch's figures (the log line, the status page)

    def __call__(self, batch_df, batch_id: int) -> None:
        from pyspark.sql import functions as F

        started = time.monotonic()
        session = batch_df.sparkSession
        parsed = parse_bronze(batch_df, self.future_tolerance_s).persist()
        try:
            summary = batch_summary(parsed).collect()  # one pass: counts and every MERGE's pruning ranges
            v2_ranges = [(r.group, r.first_id, r.last_id, r.dates) for r in summary if r.kind == "v2"]
            v1_ranges = [(r.group, r.first_ts, r.last_ts, r.dates) for r in summary if r.kind == "v1"]
            bad_ranges = [(r.group, r.partition, r.first_offset, r.last_offset) for r in summary if r.kind == "bad"]
            rows = to_silver_rows(parsed)
            inserted, silver_version = 0, None
            if v2_ranges:  # no trade of a kind in the batch: no commit at all
                count, version = insert_new(session, v2_batch_trades(rows), self.out,
                                            id_ranges(v2_ranges) & v2_match())
                inserted, silver_version = inserted + count, version if version is not None else silver_version
            if v1_ranges:
                held = (session.read.format("delta").load(self.out).where(time_ranges(v1_ranges, alias=""))
                        .where(F.col("trade_id").isNull()))
                count, version = insert_new(session, v1_batch_trades(rows.where(F.col("trade_id").isNull()), held),
                                            self.out, time_ranges(v1_ranges) & v1_match())
                inserted, silver_version = inserted + count, version if version is not None else silver_version
            if bad_ranges:
                insert_new(session, to_quarantine(parsed), self.quarantine, offset_ranges(bad_ranges)
                           & quarantine_match())
            if self.gold is not None and silver_version is not None:
                self.gold.follow(session, through=silver_version)
            bronze_rows = sum(r.n for r in summary)
            quarantined = sum(r.n for r in summary if r.kind == "bad")
            counts = {"bronze_rows": bronze_rows, "inserted": inserted, "quarantined": quarantined,
                      "duplicates": bronze_rows - quarantined - inserted}
            self.last = {**counts, "batch": batch_id, "silver_version": silver_version,
                         "duration_ms": int((time.monotonic() - started) * 1000)}
            # make status and the page: the batch's counts (a batch that inserted nothing leaves the version as it was)
            status.publish("silver", **{k: v for k, v in self.last.items() if v is not None})
            log.info("%s", format_batch(batch_id, counts, time.monotonic() - started))
        finally:
            parsed.unpersist()


def bronze_reader_problem(spark) -> Optional[str]:
    """Why this session cannot read Bronze as Silver does (the source's jar is not among its jars), or None."""
    return sink_files_source_problem(spark.conf.get("spark.jars", ""))


def bronze_ready(spark, bronze: str) -> bool:
    """Bronze can be read as a stream once its job committed a first batch (its _spark_metadata exists)."""
    return path_exists(spark, f"{bronze.rstrip('/')}/_spark_metadata")


def ensure_silver(spark, out: str) -> None:
    """Create Silver if needed, recording its changes (an older Silver gets the property: one commit)."""
    ensure_table(spark, out, SILVER_DDL, partition_by=["trade_date"], owner=QUERY_NAME, properties=SILVER_PROPERTIES)
    set_properties(spark, out, SILVER_PROPERTIES)


def ensure_quarantine(spark, path: str) -> None:
    """Create the quarantine if needed; one written by an older version (value_raw and key as strings holding the
    raw bytes) is rewritten once with the bytes as BINARY and their text where valid UTF-8 (time travel keeps the old
    version)."""
    from pyspark.sql import functions as F

    if is_delta_table(spark, path):
        old = spark.read.format("delta").load(path)
        if old.columns == OLD_QUARANTINE_COLUMNS:
            migrated = quarantine_rows(old, F.col("reason"), F.col("quarantined_at")).select(*QUARANTINE_COLUMNS)
            count = old.count()
            (migrated.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path))
            log.info("quarantine %s: %d row(s) migrated to value_bytes/value_text and key_bytes/key_text", path,
                     count)
    ensure_table(spark, path, QUARANTINE_DDL, partition_by=[], owner=QUERY_NAME)


def start_query(spark, args: argparse.Namespace, query_name: str = QUERY_NAME, gold: Any = None):
    """Create the tables if needed and start the Bronze -> Silver query (folding into Gold too, with a GoldWriter);
    returns the StreamingQuery."""
    ensure_silver(spark, args.out)
    ensure_quarantine(spark, args.quarantine)
    writer = SilverWriter(args.out, args.quarantine, args.future_tolerance, gold)
    return (read_bronze(spark, args.bronze, args.max_files_per_trigger).writeStream
            .foreachBatch(over_bronze_files(writer))
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
    parser.add_argument("--max-files-per-trigger", type=positive_int, default=DEFAULT_MAX_FILES_PER_TRIGGER,
                        help="cap on Bronze files per micro-batch: with Bronze's own cap of "
                             f"{DEFAULT_MAX_OFFSETS_PER_TRIGGER} records per file, a batch holds at most "
                             f"{MAX_ROWS_PER_BATCH} rows at the default, so a catch-up runs in bounded memory "
                             "(default %(default)s)")
    parser.add_argument("--future-tolerance", type=parse_seconds, default=DEFAULT_FUTURE_TOLERANCE_S,
                        help="quarantine a trade dated more than this after it was received (its ts_ingest, or "
                             "Kafka's timestamp when ts_ingest is that far ahead too), e.g. \"1 hour\" (default "
                             "%(default)s s)")
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
    problem = bronze_reader_problem(spark)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        spark.stop()
        return 2
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
