"""Helpers for the Bronze audit's tests: produce to chosen partitions, land with the real Bronze job, and damage a copy
of a landed Bronze folder the way real accidents do."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from confluent_kafka import Producer

from tests.helpers import PYTHON, REPO_ROOT, script_env

BRONZE_JOB = "spark/jobs/kafka_to_bronze_trades.py"
# Compact the sink log every 2 batches (Spark's default is 10), so a short test run writes N.compact files too.
SMALL_COMPACTION = "--conf spark.sql.streaming.fileSink.log.compactInterval=2 pyspark-shell"


def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    """Produce per_partition[p] small records to partition p; fail unless every one is acknowledged."""
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(topic, key=b"XBT/USDT", value=f'{{"n": {i}, "price": "1.{i:08d}"}}'.encode(),
                             partition=partition, on_delivery=lambda err, _msg: err and errors.append(str(err)))
    assert producer.flush(30) == 0 and not errors, errors


def bronze_job_env() -> dict[str, str]:
    return script_env(PYSPARK_SUBMIT_ARGS=SMALL_COMPACTION, SPARK_MASTER="local[2]")


def land(bootstrap: str, topic: str, out: Path, checkpoint: Path, *extra: str) -> None:
    """Run the real Bronze job with --available-now (small log compaction interval, see SMALL_COMPACTION)."""
    result = subprocess.run([PYTHON, str(REPO_ROOT / BRONZE_JOB), "--bootstrap", bootstrap, "--topic", topic,
                             "--out", str(out), "--checkpoint", str(checkpoint), "--available-now", *extra],
                            cwd=REPO_ROOT, env=bronze_job_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def start_bronze_job(bootstrap: str, topic: str, out: Path, checkpoint: Path, log_path: Path,
                     *extra: str) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen([PYTHON, str(REPO_ROOT / BRONZE_JOB), "--bootstrap", bootstrap, "--topic", topic,
                             "--out", str(out), "--checkpoint", str(checkpoint), *extra],
                            cwd=REPO_ROOT, env=bronze_job_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def committed_end_offsets(checkpoint: Path, topic: str) -> dict[int, int] | None:
    """The end offsets of the newest batch the job has committed (checkpoint offsets/N with commits/N), or None."""
    commits = [int(p.name) for p in (checkpoint / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        return None
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    return {int(p): offset for p, offset in json.loads(lines[2])[topic].items()}


def relocate(src: Path, dst: Path) -> Path:
    """Copy a Bronze folder; _spark_metadata holds absolute paths, so point them at the copy (and drop the log's
    .crc files, which would no longer match)."""
    shutil.copytree(src, dst)
    log_dir = dst / "_spark_metadata"
    for path in log_dir.iterdir():
        if path.name.endswith(".crc"):
            path.unlink()
        else:
            path.write_text(path.read_text().replace(f"file://{src}/", f"file://{dst}/"))
    return dst


def sink_log_paths(bronze: Path) -> list[Path]:
    """Committed data files, as the audit reads them (its own parser is unit-tested against Spark's format)."""
    from lakehouse.bronze.audit import read_sink_log

    return [Path(p) for p in read_sink_log(bronze).files]


def add_batch(bronze: Path, files: list[Path]) -> int:
    """Commit files as one new batch in _spark_metadata, exactly as Spark writes an entry; returns the batch id."""
    log_dir = bronze / "_spark_metadata"
    batch = max(int(p.name.split(".")[0]) for p in log_dir.iterdir() if p.name[0].isdigit()) + 1
    entries = [json.dumps({"path": f.as_uri(), "size": f.stat().st_size, "isDir": False,
                           "modificationTime": int(f.stat().st_mtime * 1000), "blockReplication": 1,
                           "blockSize": 33554432, "action": "add"}, separators=(",", ":")) for f in files]
    (log_dir / str(batch)).write_text("\n".join(["v1", *entries]))
    return batch
