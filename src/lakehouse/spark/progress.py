"""What a Spark job tells its user: one line per micro-batch, the line of a Spark error that says what went wrong, and
why Spark could not start.

Pure Python (no Spark import): the jobs and their tests use it.
"""

from __future__ import annotations

from typing import Any


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


def describe_error(error: BaseException) -> str:
    """The first line of a Spark error that says what went wrong, without the JVM stack."""
    text = str(getattr(error, "desc", None) or error)
    for line in text.strip().splitlines():
        if "Exception:" in line or "Error:" in line:
            return line.strip()
    return first_line(text)


class SparkStartError(SystemExit):
    """Spark could not start. A SystemExit, so a job that does not catch it ends with this message and exit code 1,
    instead of a Python traceback on top of Spark's own output."""


def spark_start_hint(packages: bool, exc: BaseException) -> str:
    hints = [f"Spark could not start ({first_line(str(exc))})."]
    if packages:
        hints.append("If the lines above say 'unresolved dependency' (org.apache.spark#spark-sql-kafka or "
                     "io.delta#delta-spark), Spark's resolver could not download the jars: run `make setup`, which "
                     "fetches them with Maven.")
    hints.append("Spark 3.5 needs Java 17 (not 25): check `java -version` and JAVA_HOME.")
    return " ".join(hints)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
