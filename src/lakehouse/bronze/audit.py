"""Bronze audit: does Bronze hold every record the broker holds, exactly once?

For each partition of the topic it compares what Bronze holds (read the way Spark readers read it, through
<bronze>/_spark_metadata) with what the broker holds (log start offset and end offset):

    rows, first and last landed offset;
    holes             offsets missing between the first and the last landed offset (our producer is idempotent, not
                      transactional, and the topic is not compacted, so every offset is a record: a gap is a loss);
    head not landed   records the broker still holds before Bronze's first offset, [log start, first): a loss,
                      unless the job was deliberately started at `latest` (then pass --allow-head-gap);
    duplicates        the same topic/partition/offset in more than one row a Spark reader sees;
    lag               the tail [last + 1, end) not landed yet: reported, never a failure (the job may be behind or
                      stopped). A partition with no rows in Bronze counts all of [log start, end) as lag.

and the files: Parquet files committed in _spark_metadata (number, total/min/max bytes), committed files missing on
disk (an error: every Spark reader of Bronze fails on them), and *.parquet files in the folder that are NOT committed
(orphans, left by a batch that failed or was killed mid-write; Spark redoes that batch under new file names).

Orphans alone exit 0 with a WARNING: they are the normal residue of the crash-restarts Bronze is built to survive, and
Spark readers (the README's `spark.read.parquet(<bronze>)`) never see them, so Bronze itself is complete and exact.
They do matter to glob readers (pyarrow, DuckDB, pandas on `*.parquet`), which would count their rows; the warning
lists them and --fail-on-orphans turns them into a failure for lakes read that way.

Offsets that retention deleted from Kafka after they were landed (Bronze's first offset < log start) are fine: keeping
them is what Bronze is for. The audit reads local folders only (file:// paths in _spark_metadata).

Usage (examples in the entry point's docstring, spark/jobs/bronze_audit.py):
    python spark/jobs/bronze_audit.py --help

Exit codes: 0 no holes, no duplicates, no missing committed files (lag and orphans are reported, not failures);
1 the audit found a problem (the verdict line says which); 2 a bad flag, an unreachable broker, an unknown topic, or a
Bronze folder that is missing or is not a streaming sink's output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lakehouse.bronze.job import add_kafka_properties_argument, broker_unreachable_error, load_kafka_properties
from lakehouse.common.logs import configure_logging
from lakehouse.defaults import BOOTSTRAP, BRONZE_PATH, TOPIC
from lakehouse.spark.flags import add_master_argument
from lakehouse.spark.progress import describe_error
from lakehouse.spark.session import build_spark

SINK_LOG_DIR = "_spark_metadata"
SINK_LOG_NAME_RE = re.compile(r"^(\d+)(\.compact)?$")
SINK_LOG_VERSION = 1  # Spark 3.x/4.x write "v1"
MAX_LISTED = 20  # missing ranges / duplicated offsets listed in the report; the counts are always complete
BROKER_TIMEOUT_S = 15.0
# The same Kafka client settings file as the Bronze job's. librdkafka spells a few Java client settings differently.
JAAS_CREDENTIAL_RE = re.compile(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')

log = logging.getLogger("bronze_audit")


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions: the sink log, the figures, the report


@dataclass
class SinkLog:
    """What _spark_metadata commits: {absolute local path: size recorded in the log}, in commit order."""
    files: dict[str, int | None] = field(default_factory=dict)
    latest_batch: int | None = None
    compact_batch: int | None = None  # the newest N.compact the listing starts from
    missing_batches: list[int] = field(default_factory=list)  # log files a Spark reader needs and would fail without
    errors: list[str] = field(default_factory=list)


def parse_sink_log_file(name: str, text: str) -> list[dict]:
    """One _spark_metadata file: a first line "v1", then one JSON object per line
    ({"path": "file:///...", "size": 2159, "isDir": false, "action": "add", ...}). Raises ValueError when Spark could
    not read it either."""
    lines = text.splitlines()
    if not lines or not re.fullmatch(r"v\d+", lines[0].strip()):
        raise ValueError(f"{name}: the first line is not a log version like v1")
    if int(lines[0].strip()[1:]) > SINK_LOG_VERSION:
        raise ValueError(f"{name}: log version {lines[0].strip()} is newer than this audit reads (v1)")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{name}:{number}: not JSON ({exc})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ValueError(f"{name}:{number}: no path")
        entries.append(entry)
    return entries


def uri_to_local_path(uri: str) -> str:
    """'file:///data/bronze/part-0%20a.parquet' -> '/data/bronze/part-0 a.parquet'; a bare path is kept as it is.
    Raises ValueError for other file systems (s3a://, hdfs://), which this audit does not read."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(unquote(parsed.path))
    raise ValueError(f"{uri}: only local (file://) paths can be audited")


def committed_files(log_files: dict[str, str]) -> SinkLog:
    """The files a Spark reader of the sink sees, from the texts of the log's files {file name: text}.

    As Spark's CompactibleFileStreamLog does: batch N is the file "N" or, for a compaction batch, "N.compact", which
    repeats every entry up to N (older batch files may then be deleted). The listing is the newest N.compact followed
    by every later batch; with no compaction yet, batches 0..latest. Other names (.crc, temporary files) are ignored.
    An entry with action "delete" removes its path.
    """
    batches: dict[int, tuple[bool, str, str]] = {}
    for name, text in log_files.items():
        match = SINK_LOG_NAME_RE.match(name)
        if match:
            batch_id, compact = int(match.group(1)), bool(match.group(2))
            if batch_id not in batches or compact:
                batches[batch_id] = (compact, name, text)
    sink = SinkLog()
    if not batches:
        return sink
    sink.latest_batch = max(batches)
    compacts = [batch_id for batch_id, (compact, _, _) in batches.items() if compact]
    sink.compact_batch = max(compacts) if compacts else None
    first = sink.compact_batch if sink.compact_batch is not None else 0
    for batch_id in range(first, sink.latest_batch + 1):
        if batch_id not in batches:
            sink.missing_batches.append(batch_id)
            continue
        _, name, text = batches[batch_id]
        try:
            entries = parse_sink_log_file(name, text)
        except ValueError as exc:
            sink.errors.append(str(exc))
            continue
        for entry in entries:
            if entry.get("isDir"):
                continue
            try:
                path = uri_to_local_path(entry["path"])
            except ValueError as exc:
                sink.errors.append(f"{name}: {exc}")
                continue
            if entry.get("action", "add") == "delete":
                sink.files.pop(path, None)
            else:
                sink.files[path] = entry.get("size")
    return sink


@dataclass
class PartitionAudit:
    partition: int
    log_start: int | None  # None: Bronze holds this partition, the broker's topic does not have it
    end: int | None
    rows: int = 0
    first: int | None = None
    last: int | None = None
    distinct: int = 0
    holes: int = 0
    hole_ranges: list[list[int]] = field(default_factory=list)  # [start, end] inclusive; at most MAX_LISTED overall
    hole_range_count: int = 0
    head_not_landed: int = 0
    duplicates: int = 0  # extra copies: rows - distinct offsets
    lag: int = 0
    beyond_end: int = 0  # offsets in Bronze at or past the broker's end: the topic was recreated, or another broker


def partition_audit(partition: int, broker: tuple[int, int] | None,
                    landed: tuple[int, int, int, int] | None) -> PartitionAudit:
    """Compare one partition: broker = (log start, end offset) or None; landed = (rows, first, last, distinct
    offsets) or None when Bronze has no row of it."""
    log_start, end = broker if broker is not None else (None, None)
    audit = PartitionAudit(partition, log_start, end)
    if landed is None:
        audit.lag = (end - log_start) if broker is not None else 0
        return audit
    audit.rows, audit.first, audit.last, audit.distinct = landed
    audit.holes = (audit.last - audit.first + 1) - audit.distinct
    audit.duplicates = audit.rows - audit.distinct
    if broker is not None:
        audit.head_not_landed = max(0, audit.first - log_start)
        audit.lag = max(0, end - (audit.last + 1))
        audit.beyond_end = max(0, audit.last + 1 - end)
    return audit


def audit_partitions(broker: dict[int, tuple[int, int]],
                     landed: dict[int, tuple[int, int, int, int]]) -> list[PartitionAudit]:
    """One PartitionAudit per partition the broker or Bronze has, in partition order."""
    return [partition_audit(p, broker.get(p), landed.get(p)) for p in sorted(set(broker) | set(landed))]


def format_ranges(ranges: list[list[int]]) -> str:
    """[[3, 5], [9, 9]] -> '3-5, 9'."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def group_duplicates(duplicated: list[dict]) -> list[tuple[int, int, int, int, list[str]]]:
    """Runs of consecutive duplicated offsets held by the same files, as (partition, first, last, copies, files)."""
    runs: list[tuple[int, int, int, int, list[str]]] = []
    for dup in duplicated:
        if runs:
            partition, first, last, copies, files = runs[-1]
            if (partition, last + 1, copies, files) == (dup["partition"], dup["offset"], dup["copies"], dup["files"]):
                runs[-1] = (partition, first, dup["offset"], copies, files)
                continue
        runs.append((dup["partition"], dup["offset"], dup["offset"], dup["copies"], dup["files"]))
    return runs


@dataclass
class FileSummary:
    committed: int = 0
    total_bytes: int = 0
    min_bytes: int | None = None
    max_bytes: int | None = None
    latest_batch: int | None = None
    missing: list[str] = field(default_factory=list)  # committed in _spark_metadata, not on disk
    orphans: list[str] = field(default_factory=list)  # on disk, not committed
    orphan_bytes: int = 0


def file_summary(sink: SinkLog, on_disk: dict[str, int]) -> FileSummary:
    """Committed files against the *.parquet files found on disk {absolute path: bytes}."""
    present = [path for path in sink.files if path in on_disk]
    sizes = [on_disk[path] for path in present]
    orphans = sorted(set(on_disk) - set(sink.files))
    return FileSummary(
        committed=len(sink.files), total_bytes=sum(sizes), min_bytes=min(sizes, default=None),
        max_bytes=max(sizes, default=None), latest_batch=sink.latest_batch,
        missing=sorted(path for path in sink.files if path not in on_disk),
        orphans=orphans, orphan_bytes=sum(on_disk[path] for path in orphans))


@dataclass
class Report:
    topic: str
    bootstrap: str
    bronze: str
    partitions: list[PartitionAudit]
    files: FileSummary
    duplicated_offsets: list[dict] = field(default_factory=list)  # {"partition", "offset", "copies", "files"}
    other_topic_rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exit_code: int = 0


def judge(report: Report, sink: SinkLog, allow_head_gap: bool, fail_on_orphans: bool,
          extra_problems: list[str] | None = None) -> Report:
    """Fill report.problems / warnings / exit_code (0 clean, 1 any problem)."""
    parts, files = report.partitions, report.files
    problems, warnings = list(extra_problems or []), []

    def where(attribute: str) -> str:
        return ", ".join(f"p{p.partition}: {getattr(p, attribute)}" for p in parts if getattr(p, attribute))

    if any(p.holes for p in parts):
        problems.append(f"{sum(p.holes for p in parts)} offsets missing inside the landed range "
                        f"(holes; {where('holes')})")
    head = sum(p.head_not_landed for p in parts)
    if head:
        text = f"{head} records at the head of the log not landed ({where('head_not_landed')})"
        if allow_head_gap:
            warnings.append(text + "; allowed by --allow-head-gap (job started at latest)")
        else:
            problems.append(text + "; pass --allow-head-gap if the job was deliberately started at latest")
    if any(p.duplicates for p in parts):
        problems.append(f"{sum(p.duplicates for p in parts)} duplicate rows (the same offset more than once; "
                        f"{where('duplicates')})")
    if any(p.beyond_end for p in parts):
        problems.append(f"offsets in Bronze at or past the broker's end offset ({where('beyond_end')}): "
                        f"was the topic deleted and recreated, or is this another broker?")
    unknown = [p.partition for p in parts if p.log_start is None]
    if unknown:
        problems.append(f"Bronze holds partitions the topic does not have: {unknown}")
    if files.missing:
        problems.append(f"{len(files.missing)} committed files missing on disk (Spark readers of Bronze fail on "
                        f"them): {', '.join(files.missing[:MAX_LISTED])}")
    if sink.missing_batches:
        problems.append(f"_spark_metadata is missing batch files {sink.missing_batches} (Spark readers fail on it)")
    problems.extend(f"unreadable _spark_metadata: {error}" for error in sink.errors)
    if files.orphans:
        text = (f"{len(files.orphans)} Parquet files ({files.orphan_bytes} bytes) are not committed in "
                f"_spark_metadata (orphans of failed batches): Spark readers ignore them, glob readers (pyarrow, "
                f"DuckDB, *.parquet) would count them: {', '.join(files.orphans[:MAX_LISTED])}")
        (problems if fail_on_orphans else warnings).append(text)
    if report.other_topic_rows:
        warnings.append(f"Bronze also holds rows of other topics, not audited: {report.other_topic_rows}")
    report.problems, report.warnings = problems, warnings
    report.exit_code = 1 if problems else 0
    return report


TABLE_COLUMNS = [("partition", "partition"), ("log_start", "broker log start"), ("end", "broker end"),
                 ("rows", "bronze rows"), ("first", "first"), ("last", "last"), ("holes", "holes"),
                 ("head_not_landed", "head not landed"), ("duplicates", "duplicates"), ("lag", "lag")]


def format_report(report: Report) -> str:
    """The report a person reads: a table per partition, the listed gaps and duplicates, the files, the verdict."""
    parts = report.partitions
    header = [title for _, title in TABLE_COLUMNS]
    body = [["-" if getattr(p, key) is None else str(getattr(p, key)) for key, _ in TABLE_COLUMNS] for p in parts]
    totals = ["total", "", "", *(str(sum(getattr(p, key) for p in parts)) for key in ("rows",)), "", "",
              *(str(sum(getattr(p, key) for p in parts)) for key in ("holes", "head_not_landed", "duplicates", "lag"))]
    widths = [max(len(row[i]) for row in [header, *body, totals]) for i in range(len(header))]
    lines = [f"Bronze audit of {report.bronze} against topic {report.topic} on {report.bootstrap}", ""]
    lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *body, totals]]
    for p in parts:
        if p.hole_range_count:
            shown = (f" (first {len(p.hole_ranges)} of {p.hole_range_count} ranges)"
                     if len(p.hole_ranges) < p.hole_range_count else "")
            lines.append(f"holes in partition {p.partition}: {format_ranges(p.hole_ranges)}{shown}")
    for partition, first, last, copies, files in group_duplicates(report.duplicated_offsets):
        offsets = f"offset {first}" if first == last else f"offsets {first}-{last}"
        lines.append(f"duplicate: partition {partition} {offsets} x{copies} in {', '.join(files)}")
    files = report.files
    lines.append("")
    sizes = (f", {files.total_bytes} bytes (min {files.min_bytes}, max {files.max_bytes})"
             if files.min_bytes is not None else "")
    lines.append(f"files: {files.committed} committed in _spark_metadata (latest batch {files.latest_batch}){sizes}; "
                 f"{len(files.missing)} committed but missing on disk; {len(files.orphans)} not committed (orphans)")
    lag = sum(p.lag for p in parts)
    lines.append(f"lag: {lag} records on the broker not landed yet" + (" (not a failure)" if lag else ""))
    lines += [f"WARNING: {text}" for text in report.warnings]
    lines += [f"PROBLEM: {text}" for text in report.problems]
    if report.problems:
        lines.append(f"verdict: FAIL ({len(report.problems)} problems)")
    else:
        lines.append(f"verdict: OK: {sum(p.rows for p in parts)} rows, no holes, no duplicates, every committed file "
                     f"present" + (f" ({len(report.warnings)} warnings)" if report.warnings else ""))
    return "\n".join(lines)


def report_json(report: Report) -> str:
    return json.dumps({**asdict(report), "ok": report.exit_code == 0}, indent=2, sort_keys=True)


def admin_config(bootstrap: str, client_props: dict[str, str]) -> dict[str, str]:
    """librdkafka settings for the audit's AdminClient from the Bronze job's client properties file (Java client
    names). A Java `sasl.jaas.config` with username/password becomes sasl.username / sasl.password."""
    config = {"bootstrap.servers": bootstrap}
    for key, value in client_props.items():
        if key == "sasl.jaas.config":
            credentials = dict(JAAS_CREDENTIAL_RE.findall(value))
            config.update({f"sasl.{name}": secret for name, secret in credentials.items()})
        else:
            config[key] = value
    return config


# ---------------------------------------------------------------------------------------------------------------------
# I/O: the folder, the broker, Spark


def read_sink_log(bronze: Path) -> SinkLog:
    log_dir = bronze / SINK_LOG_DIR
    texts = {}
    for path in log_dir.iterdir():
        if SINK_LOG_NAME_RE.match(path.name) and path.is_file():
            texts[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return committed_files(texts)


def parquet_files_on_disk(bronze: Path) -> dict[str, int]:
    """{absolute path: bytes} of every *.parquet under the folder, skipping _spark_metadata and hidden names (names
    starting with . or _, which Spark and pyarrow skip too)."""
    found = {}
    for root, dirs, names in os.walk(bronze):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in names:
            if name.endswith(".parquet") and not name.startswith((".", "_")):
                path = os.path.normpath(os.path.join(root, name))
                found[path] = os.path.getsize(path)
    return found


def broker_offsets(config: dict[str, str], topic: str) -> dict[int, tuple[int, int]]:
    """{partition: (log start offset, end offset)}. Raises LookupError for an unknown topic and KafkaException when
    the broker does not answer."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(config)
    # All topics' metadata: asking for one topic by name could auto-create it on brokers that allow that.
    metadata = admin.list_topics(timeout=BROKER_TIMEOUT_S)
    if topic not in metadata.topics:
        raise LookupError(topic)
    partitions = sorted(metadata.topics[topic].partitions)
    offsets: dict[int, list[int]] = {p: [0, 0] for p in partitions}
    for index, spec in ((0, OffsetSpec.earliest()), (1, OffsetSpec.latest())):
        futures = admin.list_offsets({TopicPartition(topic, p): spec for p in partitions},
                                     request_timeout=BROKER_TIMEOUT_S)
        for tp, future in futures.items():
            offsets[tp.partition][index] = future.result().offset
    return {p: (low, high) for p, (low, high) in offsets.items()}


def landed_figures(spark, sink: SinkLog, files: FileSummary, bronze: Path, topic: str):
    """Read Bronze as Spark readers do and aggregate: ({partition: (rows, first, last, distinct)}, other topics'
    row counts, the DataFrame of this topic's rows, and a note when Spark's file list differs from the audit's)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    schema = StructType([StructField("topic", StringType()), StructField("partition", IntegerType()),
                         StructField("offset", LongType())])
    note = None
    if files.missing:  # Spark would fail on the missing files: read the committed ones that are present
        present = [path for path in sink.files if path not in set(files.missing)]
        df = spark.read.schema(schema).parquet(*present) if present else spark.createDataFrame([], schema)
    else:
        df = spark.read.schema(schema).parquet(str(bronze))  # through _spark_metadata, as every Spark reader
        seen = {uri_to_local_path(uri) for uri in df.inputFiles()}
        if seen != set(sink.files):
            note = (f"Spark lists {len(seen)} files through _spark_metadata, this audit's reading of the log lists "
                    f"{len(sink.files)}; the figures are Spark's")
    grouped = (df.groupBy("topic", "partition")
               .agg(F.count(F.lit(1)).alias("rows"), F.min("offset").alias("first"), F.max("offset").alias("last"),
                    F.countDistinct("offset").alias("distinct"))
               .collect())
    mine = {r["partition"]: (r["rows"], r["first"], r["last"], r["distinct"]) for r in grouped if r["topic"] == topic}
    others: dict[str, int] = {}
    for r in grouped:
        if r["topic"] != topic:
            others[str(r["topic"])] = others.get(str(r["topic"]), 0) + r["rows"]
    return mine, others, df.where(F.col("topic") == topic), note


def hole_ranges(df, limit: int = MAX_LISTED) -> tuple[dict[int, list[list[int]]], dict[int, int]]:
    """Missing ranges inside each partition's landed range: the first `limit` overall, and the count per partition."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_offset = Window.partitionBy("partition").orderBy("offset")
    gaps = (df.select("partition", "offset").distinct()
            .withColumn("previous", F.lag("offset").over(by_offset))
            .where(F.col("offset") - F.col("previous") > 1)
            .select("partition", (F.col("previous") + 1).alias("start"), (F.col("offset") - 1).alias("stop"))
            .cache())
    counts = {r["partition"]: r["count"] for r in gaps.groupBy("partition").count().collect()}
    listed: dict[int, list[list[int]]] = {}
    for r in gaps.orderBy("partition", "start").limit(limit).collect():
        listed.setdefault(r["partition"], []).append([r["start"], r["stop"]])
    gaps.unpersist()
    return listed, counts


def duplicated_offsets(df, limit: int = MAX_LISTED) -> list[dict]:
    """The first `limit` offsets held more than once, with the files holding them."""
    from pyspark.sql import functions as F

    rows = (df.withColumn("file", F.input_file_name())
            .groupBy("partition", "offset").agg(F.count(F.lit(1)).alias("copies"),
                                                F.sort_array(F.collect_set("file")).alias("files"))
            .where(F.col("copies") > 1).orderBy("partition", "offset").limit(limit).collect())
    return [{"partition": r["partition"], "offset": r["offset"], "copies": r["copies"],
             "files": [uri_to_local_path(f) for f in r["files"]]} for r in rows]


def run_audit(spark, args: argparse.Namespace, broker: dict[int, tuple[int, int]]) -> Report:
    bronze = Path(os.path.abspath(args.bronze))
    sink = read_sink_log(bronze)
    files = file_summary(sink, parquet_files_on_disk(bronze))
    landed, others, df, note = landed_figures(spark, sink, files, bronze, args.topic)
    parts = audit_partitions(broker, landed)
    if any(p.holes for p in parts):
        listed, counts = hole_ranges(df)
        for p in parts:
            p.hole_ranges, p.hole_range_count = listed.get(p.partition, []), counts.get(p.partition, 0)
    report = Report(args.topic, args.bootstrap, str(args.bronze), parts, files, other_topic_rows=others)
    if any(p.duplicates for p in parts):
        report.duplicated_offsets = duplicated_offsets(df)
    judge(report, sink, args.allow_head_gap, args.fail_on_orphans)
    if note:
        report.warnings.append(note)
    return report


# ---------------------------------------------------------------------------------------------------------------------
# The script


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    parser.add_argument("--bootstrap", default=BOOTSTRAP,
                        help="Kafka bootstrap servers (default %(default)s; env KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic", default=TOPIC, help="the topic Bronze lands (default %(default)s)")
    parser.add_argument("--bronze", default=BRONZE_PATH,
                        help="the Bronze job's --out folder, a local path (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document (for scripts)")
    parser.add_argument("--allow-head-gap", action="store_true",
                        help="records before Bronze's first offset are expected (the job was started with "
                             "--startingOffsets latest): report them, do not fail")
    parser.add_argument("--fail-on-orphans", action="store_true",
                        help="fail (exit 1) on uncommitted Parquet files too, for lakes read by glob readers")
    add_kafka_properties_argument(parser)
    args = parser.parse_args(argv)
    load_kafka_properties(parser, args)
    return args


def bronze_problem(bronze: str) -> str | None:
    """None when the folder can be audited; else what is wrong with it."""
    if "://" in bronze and not bronze.startswith("file://"):
        return f"--bronze {bronze}: the audit reads local folders only"
    path = Path(uri_to_local_path(bronze))
    if not path.is_dir():
        return (f"Bronze folder {bronze} does not exist: has the Bronze job run? "
                f"(python spark/jobs/kafka_to_bronze_trades.py --out {bronze})")
    if not (path / SINK_LOG_DIR).is_dir():
        return (f"{bronze} has no {SINK_LOG_DIR}: it is not the output of the Bronze job (a streaming file sink); "
                f"check --bronze")
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    problem = bronze_problem(args.bronze)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    args.bronze = uri_to_local_path(args.bronze)
    unreachable = broker_unreachable_error(args.bootstrap)
    if unreachable:
        print(f"error: {unreachable}", file=sys.stderr)
        return 2
    from confluent_kafka import KafkaException

    try:
        broker = broker_offsets(admin_config(args.bootstrap, args.client_props), args.topic)
    except LookupError:
        print(f"error: topic {args.topic} does not exist on {args.bootstrap}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(f"error: the broker at {args.bootstrap} did not give the topic's offsets: {exc}", file=sys.stderr)
        return 2

    from pyspark.sql import SparkSession

    reuse = SparkSession.getActiveSession() is not None  # called in-process by a caller that owns the session
    spark = build_spark("bronze_audit", master=args.master)
    try:
        report = run_audit(spark, args, broker)
    except Exception as exc:  # noqa: BLE001 - a committed file Spark cannot read is a finding, not a crash
        log.exception("Spark could not read Bronze")
        print(f"error: Spark could not read Bronze at {args.bronze}: {describe_error(exc)}", file=sys.stderr)
        return 1
    finally:
        if not reuse:
            spark.stop()
    sys.stdout.write((report_json(report) if args.json else format_report(report)) + "\n")
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
