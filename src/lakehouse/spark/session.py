"""The SparkSession of a job (or of several jobs' queries in one application), on this machine or on a cluster
(--master): the jars it gets, the settings every job shares, where Spark's own log goes, and what a cluster's
executors need from the driver (the lakehouse package as a zip, the driver's Python).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

from lakehouse.defaults import LOG_DIR, REPO_ROOT
from lakehouse.spark.jars import extra_jars, log_store_conf
from lakehouse.spark.progress import SparkStartError, spark_start_hint
from lakehouse.spark.sinks import STREAMING_METADATA_CONF

# Spark's own log: errors on the terminal, warnings to data/logs/spark-<app>.log (spark/conf/log4j2.properties).
LOG4J2_CONF = REPO_ROOT / "spark" / "conf" / "log4j2.properties"
SPARK_LOG_DIR = Path(os.environ.get("SPARK_JOB_LOG_DIR", LOG_DIR))
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
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the lakehouse package: what executors on a cluster must import
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STOP_TIMEOUT_S = 20.0  # how long stopping one query may take

log = logging.getLogger("spark_jobs")


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
    so the workers use the same packages), the lakehouse package (py_files, a zip) for the executors to import, and the
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


def zip_package(dest_dir: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """The lakehouse package's modules in one zip under dest_dir (lakehouse/... at its root, as they are imported:
    what spark.submit.pyFiles or spark-submit's --py-files hands the executors); its path."""
    archive = dest_dir / "lakehouse.zip"
    modules = {module.relative_to(package_dir.parent).as_posix(): module for module in package_dir.rglob("*.py")}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name in sorted(modules):
            zipped.write(modules[name], name)
    return archive


def build_spark(app_name: str, *, kafka: bool = False, delta: bool = False, conf: dict[str, str] | None = None,
                master: str | None = None):
    """A SparkSession for one job (or for several jobs' queries in one application).

    Under spark-submit the session takes whatever spark-submit said (--master, --jars, --py-files). Run as a plain
    script it runs on `master` (a job's --master), else SPARK_MASTER, else local[*]; on a cluster master it ships
    the lakehouse package and jars to the executors (master_conf). kafka=True adds Spark's Kafka connector, delta=True
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
        py_files = [str(zip_package(Path(tempfile.mkdtemp(prefix="spark-jobs-"))))] if cluster else []
        settings.update(master_conf(chosen, jars, py_files, python=sys.executable))
        settings.update(log_store_conf(jars))
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
        # checkpoints and Bronze's _spark_metadata stay bounded over a long run (lakehouse.spark.sinks)
        **STREAMING_METADATA_CONF,
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
