"""Resolve the jars the Spark jobs need with Maven, once, into .cache/ (what `make setup` runs).

- Spark's Kafka connector for the installed pyspark (spark/connector-pom.xml) into .cache/spark-kafka/<pyspark version>
- Delta Lake for the installed delta-spark package (spark/delta-pom.xml) into .cache/spark-delta/<delta version>

The jobs hand these jars to Spark (spark.jars) when they exist, so no resolver runs at job start; without them they
ask for the same coordinates through spark.jars.packages. Spark's own resolver (Ivy) cannot reach Maven Central from
some machines while Maven can: this script is the path tests and CI take. Quiet when everything is cached; Maven's
own output is shown only when it fails.

Usage:
    python spark/fetch_jars.py

Exit codes: 0 the jars are there; 1 Maven failed (its output is printed); 2 Maven is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))

from streaming_common import CONNECTOR_CACHE, DELTA_CACHE, installed_delta_version  # noqa: E402

SPARK_DIR = Path(__file__).resolve().parent


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


def main() -> int:
    import pyspark

    spark_version = pyspark.__version__
    fetch("Spark's Kafka connector for pyspark", SPARK_DIR / "connector-pom.xml", "spark.version", spark_version,
          CONNECTOR_CACHE / spark_version, "spark-sql-kafka-0-10")
    delta_version = installed_delta_version()
    fetch("Delta Lake", SPARK_DIR / "delta-pom.xml", "delta.version", delta_version, DELTA_CACHE / delta_version,
          "delta-spark")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
