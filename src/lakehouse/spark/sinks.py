"""Output folders and their checkpoints: the append-only Parquet file sink (Bronze), the batch ids a Spark log folder
holds, and the check that an output folder and a checkpoint belong together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from lakehouse.spark.flags import trigger_kwargs

# What keeps a long run's streaming metadata bounded:
# - each query's checkpoint keeps the offsets and commits of its last 20 batches (minBatchesToRetain; Spark's default
#   is 100, a restart needs the last one), older ones are deleted as it goes: a week of 20-s batches leaves 20 of each;
# - Bronze's _spark_metadata (the file sink's log) is compacted every 10 batches into one file, and the files before
#   the compaction that precedes the last 20 batches are deleted once 2 minutes old (deletion, cleanupDelay; Spark
#   waits 10 minutes, for object stores that were once eventually consistent): the folder holds about 30 files, 2 or 3
#   of them compact files (with Spark's defaults, about 11 copies of the compact file stayed).
#   The limit: the compact file lists every file Bronze ever wrote (about 250 bytes each; with one file a batch at
#   20-s triggers, 4,320 files and about 1.1 MB a day), and Bronze rewrites it every 10 batches. So it grows with
#   Bronze's data, not with time alone. Silver reads it only when it starts (SinkFilesSource follows the batch files).
#   Spark's other bound, the sink's `retention` option, drops old files from that list, which readers (Silver, a
#   rebuild, the audit) would then no longer see: not used, as Bronze is the audit trail. Raising --trigger, or
#   --minOffsetsPerTrigger, makes fewer, larger files.
STREAMING_METADATA_CONF = {
    "spark.sql.streaming.minBatchesToRetain": "20",
    "spark.sql.streaming.fileSink.log.deletion": "true",
    "spark.sql.streaming.fileSink.log.compactInterval": "10",
    "spark.sql.streaming.fileSink.log.cleanupDelay": "2m",
    "spark.sql.streaming.fileSource.log.deletion": "true",
    "spark.sql.streaming.fileSource.log.compactInterval": "10",
    "spark.sql.streaming.fileSource.log.cleanupDelay": "10m",
    # Local files without Hadoop's hidden .<name>.crc checksum beside each one. Every snapshot refresh of a Delta
    # table (several a batch) lists its _delta_log, and a commit left four files there (its .json, Delta's own .crc,
    # and a Hadoop checksum of each); after 2 simulated days (bench/long_run.py) a Silver batch cost 2.2x a fresh one.
    # (The project's log store, lakehouse.spark.jars, now reads the names first and stats only the newest files.)
    # The same for every local write (Bronze's files, checkpoints). Other file systems (S3, HDFS) are not affected. A
    # lake written before keeps its old checksum files; a job's start deletes those in its Delta logs
    # (lakehouse.lake.delta.drop_hadoop_checksums).
    "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "org.apache.hadoop.fs.local.RawLocalFs",
}


def latest_batch_id(log_dir: Path) -> int:
    """The highest batch id in a Spark log folder (checkpoint commits/ or offsets/, or a sink's _spark_metadata);
    -1 when there is none."""
    ids = [int(m.group(1)) for p in (log_dir.iterdir() if log_dir.is_dir() else [])
           if (m := re.fullmatch(r"(\d+)(\.compact)?", p.name))]
    return max(ids, default=-1)


def local_folder(path: str) -> Path | None:
    """A plain or file:// path as a local Path; None for other file systems (s3a://, hdfs://)."""
    if path.startswith("file://"):
        return Path(path[len("file://"):])
    return None if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path) else Path(path)


def sink_pairing_problem(path: str, checkpoint: str) -> str | None:
    """Refuse an output folder and a checkpoint that do not belong together (local folders only).

    A file sink skips every batch id its _spark_metadata already lists: an old output folder with a NEW checkpoint
    would silently drop new data until the batch ids pass the old ones. A checkpoint with committed batches and an
    output folder without a sink log means the output was deleted or moved: resuming would leave out everything
    landed before. Both are refused; None when the pair is consistent (or not local)."""
    out, ck = local_folder(path), local_folder(checkpoint)
    if out is None or ck is None:
        return None
    sink_batch, committed_batch = latest_batch_id(out / "_spark_metadata"), latest_batch_id(ck / "commits")
    if sink_batch >= 0 and committed_batch < 0 and latest_batch_id(ck / "offsets") < 0:
        return (f"{path} already holds batches 0..{sink_batch} written with another checkpoint, and checkpoint "
                f"{checkpoint} is new: Spark would silently skip new batches until their ids pass {sink_batch}. "
                f"Use the checkpoint that wrote it, or a new output folder (dev reset: delete both)")
    if committed_batch >= 0 and sink_batch < 0:
        return (f"checkpoint {checkpoint} has committed batches 0..{committed_batch} but {path} has no "
                f"_spark_metadata: the output was deleted or moved. Restore it, or delete the checkpoint too "
                f"(dev reset)")
    return None


def start_parquet_sink(df, *, path: str, checkpoint: str, trigger: str, available_now: bool, name: str,
                       partition_by: Sequence[str] = ()):
    """Start an append-only Parquet file sink: exactly once through <path>/_spark_metadata and the checkpoint."""
    writer = (
        df.writeStream.format("parquet")
        .outputMode("append")
        .option("path", path)
        .option("checkpointLocation", checkpoint)
        .trigger(**trigger_kwargs(trigger, available_now))
        .queryName(name)
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return writer.start()


def path_exists(spark, path: str) -> bool:
    """Whether `path` exists, on any Hadoop file system (local folders, s3a://, hdfs://)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hadoop_path)
