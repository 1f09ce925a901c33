"""What every streaming job in spark/jobs/ shares: building the SparkSession (on this machine or on a cluster:
--master), reading the --trigger flag, logging one line per micro-batch, and stopping cleanly on Ctrl-C or SIGTERM.

Not a job itself; the jobs import it (they run as scripts, so their folder is on sys.path).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
# `make setup` (spark/fetch_jars.py) resolves the Kafka connector and Delta Lake's jars with Maven into these folders.
CONNECTOR_CACHE = Path(os.environ.get("SPARK_KAFKA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-kafka"))
DELTA_CACHE = Path(os.environ.get("SPARK_DELTA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-delta"))
# Spark's own log: errors on the terminal, warnings to data/logs/spark-<app>.log (spark/conf/log4j2.properties).
LOG4J2_CONF = REPO_ROOT / "spark" / "conf" / "log4j2.properties"
SPARK_LOG_DIR = Path(os.environ.get("SPARK_JOB_LOG_DIR", REPO_ROOT / "data" / "logs"))
SCALA_BINARY_VERSION = "2.12"  # the PyPI pyspark 3.5 wheels are built for Scala 2.12
# Delta Lake in a session: its SQL extension (MERGE, OPTIMIZE, VACUUM, time travel) and its catalog.
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # The tasks that rebuild a table's state (its file list) from the Delta log, at every MERGE and read. Delta's
    # default, 50, is sized for tables of millions of files; ours hold hundreds to thousands after compaction, and 50
    # tasks per commit were half of each MERGE's time on 2 cores (measured: 4.3 s -> 2.2 s median per small MERGE).
    # Raise it (DELTA_SNAPSHOT_PARTITIONS) on a cluster whose tables hold millions of files.
    "spark.databricks.delta.snapshotPartitions": os.environ.get("DELTA_SNAPSHOT_PARTITIONS", "2"),
}
JOBS_DIR = Path(__file__).resolve().parent  # the jobs' own modules: what executors on a cluster must import
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STOP_GRACE_S = 60.0  # how long a stop request waits for the running micro-batch to finish
DEFAULT_DRAIN_TIMEOUT_S = 60.0  # how long --drain-on-stop may take to land what the input holds
STOP_TIMEOUT_S = 20.0  # how long stopping one query may take

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


def chosen_master(flag: str | None, environ: dict[str, str] | os._Environ) -> str:
    """The Spark master: --master, else SPARK_MASTER, else local[*] (what a plain `python job.py` always ran on)."""
    return flag or environ.get("SPARK_MASTER") or "local[*]"


def is_local_master(master: str) -> bool:
    """local, local[4], local[*], local[2,3]: Spark in this process, no executors elsewhere."""
    return re.fullmatch(r"local(\[[^\]]*\])?", master.strip()) is not None


def master_host(master: str) -> str | None:
    """spark://host:port (or spark://h1:p,h2:p) -> the first host; None for yarn, k8s://..., local."""
    match = re.match(r"^spark://(\[[^\]]+\]|[^,:/]+)", master.strip())
    return match.group(1).strip("[]") if match else None


def master_conf(master: str, jars: Sequence[str], py_files: Sequence[str], python: str) -> dict[str, str]:
    """The session settings a master needs beyond the job's own.

    Local: the master and the jars (as before). A cluster: also every executor's Python (the driver's interpreter,
    so the workers use the same packages), the jobs' modules (py_files, a zip) for the executors to import, and the
    same local jar paths (Spark's driver serves spark.jars to the executors, which fetch them). A master on the
    loopback interface gets a driver on it too: executors on this machine reach the driver there, whatever the
    host name resolves to (in a network namespace it may resolve to an address that is not up)."""
    conf = {"spark.master": master}
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if is_local_master(master):
        return conf
    conf["spark.pyspark.python"] = python
    if py_files:
        conf["spark.submit.pyFiles"] = ",".join(py_files)
    if master_host(master) in LOOPBACK_HOSTS:
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


def zip_job_modules(dest_dir: Path, jobs_dir: Path = JOBS_DIR) -> Path:
    """spark/jobs/*.py in one zip under dest_dir (the modules at its root, as the jobs import them); its path."""
    archive = dest_dir / "spark_jobs.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for module in sorted(jobs_dir.glob("*.py")):
            zipped.write(module, module.name)
    return archive


def add_master_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=None,
                        help="Spark master, e.g. spark://127.0.0.1:7077 (make cluster-up's); default $SPARK_MASTER, "
                             "else local[*]. On a cluster the job ships its Python modules and the Kafka/Delta jars "
                             "to the executors itself. Under spark-submit, spark-submit's own --master applies")


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


def build_spark(app_name: str, *, kafka: bool = False, delta: bool = False, conf: dict[str, str] | None = None,
                master: str | None = None):
    """A SparkSession for one job (or for several jobs' queries in one application).

    Under spark-submit the session takes whatever spark-submit said (--master, --jars, --py-files). Run as a plain
    script it runs on `master` (a job's --master), else SPARK_MASTER, else local[*]; on a cluster master it ships
    the jobs' modules and jars to the executors (master_conf). kafka=True adds Spark's Kafka connector, delta=True
    Delta Lake (its jars, SQL extension and catalog). Each is asked for through spark.jars.packages (the seed's way);
    when `make setup` already resolved the same coordinates with Maven, Spark is handed those jars instead, so no
    resolver runs at start-up (this is the path tests and CI take).
    """
    import pyspark
    from pyspark.sql import SparkSession

    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName(app_name)
    settings: dict[str, str] = {}
    if not under_spark_submit:
        chosen = chosen_master(master, os.environ)
        jars, packages = extra_jars(kafka=kafka, delta=delta, spark_version=pyspark.__version__,
                                    spark_jars_dir=Path(pyspark.__file__).parent / "jars")
        cluster = not is_local_master(chosen)
        py_files = [str(zip_job_modules(Path(tempfile.mkdtemp(prefix="spark-jobs-"))))] if cluster else []
        settings.update(master_conf(chosen, jars, py_files, python=sys.executable))
        if packages:
            settings["spark.jars.packages"] = ",".join(packages)
        settings["spark.driver.extraJavaOptions"] = log4j_java_options(app_name)
        if cluster:
            # the Python that runs tasks on the executors: read from the environment when the context starts
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            log.info("Spark master %s: shipping %s and %d jars to the executors", chosen, ", ".join(py_files),
                     len(jars))
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": os.environ.get("SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.showConsoleProgress": "false",
        # Parquet readers outside Spark (pyarrow, DuckDB) read int96 poorly; write timestamps as microseconds.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        # query.stop() gives up after this long (e.g. a Kafka source stuck on a broker that went away) instead of
        # blocking the job's exit forever; an interrupted batch is redone on restart.
        "spark.sql.streaming.stopTimeout": str(int(STOP_TIMEOUT_S * 1000)),
        **(DELTA_SESSION_CONF if delta else {}),
    }
    for key, value in {**settings, **defaults, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - py4j/pyspark raise several types here; all mean "Spark did not start"
        raise SparkStartError(f"error: {spark_start_hint(kafka or delta, exc)}") from exc
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def log4j_java_options(app_name: str) -> str:
    """JVM options pointing Spark's logging at the project's configuration and its log file."""
    SPARK_LOG_DIR.mkdir(parents=True, exist_ok=True)
    return (f"-Dlog4j2.configurationFile=file:{LOG4J2_CONF} "
            f"-Dlakehouse.spark.log={SPARK_LOG_DIR / f'spark-{app_name}.log'}")


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

    def sleep(self, seconds: float, step_s: float = 0.1) -> bool:
        """Sleep up to `seconds`, waking early once a stop is requested; True if one was.

        The main thread must never block in self.event.wait(): the handler runs on the main thread, and a signal that
        lands while wait() holds the event's lock makes the handler's set() wait for that lock forever (Python's
        signal docs: no locks in handlers). is_set() takes no lock, so polling it is safe."""
        deadline = time.monotonic() + seconds
        while not self.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(step_s, left))
        return True


BatchDescriber = Callable[[str, dict], Optional[str]]  # (query name, progress) -> a log line, or None
Restart = Callable[[], Any]  # starts a query again, with the availableNow trigger, on the same checkpoint


def run_query(query, stop: StopRequest, poll_s: float = 0.5, drain: Restart | None = None,
              drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S) -> int:
    """run_queries() for a job with one query."""
    name = query.name or "query"
    return run_queries({name: query}, stop, poll_s=poll_s, drain={name: drain} if drain else None,
                       drain_timeout=drain_timeout)


def run_queries(queries: dict[str, Any], stop: StopRequest, describe: BatchDescriber | None = None,
                poll_s: float = 0.5, drain: dict[str, Restart] | None = None,
                drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S) -> int:
    """Wait for the queries, log each finished micro-batch, stop them all cleanly on request or when one fails.

    On a stop request each query, in the order given, finishes its running micro-batch and stops. With `drain`
    ({name: restart}), it is then started again with the availableNow trigger to land what its input holds now,
    bounded by `drain_timeout` seconds: a pipeline whose layers are queried in order (Bronze, Silver, Gold) ends with
    each layer holding everything the layer before it had landed. `describe(name, progress)` makes a batch's log line
    (None: nothing to say); by default format_progress() for a batch with rows.
    Returns the exit code: 0 finished (available-now) or stopped on request, 1 a query failed or a drain did not
    finish, 130 a second Ctrl-C.
    """
    from pyspark.errors import StreamingQueryException

    queries = dict(queries)
    batch_log = _BatchLog(describe or _describe_with_rows)
    failed = False
    try:
        while not failed and not stop.event.is_set() and any(q.isActive for q in queries.values()):
            for name, query in queries.items():
                try:
                    query.awaitTermination(poll_s / len(queries))
                except StreamingQueryException:
                    failed = True  # reported below through query.exception()
                batch_log.new_batches(name, query)
        stopping = stop.event.is_set()
        if stopping:
            log.info("%s received: letting the running micro-batch finish, then stopping%s", stop.signal_name,
                     " (each layer first lands what its input holds now)" if drain else "")
        for name, query in list(queries.items()):
            _wait_for_idle(query)
            stop_query(query)
            batch_log.new_batches(name, query)
            if stopping and drain and name in drain and query.exception() is None:
                if query.isActive:  # did not stop in time (e.g. a fetch from a broker that is gone): no drain
                    log.warning("%s did not stop in time, so it does not land what its input holds now; the rest "
                                "lands on its next start (it is safe in its checkpointed input)", name)
                    failed = True
                    continue
                queries[name], drained = _drain(name, drain[name], drain_timeout)
                failed |= not drained
                batch_log.new_batches(name, queries[name])
    except KeyboardInterrupt:
        log.warning("second interrupt: stopping now; the unfinished batch will be redone on restart")
        for query in queries.values():
            stop_query(query)
        return 130
    for name, query in queries.items():
        error = query.exception()
        if error is not None:
            log.error("the %s query failed: %s", name, describe_error(error))
            failed = True
    return 1 if failed else 0


class _NotStarted:
    """Stands for a drain query that could not start: inactive, no exception of its own, no progress."""
    isActive = False
    lastProgress = None
    recentProgress: list = []

    def exception(self) -> None:
        return None

    def stop(self) -> None:
        pass


def _drain(name: str, restart: Restart, timeout: float) -> tuple[Any, bool]:
    """Start `name` again with availableNow and wait for it to land what its input holds now; (query, finished)."""
    log.info("%s: landing what its input holds now (up to %.0fs)", name, timeout)
    started = time.monotonic()
    try:
        query = restart()
    except Exception as exc:  # noqa: BLE001 - e.g. its input is unreachable now: reported, never a traceback
        log.warning("%s could not start to land what its input holds (%s); the rest lands on its next start",
                    name, describe_error(exc))
        return _NotStarted(), False
    try:
        finished = query.awaitTermination(timeout)
    except Exception:  # noqa: BLE001 - a failed drain is reported through query.exception() by the caller
        return query, False
    if not finished:
        stop_query(query)
        log.warning("%s had not landed everything its input holds after %.0fs; the rest lands on its next start "
                    "(it is safe in its checkpointed input)", name, timeout)
        return query, False
    log.info("%s: caught up with its input in %.1fs", name, time.monotonic() - started)
    return query, True


def wait_until_ready(ready: Callable[[], bool], stop: StopRequest, waiting_line: str,
                     say_again_s: float = 30.0, poll_s: float = 1.0) -> bool:
    """Block until ready() (checked every poll_s), logging `waiting_line` once and again every say_again_s; False
    when a stop was requested first."""
    next_line = 0.0
    while not stop.event.is_set():
        if ready():
            return True
        now = time.monotonic()
        if now >= next_line:
            log.info("%s", waiting_line)
            next_line = now + say_again_s
        stop.sleep(poll_s)
    return False


def path_exists(spark, path: str) -> bool:
    """Whether `path` exists, on any Hadoop file system (local folders, s3a://, hdfs://)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hadoop_path)


def stop_query(query) -> None:
    """Stop a query if it runs; a stop that times out (spark.sql.streaming.stopTimeout) is logged, not raised: the
    job is on its way out, and an interrupted batch is redone on restart."""
    try:
        if query.isActive:
            query.stop()
    except Exception as exc:  # noqa: BLE001 - py4j wraps Spark's TimeoutException
        log.warning("the %s query did not stop within %.0fs: %s", query.name, STOP_TIMEOUT_S, describe_error(exc))


def drain_restart(start_query: Callable[..., Any], spark, args: argparse.Namespace) -> Restart:
    """What --drain-on-stop runs: the job's query started again, on the same checkpoint, with availableNow."""
    return lambda: start_query(spark, argparse.Namespace(**{**vars(args), "available_now": True}))


def add_drain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--drain-on-stop", action="store_true",
                        help="on Ctrl-C/SIGTERM, after the running batch, land what the input holds now before "
                             "stopping (the pipeline runner stops the layers this way, in order)")
    parser.add_argument("--drain-timeout", type=float, default=DEFAULT_DRAIN_TIMEOUT_S,
                        help="longest time --drain-on-stop may take (default %(default)s s)")


def _describe_with_rows(_name: str, progress: dict[str, Any]) -> str | None:
    return format_progress(progress) if progress.get("numInputRows") or progress.get("batchId") == 0 else None


class _BatchLog:
    """Logs each micro-batch once."""

    def __init__(self, describe: BatchDescriber) -> None:
        self.describe = describe
        self.last_batch: dict[str, int] = {}

    def new_batches(self, name: str, query) -> None:
        for progress in query.recentProgress:
            batch = progress.get("batchId", -1)
            if batch <= self.last_batch.get(name, -1):
                continue
            self.last_batch[name] = batch
            line = self.describe(name, progress)
            if line:
                log.info("%s", line)


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
