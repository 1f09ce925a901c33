"""What every streaming job in spark/jobs/ shares: building the SparkSession, reading the --trigger flag, logging one
line per micro-batch, and stopping cleanly on Ctrl-C or SIGTERM.

Not a job itself; the jobs import it (they run as scripts, so their folder is on sys.path).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
# `make setup` (spark/fetch_jars.py) resolves the Kafka connector and Delta Lake's jars with Maven into these folders.
CONNECTOR_CACHE = Path(os.environ.get("SPARK_KAFKA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-kafka"))
DELTA_CACHE = Path(os.environ.get("SPARK_DELTA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-delta"))
SCALA_BINARY_VERSION = "2.12"  # the PyPI pyspark 3.5 wheels are built for Scala 2.12
# Delta Lake in a session: its SQL extension (MERGE, OPTIMIZE, VACUUM, time travel) and its catalog.
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
STOP_GRACE_S = 60.0  # how long a stop request waits for the running micro-batch to finish

TRIGGER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
UNIT_MILLISECONDS = {
    **dict.fromkeys(["ms", "millisecond", "milliseconds"], 1),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1000),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], 60_000),
    **dict.fromkeys(["h", "hour", "hours"], 3_600_000),
}

log = logging.getLogger("spark_jobs")


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers


def parse_trigger(text: str) -> str:
    """Validate a processing-time trigger such as "2 seconds", "500 milliseconds", "1 minute"; return Spark's form.

    Raises argparse.ArgumentTypeError with a message a user understands (argparse names the flag).
    """
    match = TRIGGER_RE.match(text or "")
    unit = match.group(2).lower() if match else None
    if unit not in UNIT_MILLISECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an interval; use a number and a unit, e.g. \"2 seconds\", \"500 milliseconds\", "
            f"\"1 minute\"")
    milliseconds = float(match.group(1)) * UNIT_MILLISECONDS[unit]
    if milliseconds < 1 or milliseconds != int(milliseconds):
        raise argparse.ArgumentTypeError(f"{text!r}: the interval must be a whole number of milliseconds, >= 1 ms")
    return f"{int(milliseconds)} milliseconds"


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number >= 1")
    return value


def parse_bool(text: str) -> bool:
    """argparse type: true/false (also 1/0, yes/no)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: use true or false")


def trigger_kwargs(trigger: str, available_now: bool) -> dict[str, Any]:
    """The keyword arguments for DataStreamWriter.trigger()."""
    return {"availableNow": True} if available_now else {"processingTime": trigger}


def kafka_connector_coordinate(spark_version: str, scala: str = SCALA_BINARY_VERSION) -> str:
    """The Maven coordinate of Spark's Kafka connector matching the installed Spark."""
    return f"org.apache.spark:spark-sql-kafka-0-10_{scala}:{spark_version}"


def delta_coordinate(delta_version: str, scala: str = SCALA_BINARY_VERSION) -> str:
    """The Maven coordinate of Delta Lake's Spark jar matching the installed delta-spark package."""
    return f"io.delta:delta-spark_{scala}:{delta_version}"


def installed_delta_version() -> str:
    """The delta-spark pip package's version (requirements.txt pins it to pyspark's minor release)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("delta-spark")
    except PackageNotFoundError:
        raise SparkStartError("error: delta-spark is not installed: run `make setup` (or pip install -r "
                              "requirements.txt)") from None


def jar_artifact(file_name: str) -> str:
    """'kafka-clients-3.4.1.jar' -> 'kafka-clients'; 'spark-sql-kafka-0-10_2.12-3.5.7.jar' -> 'spark-sql-kafka-0-10_2.12'."""
    return re.sub(r"-\d+\.\d.*\.jar$", "", file_name)


def cached_connector_jars(cache_dir: Path, version: str, spark_jars_dir: Path,
                          main_jar: str = "spark-sql-kafka-0-10") -> list[str]:
    """Jars that `make setup` fetched for this version (of Spark for the Kafka connector, of Delta for
    main_jar="delta-spark"), minus artifacts pyspark already ships in any version (Spark's own copy wins, as with
    spark.jars.packages); [] when the cache is absent or lacks its main jar."""
    version_dir = cache_dir / version
    jars = sorted(version_dir.glob("*.jar")) if version_dir.is_dir() else []
    if not any(j.name.startswith(main_jar) for j in jars):
        return []
    shipped = {jar_artifact(j.name) for j in spark_jars_dir.glob("*.jar")}
    return [str(j) for j in jars if jar_artifact(j.name) not in shipped]


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


def format_progress(progress: dict[str, Any]) -> str:
    """One line per micro-batch: rows, rows/s, batch duration, end offsets per partition, offsets behind latest."""
    rows = progress.get("numInputRows", 0)
    duration_ms = progress.get("durationMs", {}).get("triggerExecution", 0)
    rate = progress.get("processedRowsPerSecond") or 0.0
    parts = [f"batch={progress.get('batchId')}", f"rows={rows}", f"rows/s={rate:.0f}", f"duration_ms={duration_ms}"]
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        if isinstance(end, dict):  # Kafka: {"topic": {"0": 12, "1": 40}}; file source: {"logOffset": 7}
            for topic, offsets in end.items():
                if not isinstance(offsets, dict):
                    parts.append(f"{topic}={offsets}")
                    continue
                listed = ",".join(f"{p}:{o}" for p, o in sorted(offsets.items(), key=lambda kv: int(kv[0])))
                parts.append(f"end[{topic}]={listed}")
        behind = (source.get("metrics") or {}).get("maxOffsetsBehindLatest")
        if behind is not None:
            parts.append(f"max_offsets_behind={behind}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Spark


def build_spark(app_name: str, *, kafka: bool = False, delta: bool = False, conf: dict[str, str] | None = None):
    """A SparkSession for one job (or for several jobs' queries in one application).

    The master is never fixed here: under spark-submit the session takes whatever --master said; run as a plain
    script it uses SPARK_MASTER or local[*]. kafka=True adds Spark's Kafka connector, delta=True Delta Lake (its jars,
    SQL extension and catalog). Each is asked for through spark.jars.packages (the seed's way); when `make setup`
    already resolved the same coordinates with Maven, Spark is handed those jars instead, so no resolver runs at
    start-up (this is the path tests and CI take).
    """
    import pyspark
    from pyspark.sql import SparkSession

    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit:
        builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        jars, packages = extra_jars(kafka=kafka, delta=delta, spark_version=pyspark.__version__,
                                    spark_jars_dir=Path(pyspark.__file__).parent / "jars")
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        if packages:
            builder = builder.config("spark.jars.packages", ",".join(packages))
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": os.environ.get("SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.showConsoleProgress": "false",
        # Parquet readers outside Spark (pyarrow, DuckDB) read int96 poorly; write timestamps as microseconds.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        **(DELTA_SESSION_CONF if delta else {}),
    }
    for key, value in {**defaults, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j/pyspark raise several types here; all mean "Spark did not start"
        raise SparkStartError(f"error: {spark_start_hint(kafka or delta, exc)}") from exc
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def extra_jars(*, kafka: bool, delta: bool, spark_version: str, spark_jars_dir: Path) -> tuple[list[str], list[str]]:
    """(jar files from `make setup`'s caches, Maven coordinates left for spark.jars.packages) for the wanted parts."""
    jars: list[str] = []
    packages: list[str] = []
    wanted = []
    if kafka:
        wanted.append((CONNECTOR_CACHE, spark_version, "spark-sql-kafka-0-10", kafka_connector_coordinate(spark_version)))
    if delta:
        delta_version = installed_delta_version()
        wanted.append((DELTA_CACHE, delta_version, "delta-spark", delta_coordinate(delta_version)))
    for cache, version, main_jar, coordinate in wanted:
        cached = cached_connector_jars(cache, version, spark_jars_dir, main_jar=main_jar)
        if cached:
            jars += cached
        else:
            packages.append(coordinate)
    return jars, packages


class SparkStartError(SystemExit):
    """Spark could not start. A SystemExit, so a job that does not catch it ends with this message and exit code 1,
    instead of a Python traceback on top of Spark's own output."""


def spark_start_hint(packages: bool, exc: BaseException) -> str:
    hints = [f"Spark could not start ({_first_line(str(exc))})."]
    if packages:
        hints.append("If the lines above say 'unresolved dependency' (org.apache.spark#spark-sql-kafka or "
                     "io.delta#delta-spark), Spark's resolver could not download the jars: run `make setup`, which "
                     "fetches them with Maven.")
    hints.append("Spark 3.5 needs Java 17 (not 25): check `java -version` and JAVA_HOME.")
    return " ".join(hints)


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag the job's wait loop checks, so a batch is never cut in half by us."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():  # a second Ctrl-C: stop waiting for the batch
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.event.set()


BatchDescriber = Callable[[str, dict], Optional[str]]  # (query name, progress) -> a log line, or None


def run_query(query, stop: StopRequest, poll_s: float = 0.5) -> int:
    """run_queries() for a job with one query."""
    return run_queries({query.name or "query": query}, stop, poll_s=poll_s)


def run_queries(queries: dict[str, Any], stop: StopRequest, describe: BatchDescriber | None = None,
                late_hint: str = "", poll_s: float = 0.5) -> int:
    """Wait for the queries, log each finished micro-batch, stop them all cleanly on request or when one fails.

    `describe(name, progress)` makes a batch's log line (None: nothing to say); by default format_progress() for a
    batch with rows. A batch whose stateful operators dropped rows older than the watermark also logs a warning
    (with `late_hint`: what a user can do), and the run's total is logged at the end.
    Returns the exit code: 0 finished (available-now) or stopped on request, 1 a query failed, 130 a second Ctrl-C.
    """
    from pyspark.errors import StreamingQueryException

    batch_log = _BatchLog(describe or _describe_with_rows, late_hint)
    failed = False
    try:
        while not failed and not stop.event.is_set() and any(q.isActive for q in queries.values()):
            for name, query in queries.items():
                try:
                    query.awaitTermination(poll_s / len(queries))
                except StreamingQueryException:
                    failed = True  # reported below through query.exception()
                batch_log.new_batches(name, query)
        if stop.event.is_set():
            log.info("%s received: letting the running micro-batch finish, then stopping", stop.signal_name)
        for name, query in queries.items():
            _wait_for_idle(query)
            if query.isActive:
                query.stop()
            batch_log.new_batches(name, query)
    except KeyboardInterrupt:
        log.warning("second interrupt: stopping now; the unfinished batch will be redone on restart")
        for query in queries.values():
            query.stop()
        return 130
    batch_log.totals()
    for name, query in queries.items():
        error = query.exception()
        if error is not None:
            log.error("the %s query failed: %s", name, describe_error(error))
            failed = True
    return 1 if failed else 0


def rows_dropped_by_watermark(progress: dict[str, Any]) -> int:
    """Rows the stateful operators of one micro-batch dropped as older than the watermark (Spark's count, taken after
    its per-partition pre-aggregation: 0 means none, n means at least n)."""
    return sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in progress.get("stateOperators") or [])


def _describe_with_rows(_name: str, progress: dict[str, Any]) -> str | None:
    return format_progress(progress) if progress.get("numInputRows") or progress.get("batchId") == 0 else None


class _BatchLog:
    """Logs each micro-batch once, and warns about rows the watermark dropped."""

    def __init__(self, describe: BatchDescriber, late_hint: str) -> None:
        self.describe, self.late_hint = describe, late_hint
        self.last_batch: dict[str, int] = {}
        self.late_total: dict[str, int] = {}

    def new_batches(self, name: str, query) -> None:
        for progress in query.recentProgress:
            batch = progress.get("batchId", -1)
            if batch <= self.last_batch.get(name, -1):
                continue
            self.last_batch[name] = batch
            line = self.describe(name, progress)
            if line:
                log.info("%s", line)
            dropped = rows_dropped_by_watermark(progress)
            if dropped:
                self.late_total[name] = self.late_total.get(name, 0) + dropped
                log.warning("%s batch=%s dropped %d late row(s) older than the watermark %s%s", name, batch, dropped,
                            (progress.get("eventTime") or {}).get("watermark"), self.late_hint)

    def totals(self) -> None:
        for name, total in self.late_total.items():
            log.warning("%s: late rows dropped by the watermark in this run: %d%s", name, total, self.late_hint)


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


def describe_error(error: BaseException) -> str:
    """The first line of a Spark error that says what went wrong, without the JVM stack."""
    text = str(getattr(error, "desc", None) or error)
    for line in text.strip().splitlines():
        if "Exception:" in line or "Error:" in line:
            return line.strip()
    return _first_line(text)


def _wait_for_idle(query) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and query.isActive and query.status.get("isTriggerActive"):
        time.sleep(0.1)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
