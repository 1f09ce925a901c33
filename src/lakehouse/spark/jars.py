"""The jars the Spark jobs need: resolved with Maven, once, into .cache/ (what `make setup` runs), and handed to
Spark at start (or asked for as Maven coordinates when they are not there).

- Spark's Kafka connector for the installed pyspark (spark/connector-pom.xml) into .cache/spark-kafka/<pyspark version>
- Delta Lake for the installed delta-spark package (spark/delta-pom.xml) into .cache/spark-delta/<delta version>
- the project's log store for local Delta tables (spark/logstore/, compiled with javac against those jars) into
  .cache/spark-delta-logstore/<delta version>: it lists a table's _delta_log by name first (see its source)
- the project's streaming source of a file sink's committed files (spark/source/, compiled against pyspark's jars)
  into .cache/spark-sink-files/<pyspark version>: Silver reads Bronze through it (see its source)

The jobs hand these jars to Spark (spark.jars) when they exist, so no resolver runs at job start; without them they
ask for the same coordinates through spark.jars.packages. Spark's own resolver (Ivy) cannot reach Maven Central from
some machines while Maven can: this is the path tests and CI take. Quiet when everything is cached; Maven's
own output is shown only when it fails.

Usage (examples in the entry point's docstring, spark/fetch_jars.py):
    python spark/fetch_jars.py --help

Exit codes: 0 the jars are there; 1 Maven or javac failed (its output is printed); 2 Maven, or the JDK compiler
that builds the Bronze reader, is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.defaults import REPO_ROOT
from lakehouse.spark.progress import SparkStartError

SPARK_DIR = REPO_ROOT / "spark"  # the Maven poms: connector-pom.xml, delta-pom.xml
# `make setup` (this module) resolves the Kafka connector and Delta Lake's jars with Maven into these folders.
CONNECTOR_CACHE = Path(os.environ.get("SPARK_KAFKA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-kafka"))
DELTA_CACHE = Path(os.environ.get("SPARK_DELTA_JARS_CACHE", REPO_ROOT / ".cache" / "spark-delta"))
LOG_STORE_CACHE = Path(os.environ.get("SPARK_DELTA_LOGSTORE_CACHE", REPO_ROOT / ".cache" / "spark-delta-logstore"))
LOG_STORE_SOURCE = SPARK_DIR / "logstore" / "lakehouse" / "delta" / "NameFilteredLocalLogStore.java"
LOG_STORE_CLASS = "lakehouse.delta.NameFilteredLocalLogStore"
LOG_STORE_JAR = "lakehouse-delta-logstore.jar"
# What names it to Delta for local paths: Delta picks a log store per path scheme from this Spark setting.
LOG_STORE_CONF_KEY = "spark.delta.logStore.file.impl"
SINK_FILES_CACHE = Path(os.environ.get("SPARK_SINK_FILES_CACHE", REPO_ROOT / ".cache" / "spark-sink-files"))
SINK_FILES_SOURCE = SPARK_DIR / "source" / "lakehouse" / "spark" / "SinkFilesSource.java"
SINK_FILES_CLASS = "lakehouse.spark.SinkFilesSource"  # spark.readStream.format(SINK_FILES_CLASS).load(<sink folder>)
SINK_FILES_JAR = "lakehouse-sink-files.jar"
SCALA_BINARY_VERSION = "2.12"  # the PyPI pyspark 3.5 wheels are built for Scala 2.12


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
    if delta and (log_store := LOG_STORE_CACHE / installed_delta_version() / LOG_STORE_JAR).is_file():
        jars.append(str(log_store))
    if (sink_files := SINK_FILES_CACHE / spark_version / SINK_FILES_JAR).is_file():
        jars.append(str(sink_files))
    return jars, packages


def sink_files_source_problem(spark_jars: str) -> str | None:
    """Why a session whose spark.jars is `spark_jars` cannot read a file sink through SinkFilesSource, or None."""
    if any(Path(j).name == SINK_FILES_JAR for j in spark_jars.split(",") if j):
        return None
    return (f"the project's Bronze reader ({SINK_FILES_JAR}) is not built: run `make setup` (it compiles "
            f"{SINK_FILES_SOURCE.relative_to(REPO_ROOT)} with javac; apt-get install openjdk-17-jdk-headless); "
            f"under spark-submit, pass it with --jars")


def log_store_conf(jars: list[str]) -> dict[str, str]:
    """The setting that makes Delta use the project's local log store: only when its jar is among the session's jars
    (without it Delta keeps its own, HDFSLogStore: the same answers, a slower listing of long logs)."""
    return {LOG_STORE_CONF_KEY: LOG_STORE_CLASS} if any(Path(j).name == LOG_STORE_JAR for j in jars) else {}


def fetch(what: str, pom: Path, version_property: str, version: str, target: Path, main_jar: str) -> None:
    """mvn dependency:copy-dependencies of `pom` at `version` into target/ (atomically: a .partial folder first)."""
    if any(target.glob(f"{main_jar}*.jar")):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        print("error: Maven (mvn) not found: it fetches Spark's Kafka connector and Delta Lake's jars from Maven "
              "Central (apt-get install maven)", file=sys.stderr)
        raise SystemExit(2)
    print(f"fetching {what} {version} with Maven into {target} ...", flush=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), f"-D{version_property}={version}", "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={partial}"], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"error: Maven could not fetch {what} {version}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}",
              file=sys.stderr)
        raise SystemExit(1)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def build_jar(what: str, source: Path, classpath: list[Path], jar: Path, required: bool) -> bool:
    """Compile one Java source against `classpath` into `jar` (for Java 8 and later), unless a jar built from this
    source is there. Without a JDK compiler: a warning and False, or (required) an error and exit 2."""
    if jar.is_file() and jar.stat().st_mtime >= source.stat().st_mtime:
        return True
    javac, jar_tool = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar_tool is None:
        print(f"{'error' if required else 'warning'}: no JDK compiler (javac) found to build {what} "
              "(apt-get install openjdk-17-jdk-headless)", file=sys.stderr)
        if required:
            raise SystemExit(2)
        return False
    classes = jar.parent.with_name(jar.parent.name + ".classes")
    shutil.rmtree(classes, ignore_errors=True)
    jar.parent.mkdir(parents=True, exist_ok=True)
    for command in ([javac, "--release", "8", "-Xlint:-options", "-nowarn", "-d", str(classes),
                     "-cp", os.pathsep.join(map(str, classpath)), str(source)],
                    [jar_tool, "cf", str(jar.with_suffix(".partial")), "-C", str(classes), "."]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"error: building {what} failed ({command[0]}):\n{result.stdout}{result.stderr}", file=sys.stderr)
            raise SystemExit(1)
    jar.with_suffix(".partial").rename(jar)
    shutil.rmtree(classes, ignore_errors=True)
    return True


def build_log_store(delta_jars: Path, spark_jars_dir: Path, target: Path, source: Path = LOG_STORE_SOURCE) -> bool:
    """Compile the project's log store (source) against Delta's storage jar and Spark's Hadoop into target/LOG_STORE_JAR.
    Optional: without a JDK compiler, a warning, and Delta keeps its own log store, which lists a table's whole
    _delta_log at every refresh (slower after days of commits)."""
    classpath = [*delta_jars.glob("delta-storage-*.jar"), *spark_jars_dir.glob("hadoop-client-api-*.jar")]
    return build_jar("Delta's local log store", source, classpath, target / LOG_STORE_JAR, required=False)


def build_sink_files_source(spark_jars_dir: Path, target: Path, source: Path = SINK_FILES_SOURCE) -> bool:
    """Compile the project's file sink source (source) against pyspark's jars into target/SINK_FILES_JAR. Required:
    Silver reads Bronze through it."""
    classpath = [spark_jars_dir / "*"]  # javac reads every jar of the folder
    return build_jar("the Bronze reader (SinkFilesSource)", source, classpath, target / SINK_FILES_JAR, required=True)


def main() -> int:
    import pyspark

    spark_version = pyspark.__version__
    fetch("Spark's Kafka connector for pyspark", SPARK_DIR / "connector-pom.xml", "spark.version", spark_version,
          CONNECTOR_CACHE / spark_version, "spark-sql-kafka-0-10")
    delta_version = installed_delta_version()
    fetch("Delta Lake", SPARK_DIR / "delta-pom.xml", "delta.version", delta_version, DELTA_CACHE / delta_version,
          "delta-spark")
    spark_jars_dir = Path(pyspark.__file__).parent / "jars"
    build_log_store(DELTA_CACHE / delta_version, spark_jars_dir, LOG_STORE_CACHE / delta_version)
    build_sink_files_source(spark_jars_dir, SINK_FILES_CACHE / spark_version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
