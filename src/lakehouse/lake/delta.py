"""What the jobs that write Delta tables (Silver, its quarantine, Gold) share: creating a table with its properties,
the version a write committed, reading a table's changes, retrying a write that lost a race with a compaction, and
table maintenance.

Not a job itself: the Silver and Gold jobs, the pipeline and the maintenance command import it.

Exactly once without transaction ids. Every write of ours is idempotent by the rows' own identity: Silver's and the
quarantine's are insert-only MERGEs on the trade's (or the Kafka record's) identity, and a Gold bar records the
newest Silver version folded into it (lakehouse.gold.bars). A batch that Spark redoes after a crash or a kill -9
therefore inserts nothing twice and folds nothing twice. Delta's own idempotent-write ids (txnAppId/txnVersion) are
not used: asking a table for them rebuilds its whole state from the log (a Spark job) on every write, which was half
the CPU of a small commit (measured: 0.73 CPU-s per 15-row append with one, 0.23 without; BENCHMARKS.md).

Conflicts. A MERGE that read files which a concurrent OPTIMIZE (or auto compaction) rewrote fails its commit with a
Concurrent*Exception; nothing was written, so the write is retried (retry_on_conflict), from a fresh read.

No value from the data is ever formatted into SQL text: conditions are Column expressions (pyspark.sql.functions.lit
carries a value as a typed literal), and table operations go through the DeltaTable API.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import operator
import random
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

from lakehouse.spark.flags import parse_trigger
from lakehouse.spark.progress import describe_error
from lakehouse.spark.sinks import latest_batch_id, local_folder

log = logging.getLogger("spark_jobs")

# Properties every table of ours gets at creation, and an existing table at each start (set_properties: one commit
# when one differs, none otherwise). Metadata stays bounded over a long run:
# - the log (time travel): Delta deletes commit files older than logRetentionDuration when it writes a checkpoint,
#   cut at a day boundary, so _delta_log holds 3 to 4 days of commits, not a week's (a commit every 20-s trigger is
#   4,320 a day, each one .json file). Time travel reaches back at least 3 days; a Gold job stopped for longer
#   than that cannot read Silver's changes any more and is rebuilt from Silver's snapshot (README, operations);
# - removed files (tombstones) stay in the table's state deletedFileRetentionDuration: 1 day. Every checkpoint
#   carries them and every new version's state is rebuilt with them; at 3 days Gold's batches cost 1.32x their
#   fresh cost after a simulated week, at 1 day 1.16x (bench/long_run.py, BENCHMARKS.md). VACUUM keeps 72 h
#   (DEFAULT_RETENTION_HOURS): it deletes a file only when no tombstone of the last day names it AND it was written
#   more than 3 days ago. So time travel is certain 1 day back; 1 to 3 days back it works unless the version read a
#   file written more than 3 days before it was removed (an old day's file rewritten later), and a stopped Gold that
#   reads Silver's changes of the last 3 days finds their files (written within those 3 days);
# - a checkpoint every 10 commits (Delta's default, stated): a snapshot refresh reads one checkpoint and at most 9
#   commits.
# Auto compaction rewrites small files after a write once a partition holds enough of them (dataChange=false:
# streaming readers skip it); a table may turn it off (Gold: see LIVE_ZORDER_PROPERTY).
LOG_RETENTION = "interval 3 days"
FILE_RETENTION = "interval 1 day"
CHECKPOINT_INTERVAL = 10
TABLE_PROPERTIES = {
    "delta.autoOptimize.autoCompact": "true",
    "delta.logRetentionDuration": LOG_RETENTION,
    "delta.deletedFileRetentionDuration": FILE_RETENTION,
    "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
}
# OPTIMIZE's bin-packing: files under 16 MB are compacted, into files of up to 128 MB. Delta's default minimum, 1 GB,
# made every hourly round rewrite the whole current day (its compacted file stayed under 1 GB); with 16 MB a round
# rewrites at most 16 MB of earlier files per partition plus what was written since.
OPTIMIZE_MIN_FILE_BYTES = 16 * 1024 * 1024
OPTIMIZE_MAX_FILE_BYTES = 128 * 1024 * 1024
# Session settings for the writing jobs: compact a partition once it holds 20 files under 8 MB (Delta's defaults,
# 50 files under 64 MB, would rewrite a day's growing file every time); the target file size stays 128 MB.
WRITER_SESSION_CONF = {
    "spark.databricks.delta.autoCompact.minNumFiles": "20",
    "spark.databricks.delta.autoCompact.minFileSize": str(8 * 1024 * 1024),
    "spark.databricks.delta.optimize.minFileSize": str(OPTIMIZE_MIN_FILE_BYTES),
    "spark.databricks.delta.optimize.maxFileSize": str(OPTIMIZE_MAX_FILE_BYTES),
    # MERGE writes one file per partition value it touches, not one per shuffle partition.
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
    # VACUUM lists the table's folders as a Spark job with this many tasks: Spark's default, 10,000 tiny tasks, took
    # minutes on 2 cores for a table of a few hundred files. Raise it on a cluster with many cores and huge tables.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
    # Expressions and operators interpreted, not compiled to Java. A live batch is a few hundred rows through a dozen
    # small plans (parse, dedup, two MERGEs, the change feed, Gold's fold), and their generated code rarely repeats
    # from one batch to the next (the batch's own ranges are literals in it), so Janino compiled afresh every batch:
    # 28% of a batch's JVM CPU (JFR). Interpreted, a 100-trade Silver + Gold batch took 5.1 CPU-s instead of 8.0, and a
    # 55,000-trade catch-up batch 17.7 instead of 20.4 (BENCHMARKS.md). factoryMode is an internal Spark setting (its
    # interpreted paths are the ones Spark falls back to when code generation fails); check it on a Spark upgrade.
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # No Delta checksum file (<version>.crc) per commit: one file fewer in the log that every snapshot refresh lists
    # (see lakehouse.spark.sinks on local logs); on fresh tables it changed a batch's CPU by nothing measurable.
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
}
# A table whose writer rewrites rows of its newest partition every batch (Gold: each pair's open bar) sets this property
# to a column: maintenance lays that partition out as files of about LIVE_FILE_BYTES each, ZORDERed (range-split) by the
# column, and the writer's MERGE, pruned by the column's range, rewrites the one small file holding the newest rows.
# Bin-packed into one file (and auto compaction does the same), the day's rows would all sit with the open bars, and
# every batch's MERGE would copy the whole day so far (measured: 1,740 rows copied a batch at 09:30 against 21 in a
# fresh table; bench/long_run.py, BENCHMARKS.md). The other partitions are bin-packed as on any table.
LIVE_ZORDER_PROPERTY = "lakehouse.optimize.liveZorderBy"
LIVE_FILE_BYTES = 16 * 1024  # Gold: about an hour of bars of three pairs (175 rows, 26 KB) a file
OWNER_PROPERTY = "lakehouse.writer"  # which job owns a table (e.g. the stream's Gold: refused by the batch recompute)
DEFAULT_RETENTION_HOURS = 72  # VACUUM: files written in the last 3 days stay, and removed ones in the last day (FILE_RETENTION)
DEFAULT_MAINTENANCE_EVERY = "1 hour"  # how often a writing job compacts and vacuums its own tables
SAFE_PROPERTY = re.compile(r"[A-Za-z0-9_. ]+")  # what set_properties() writes into SQL text
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"  # recorded in every commit made while set
# Set by Delta in the committing session after every commit: the version it wrote.
LAST_COMMIT_VERSION = "spark.databricks.delta.lastCommitVersionInSession"
CONFLICT_MARKERS = ("ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
                    "ConcurrentTransactionException", "ConcurrentWriteException", "MetadataChangedException",
                    "ProtocolChangedException", "DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED",
                    "DELTA_PROTOCOL_CHANGED")
CONFLICT_RETRIES = 20

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers


def is_write_conflict(error: BaseException) -> bool:
    """True when a failed Delta write lost a race with another commit (nothing was written: safe to retry)."""
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in CONFLICT_MARKERS)


def conflict_backoff(attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retry `attempt` (0-based) of a conflicting write: 0.1 s doubling to 5 s, jittered."""
    return min(5.0, 0.1 * 2 ** attempt) * (0.5 + rng.random() / 2)


def parse_maintenance_every(text: str) -> float:
    """--maintenance-every: an interval ("1 hour", "30 minutes") in seconds, or "off" (0)."""
    if text.strip().lower() in ("off", "0", "never"):
        return 0.0
    return int(parse_trigger(text).split()[0]) / 1000


def add_maintenance_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--maintenance-every", type=parse_maintenance_every, default=DEFAULT_MAINTENANCE_EVERY,
                        help="compact (OPTIMIZE) and clean (VACUUM, 3-day retention) this job's tables this often, "
                             f'beside the stream, or "off" (default "{DEFAULT_MAINTENANCE_EVERY}"; auto compaction '
                             "after writes runs anyway)")


# ---------------------------------------------------------------------------------------------------------------------
# Tables


def is_delta_table(spark, path: str) -> bool:
    """True when `path` holds a Delta table with at least one commit, as the file system says now.

    Not DeltaTable.isDeltaTable: it answers from the session's cached view of the table's log, and a check made while
    another process was creating the table (its _delta_log folder there, no commit in it yet) kept answering False
    for the life of the session: a Gold job started beside its Silver job waited forever. Reading the table
    refreshes that view."""
    from pyspark.errors import AnalysisException

    try:
        spark.read.format("delta").load(path).schema
    except AnalysisException:  # no such path, or no Delta table in it (yet)
        return False
    return True


def ensure_table(spark, path: str, ddl: str, *, partition_by: list[str], owner: str,
                 properties: dict[str, str] | None = None) -> None:
    """Create the Delta table at `path` with the columns `ddl` ("name TYPE, ...") unless it exists; an existing table
    must have exactly these columns (else SystemExit with what to do)."""
    from delta.tables import DeltaTable

    wanted = spark.createDataFrame([], ddl).schema
    if is_delta_table(spark, path):
        actual = DeltaTable.forPath(spark, path).toDF().schema
        if [(f.name, f.dataType) for f in actual.fields] != [(f.name, f.dataType) for f in wanted.fields]:
            raise SystemExit(f"error: the Delta table at {path} has the columns "
                             f"{', '.join(f'{f.name} {f.dataType.simpleString()}' for f in actual.fields)}, not "
                             f"{ddl}: it was written by another version of this job. Rebuild it (delete the table "
                             f"and the job's checkpoint, then run the job again) or point the job at a new path")
        # an older table gets today's retention and the table's own properties (one commit, once)
        set_properties(spark, path, {**TABLE_PROPERTIES, **(properties or {})})
        drop_hadoop_checksums(path)
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(wanted).partitionedBy(*partition_by)
    for key, value in {**TABLE_PROPERTIES, OWNER_PROPERTY: owner, **(properties or {})}.items():
        builder = builder.property(key, value)
    builder.execute()


HADOOP_CHECKSUM = re.compile(r"\..+\.crc")  # Hadoop's hidden checksum beside a file: .<name>.crc


def drop_hadoop_checksums(path: str) -> int:
    """Delete the hidden Hadoop checksum files (.<name>.crc) in a local table's _delta_log; the number deleted.

    The jobs write local files without them now (lakehouse.spark.sinks), and Delta, deleting an expired commit, no
    longer deletes its checksum with it: in a table written before, they would stay in the log folder, listed on
    every snapshot refresh, for good. Delta's own files (<version>.json, .crc, .checkpoint.parquet) are not hidden."""
    folder = local_folder(path)
    log_dir = folder / "_delta_log" if folder else None
    if log_dir is None or not log_dir.is_dir():
        return 0
    deleted = 0
    for entry in log_dir.iterdir():
        if HADOOP_CHECKSUM.fullmatch(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            deleted += 1
    if deleted:
        log.info("%s: deleted %d Hadoop checksum file(s) from its Delta log (no longer written)", path, deleted)
    return deleted


def table_pairing_problem(table: str, checkpoint: str) -> str | None:
    """Refuse a table and a checkpoint that do not belong together (local folders only); None when they may.

    A checkpoint with committed batches next to a missing table means the table was deleted or moved: resuming
    would leave out everything written before. A folder holding files that is not a Delta table is an older
    version's Parquet output (or something else): nothing is written over it. A NEW checkpoint next to an existing
    table is fine: every write is a MERGE on the rows' identity, so reprocessing the input inserts nothing twice."""
    out, ck = local_folder(table), local_folder(checkpoint)
    if out is None or ck is None:
        return None
    is_table = (out / "_delta_log").is_dir()
    if out.is_dir() and not is_table and any(out.iterdir()):
        return (f"{table} holds files but is not a Delta table (a Parquet folder from an older version of this "
                f"project?). Move it away or delete it, delete the checkpoint {checkpoint} too, and rebuild from "
                f"the layer before (dev reset)")
    committed = latest_batch_id(ck / "commits")
    if committed >= 0 and not is_table:
        return (f"checkpoint {checkpoint} has committed batches 0..{committed} but {table} is not there: the table "
                f"was deleted or moved. Restore it, or delete the checkpoint too (dev reset) to rebuild it")
    return None


def table_owner(spark, path: str) -> str | None:
    """The job that owns the Delta table at `path` (its OWNER_PROPERTY), or None (not ours, or not a table)."""
    if not is_delta_table(spark, path):
        return None
    return table_properties(spark, path).get(OWNER_PROPERTY)


def table_properties(spark, path: str) -> dict[str, str]:
    """The table's properties (TBLPROPERTIES)."""
    from delta.tables import DeltaTable

    return dict(DeltaTable.forPath(spark, path).detail().collect()[0]["properties"] or {})


def set_properties(spark, path: str, properties: dict[str, str]) -> None:
    """Set the properties the table lacks (or holds with another value): one commit, none when all are set."""
    current = table_properties(spark, path)
    wanted = {k: v for k, v in properties.items() if current.get(k) != v}
    if not wanted:
        return
    # The DeltaTable API of this version cannot set properties, and Spark takes no parameters in TBLPROPERTIES, so this
    # one statement is SQL text: the path is a flag's value, quoted as an identifier (a backtick doubled), and the
    # properties are the project's own constants, checked against a plain pattern; nothing here comes from the data.
    unsafe = [f"{k}={v}" for k, v in wanted.items() if not (SAFE_PROPERTY.fullmatch(k) and SAFE_PROPERTY.fullmatch(v))]
    if unsafe:
        raise ValueError(f"not a plain property: {unsafe}")
    pairs = ", ".join(f"'{key}' = '{value}'" for key, value in wanted.items())
    statement = f"ALTER TABLE delta.{quoted_identifier(path)} SET TBLPROPERTIES ({pairs})"
    retry_on_conflict(lambda: spark.sql(statement).collect(), f"set properties of {path}")


def quoted_identifier(name: str) -> str:
    """`name` as a Spark SQL quoted identifier: in backticks, a backtick in it doubled."""
    return "`" + name.replace("`", "``") + "`"


def table_version(spark, path: str) -> int:
    """The table's newest version, as its log says now."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def commit_info(spark, path: str, version: int) -> dict[str, Any]:
    """The commitInfo of the table's commit `version` (operation, operationMetrics, userMetadata: what DESCRIBE
    HISTORY shows of it), read from that commit's own file in _delta_log through Hadoop (any file system); {} when the
    file is gone (Delta's clean-up) or holds none.

    A writer asking about a commit it just made reads one small file this way; DeltaTable.history() would first
    refresh the table's snapshot (listing its log) and run a Spark job over the newest commits (170 ms of a 100-trade
    batch's pass, measured)."""
    jvm = spark.sparkContext._jvm
    commit = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log/{version:020d}.json")
    fs = commit.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    try:
        stream = fs.open(commit)
    except Exception as exc:  # noqa: BLE001 - py4j wraps Java's FileNotFoundException
        if "FileNotFoundException" in str(exc):
            return {}
        raise
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    for line in text.splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            return action["commitInfo"]
    return {}


# ---------------------------------------------------------------------------------------------------------------------
# Writes and changes


def committed_version(session, write: Callable[[], Any]) -> Optional[int]:
    """Run `write` (one Delta write in `session`); the table version it committed, or None when it committed nothing.

    Delta records the version of every commit in the committing session's settings (LAST_COMMIT_VERSION); the
    setting is cleared first, so a write that commits nothing (nothing to insert) reads as None."""
    session.conf.unset(LAST_COMMIT_VERSION)
    write()
    version = session.conf.get(LAST_COMMIT_VERSION, None)
    return None if version is None else int(version)


@contextlib.contextmanager
def commit_metadata(session, metadata: Optional[dict[str, Any]]) -> Iterator[None]:
    """Every Delta commit in `session` inside this block records `metadata` (JSON) as its commitInfo.userMetadata,
    which DESCRIBE HISTORY shows (parse_commit_metadata reads it back); None: nothing."""
    if metadata is None:
        yield
        return
    with session_conf(session, {USER_METADATA: json.dumps(metadata, sort_keys=True)}):
        yield


def parse_commit_metadata(text: Optional[str]) -> dict[str, Any]:
    """A commit's userMetadata as written by commit_metadata(); {} for none or anything else."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_changes(spark, path: str, first: int, last: int):
    """The table's change feed from version `first` to `last` (both included): its rows with _change_type
    (insert, delete, update_preimage, update_postimage), _commit_version and _commit_timestamp. Needs the table's
    delta.enableChangeDataFeed from `first` on, and the log of those versions (kept delta.logRetentionDuration)."""
    return (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", first)
            .option("endingVersion", last).load(path))


# ---------------------------------------------------------------------------------------------------------------------
# Idempotent writes


def retry_on_conflict(write: Callable[[], T], what: str, attempts: int = CONFLICT_RETRIES,
                      rng: random.Random | None = None, on_conflict: Callable[[], None] = lambda: None) -> T:
    """Run `write`; when it loses a race with another commit (is_write_conflict), call on_conflict() (forget what
    was read before the race), wait, and run it again."""
    rng = rng or random.Random()
    for attempt in range(attempts):
        try:
            return write()
        except Exception as exc:  # noqa: BLE001 - py4j/pyspark wrap Delta's exceptions in several types
            if not is_write_conflict(exc) or attempt == attempts - 1:
                raise
            on_conflict()
            delay = conflict_backoff(attempt, rng)
            log.warning("%s: a concurrent commit (compaction?) conflicted with this write; retrying in %.1fs (%s)",
                        what, delay, str(exc).strip().splitlines()[0][:200])
            time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------------------
# Maintenance


def compact_and_vacuum(spark, path: str, retention_hours: float = DEFAULT_RETENTION_HOURS,
                       since_version: Optional[int] = None) -> dict[str, int]:
    """OPTIMIZE (bin-packing files under OPTIMIZE_MIN_FILE_BYTES; dataChange=false, so streaming readers are not
    disturbed) then VACUUM (delete files no version within the retention needs). since_version: compact only the
    partitions that commits after that version wrote data into (none: no OPTIMIZE at all); None: the whole table.
    A table with LIVE_ZORDER_PROPERTY gets its newest partition ZORDERed into small files instead (see there).
    Returns files before/after, files deleted and the table version the round saw (the next round's since_version)."""
    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, path)
    version = table_version(spark, path)
    before = active_file_count(spark, path)
    values = None if since_version is None else changed_partition_values(spark, path, since_version, version)
    live_by = table_properties(spark, path).get(LIVE_ZORDER_PROPERTY)
    for where, zorder_by in optimize_steps(spark, path, values, live_by):
        builder = table.optimize() if where is None else table.optimize().where(where)
        if zorder_by is None:
            retry_on_conflict(lambda: builder.executeCompaction().collect(), f"OPTIMIZE {path}")
        else:
            with session_conf(spark, {"spark.databricks.delta.optimize.maxFileSize": str(LIVE_FILE_BYTES)}):
                retry_on_conflict(lambda: builder.executeZOrderBy(zorder_by).collect(),
                                  f"OPTIMIZE {path} ZORDER BY {zorder_by}")
    after = active_file_count(spark, path)
    deleted = _vacuum(spark, path, retention_hours)
    return {"files_before": before, "files_after": after, "files_deleted": deleted, "version": version}


def optimize_steps(spark, path: str, values: Optional[list[tuple]],
                   live_by: Optional[str]) -> list[tuple[Optional[str], Optional[str]]]:
    """The OPTIMIZE runs of a round: (partition filter as SQL text or None for the whole table, ZORDER column or None)
    for the changed partition `values` (None: the whole table; []: nothing changed). With `live_by` on a table
    partitioned by one column, the newest partition is ZORDERed by `live_by` and the others bin-packed."""
    from pyspark.sql import functions as F

    if values == []:
        return []
    columns = partition_columns(spark, path)
    if live_by is None or len(columns) != 1:
        return [(None if values is None else partitions_filter(spark, path, values), None)]
    column = columns[0]
    if values is None:  # the whole table: its newest partition is the live one
        newest = spark.read.format("delta").load(path).agg(F.max(column)).collect()[0][0]
        if newest is None:
            return []
        others = spark.read.format("delta").load(path).where(F.col(column) != F.lit(newest)).limit(1).count()
        live = (str(newest),)
        steps = [((F.col(column) != F.lit(newest))._jc.expr().sql(), None)] if others else []
        return steps + [(partitions_filter(spark, path, [live]), live_by)]
    live = max(values, key=lambda value: (value[0] is not None, str(value[0])))
    rest = [value for value in values if value != live]
    return ([(partitions_filter(spark, path, rest), None)] if rest else []) + [
        (partitions_filter(spark, path, [live]), live_by)]


def changed_partitions_filter(spark, path: str, after: int, through: int):
    """OPTIMIZE's partition filter for the partitions that the commits after..through (after excluded) added data
    files to (dataChange: a compaction's own files do not count): None for the whole table (an unpartitioned table
    that changed, or commits no longer in the log), False when no data was written."""
    values = changed_partition_values(spark, path, after, through)
    if values is None:
        return None
    return partitions_filter(spark, path, values) if values else False


def changed_partition_values(spark, path: str, after: int, through: int) -> Optional[list[tuple]]:
    """The partition values (a tuple of texts per partition) that the commits after..through added data files to:
    [] when no data was written; None for the whole table (an unpartitioned table that changed, or commits no longer
    in the log)."""
    from pyspark.sql import functions as F

    if through <= after:
        return []
    columns = partition_columns(spark, path)
    commits = [f"{path.rstrip('/')}/_delta_log/{v:020d}.json" for v in range(after + 1, through + 1)]
    try:
        adds = (spark.read.schema("add STRUCT<partitionValues: MAP<STRING, STRING>, dataChange: BOOLEAN>")
                .json(commits).where(F.col("add").isNotNull() & F.col("add.dataChange")))
        if not columns:
            return [] if adds.isEmpty() else None
        return sorted({tuple(r) for r in adds.select(*[F.col("add.partitionValues")[c] for c in columns])
                       .distinct().collect()}, key=str)
    except Exception as exc:  # noqa: BLE001 - a commit cleaned up meanwhile: compact the whole table this once
        log.info("%s: commits %d..%d not all readable (%s): compacting the whole table", path, after + 1, through,
                 describe_error(exc))
        return None


def partitions_filter(spark, path: str, values: list[tuple]) -> str:
    """OPTIMIZE's filter for these partition values. The values travel as typed literals in a Column, and Spark itself
    renders the filter's text (Expression.sql quotes them); the DeltaOptimizeBuilder of this Delta version takes text
    only."""
    from pyspark.sql import functions as F

    columns = partition_columns(spark, path)
    schema = {f.name: f.dataType for f in spark.read.format("delta").load(path).schema.fields}
    matches = [functools.reduce(operator.and_, [F.col(column).isNull() if text is None
                                                else F.col(column) == F.lit(text).cast(schema[column])
                                                for column, text in zip(columns, value)])
               for value in values]
    return functools.reduce(operator.or_, matches)._jc.expr().sql()


@contextlib.contextmanager
def session_conf(session, settings: dict[str, str]) -> Iterator[None]:
    """These Spark settings in `session` inside the block; what was set before, back after it."""
    before = {key: session.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        session.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, value)


def partition_columns(spark, path: str) -> list[str]:
    """The table's partition columns (DESCRIBE DETAIL)."""
    from delta.tables import DeltaTable

    return list(DeltaTable.forPath(spark, path).detail().collect()[0]["partitionColumns"] or [])


def _vacuum(spark, path: str, retention_hours: float) -> int:
    """VACUUM with the retention in hours; the number of files it deleted."""
    local = local_folder(path)
    before = _data_files_on_disk(local) if local else 0
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, path).vacuum(retention_hours)
    return max(0, before - _data_files_on_disk(local)) if local else 0


def _data_files_on_disk(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts)


def active_file_count(spark, path: str) -> int:
    """Data files the table's current version references."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).detail().collect()[0]["numFiles"])


class Maintenance:
    """compact_and_vacuum() of a job's tables every `every_s` seconds, on a thread of the job's driver, beside its
    stream (its conflicts with the stream's writes are retried on both sides). every_s = 0: never."""

    def __init__(self, spark, tables: list[str], every_s: float,
                 retention_hours: float = DEFAULT_RETENTION_HOURS) -> None:
        self.spark, self.tables, self.every_s, self.retention_hours = spark, tables, every_s, retention_hours
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="delta-maintenance")
        # per table, the version the last round saw: a round compacts only the partitions written after it
        self.seen: dict[str, Optional[int]] = {}

    def start(self) -> "Maintenance":
        if self.every_s > 0:
            for table in self.tables:  # what was written before this start: compacted by the rounds before it
                try:
                    self.seen[table] = table_version(self.spark, table) if is_delta_table(self.spark, table) else -1
                except Exception:  # noqa: BLE001 - the table appears later: its first round compacts all of it
                    self.seen[table] = -1
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(60)

    def _run(self) -> None:
        session = self.spark.newSession()  # its own settings, never the stream's
        while not self.stopped.wait(self.every_s):
            for table in self.tables:
                if self.stopped.is_set():
                    return
                try:
                    since = self.seen.get(table, -1)
                    result = compact_and_vacuum(session, table, self.retention_hours,
                                                since_version=None if since < 0 else since)
                    self.seen[table] = result["version"]
                    log.info("maintenance of %s: %d active file(s) before, %d after; %d old file(s) deleted", table,
                             result["files_before"], result["files_after"], result["files_deleted"])
                except Exception as exc:  # noqa: BLE001 - maintenance never stops a job; next round retries
                    log.warning("maintenance of %s failed (retried in %.0fs): %s", table, self.every_s,
                                describe_error(exc))
