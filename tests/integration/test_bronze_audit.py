"""The Bronze audit against Bronze folders the real Bronze job wrote from the real broker, then damaged on purpose.

One topic of 3 partitions x 10 records is landed once for the module (4 micro-batches of 3+3+3+1 offsets per partition,
so the sink log has plain and .compact batch files); each fault test damages its own copy of that Bronze folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.bronze import audit as bronze_audit
from tests.helpers import run_script, wait_until
from tests.integration.bronze_audit_helpers import (add_batch, committed_end_offsets, land, produce, relocate,
                                                    sink_log_paths, start_bronze_job)

pytestmark = pytest.mark.integration

AUDIT = "spark/jobs/bronze_audit.py"
PER_PARTITION = 10


@pytest.fixture(scope="module")
def landed(bootstrap: str, tmp_path_factory):
    """(topic, bronze folder): 10 records in each of 3 partitions, landed by the Bronze job in 4 batches."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"audit-{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    produce(bootstrap, topic, {0: PER_PARTITION, 1: PER_PARTITION, 2: PER_PARTITION})
    base = tmp_path_factory.mktemp("audit")
    land(bootstrap, topic, base / "bronze", base / "checkpoint", "--maxOffsetsPerTrigger", "9")
    yield topic, base / "bronze"
    admin.delete_topics([topic], operation_timeout=30)


def audit(capsys, bootstrap: str, topic: str, bronze: Path, *extra: str) -> tuple[int, dict]:
    """Run the audit in this process (it reuses the test session's Spark) and return (exit code, JSON report)."""
    capsys.readouterr()
    code = bronze_audit.main(["--bootstrap", bootstrap, "--topic", topic, "--bronze", str(bronze), "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def figures(report: dict, *keys: str) -> dict[int, tuple]:
    return {p["partition"]: tuple(p[k] for k in keys) for p in report["partitions"]}


def file_offsets(spark, path: Path) -> dict[int, tuple[int, int, int]]:
    """Per partition held by one Parquet file (Bronze writes one file per batch): (first offset, last offset, rows)."""
    from pyspark.sql import functions as F

    rows = (spark.read.parquet(str(path)).groupBy("partition")
            .agg(F.min("offset"), F.max("offset"), F.count(F.lit(1))).collect())
    return {partition: (first, last, count) for partition, first, last, count in rows}


def middle_file(spark, bronze: Path) -> tuple[Path, dict[int, tuple[int, int, int]]]:
    """A committed file holding, of each partition it holds, neither the first nor the last offset (its loss makes
    a hole in each)."""
    for path in sink_log_paths(bronze):
        held = file_offsets(spark, path)
        if all(first > 0 and last < PER_PARTITION - 1 for first, last, _ in held.values()):
            return path, held
    raise AssertionError("no middle file")


def by_partition(held: dict[int, tuple[int, int, int]]) -> str:
    """The audit's way of naming counts per partition: "p0: 3, p2: 3"."""
    return ", ".join(f"p{partition}: {rows}" for partition, (_, _, rows) in sorted(held.items()))


def test_complete_bronze_passes_then_lag_is_reported_not_failed(spark, bootstrap, landed, capsys) -> None:
    topic, bronze = landed
    # the table a person reads (in this process: the CLI path is the lead's end-to-end demo test and the usage tests)
    capsys.readouterr()
    assert bronze_audit.main(["--bootstrap", bootstrap, "--topic", topic, "--bronze", str(bronze)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[2].split()[:3] == ["partition", "broker", "log"]
    assert [line.split() for line in lines[3:7]] == [
        ["0", "0", "10", "10", "0", "9", "0", "0", "0", "0"],
        ["1", "0", "10", "10", "0", "9", "0", "0", "0", "0"],
        ["2", "0", "10", "10", "0", "9", "0", "0", "0", "0"],
        ["total", "30", "0", "0", "0", "0"]]
    assert lines[-1] == "verdict: OK: 30 rows, no holes, no duplicates, every committed file present"
    assert "files: 4 committed in _spark_metadata (latest batch 3)" in text  # one file a batch

    code, report = audit(capsys, bootstrap, topic, bronze)
    on_disk = sorted(p.stat().st_size for p in bronze.glob("*.parquet"))
    assert code == 0 and report["problems"] == [] and report["warnings"] == []
    assert (report["files"]["committed"], report["files"]["total_bytes"], report["files"]["min_bytes"],
            report["files"]["max_bytes"]) == (4, sum(on_disk), on_disk[0], on_disk[-1])

    produce(bootstrap, topic, {0: 2, 2: 5})  # not landed
    code, report = audit(capsys, bootstrap, topic, bronze)
    assert code == 0 and report["problems"] == []
    assert figures(report, "end", "rows", "last", "holes", "lag") == {
        0: (12, 10, 9, 0, 2), 1: (10, 10, 9, 0, 0), 2: (15, 10, 9, 0, 5)}


def test_a_file_committed_twice_is_a_duplicate(spark, bootstrap, landed, capsys, tmp_path) -> None:
    topic, original = landed
    bronze = relocate(original, tmp_path / "bronze")
    path, held = middle_file(spark, bronze)
    copy = bronze / "part-00009-copied-c000.snappy.parquet"
    shutil.copyfile(path, copy)
    add_batch(bronze, [copy])

    code, report = audit(capsys, bootstrap, topic, bronze)
    assert code == 1
    assert figures(report, "rows", "duplicates", "holes") == {
        p: ((PER_PARTITION + held[p][2], held[p][2], 0) if p in held else (PER_PARTITION, 0, 0)) for p in range(3)}
    assert report["duplicated_offsets"] == [
        {"partition": partition, "offset": offset, "copies": 2, "files": sorted([str(path), str(copy)])}
        for partition, (first, last, _) in sorted(held.items()) for offset in range(first, last + 1)]
    assert report["files"]["committed"] == 5 and report["files"]["orphans"] == []
    assert report["problems"] == [f"{sum(rows for *_, rows in held.values())} duplicate rows (the same offset more "
                                  f"than once; {by_partition(held)})"]
    assert report["warnings"] == []  # Spark's listing through _spark_metadata agrees with the audit's


def test_a_deleted_committed_file_is_missing_and_leaves_a_hole(spark, bootstrap, landed, capsys, tmp_path) -> None:
    topic, original = landed
    bronze = relocate(original, tmp_path / "bronze")
    path, held = middle_file(spark, bronze)
    path.unlink()

    code, report = audit(capsys, bootstrap, topic, bronze)
    assert code == 1
    assert report["files"]["missing"] == [str(path)]
    assert figures(report, "rows", "first", "last", "holes", "hole_ranges") == {
        p: (PER_PARTITION - rows, 0, PER_PARTITION - 1, rows, [[first, last]]) for p, (first, last, rows) in held.items()}
    assert report["problems"] == [
        f"{sum(rows for *_, rows in held.values())} offsets missing inside the landed range (holes; "
        f"{by_partition(held)})",
        f"1 committed files missing on disk (Spark readers of Bronze fail on them): {path}"]


def test_a_stray_uncommitted_file_is_an_orphan_warning(spark, bootstrap, landed, capsys, tmp_path) -> None:
    topic, original = landed
    bronze = relocate(original, tmp_path / "bronze")
    path, _ = middle_file(spark, bronze)
    stray = bronze / "part-00000-stray-c000.snappy.parquet"
    shutil.copyfile(path, stray)

    code, report = audit(capsys, bootstrap, topic, bronze)
    assert code == 0 and report["problems"] == []
    assert figures(report, "rows", "duplicates") == {p: (PER_PARTITION, 0) for p in range(3)}  # Spark ignores it
    assert report["files"]["orphans"] == [str(stray)] and report["files"]["orphan_bytes"] == stray.stat().st_size
    assert report["warnings"][0].startswith("1 Parquet files (")
    assert str(stray) in report["warnings"][0]

    code, report = audit(capsys, bootstrap, topic, bronze, "--fail-on-orphans")
    assert code == 1 and str(stray) in report["problems"][0]


def test_a_job_started_at_latest_misses_the_head(spark, bootstrap, new_topic, capsys, tmp_path) -> None:
    topic = new_topic(partitions=3)
    produce(bootstrap, topic, {0: 5, 1: 5, 2: 5})  # already in the topic when the job starts
    bronze, checkpoint = tmp_path / "bronze", tmp_path / "checkpoint"
    job = start_bronze_job(bootstrap, topic, bronze, checkpoint, tmp_path / "job.log",
                           "--startingOffsets", "latest", "--trigger", "500 milliseconds")
    try:
        # the query has fixed its starting offsets once batch 0 is committed
        wait_until(lambda: committed_end_offsets(checkpoint, topic) == {0: 5, 1: 5, 2: 5}, timeout=90,
                   interval=0.25, what="the Bronze job to start at latest")
        produce(bootstrap, topic, {0: 3, 1: 3, 2: 3})
        wait_until(lambda: committed_end_offsets(checkpoint, topic) == {0: 8, 1: 8, 2: 8}, timeout=60,
                   interval=0.25, what="the new records to land")
    finally:
        job.send_signal(signal.SIGTERM)
        assert job.wait(60) == 0, (tmp_path / "job.log").read_text()

    code, report = audit(capsys, bootstrap, topic, bronze)
    assert code == 1
    assert figures(report, "log_start", "end", "rows", "first", "last", "head_not_landed", "holes", "lag") == {
        p: (0, 8, 3, 5, 7, 5, 0, 0) for p in range(3)}
    assert report["problems"][0].startswith("15 records at the head of the log not landed (p0: 5, p1: 5, p2: 5)")

    code, report = audit(capsys, bootstrap, topic, bronze, "--allow-head-gap")
    assert code == 0 and report["problems"] == [] and "allowed by --allow-head-gap" in report["warnings"][0]


def test_usage_errors_exit_2(bootstrap, landed, tmp_path) -> None:
    topic, bronze = landed
    result = run_script(AUDIT, "--bootstrap", "localhost:1", "--topic", topic, "--bronze", str(bronze))
    assert result.returncode == 2 and "error: cannot reach the Kafka broker at --bootstrap localhost:1" in result.stderr
    absent = f"absent-{uuid.uuid4().hex}"
    result = run_script(AUDIT, "--bootstrap", bootstrap, "--topic", absent, "--bronze", str(bronze))
    assert result.returncode == 2 and "does not exist on localhost:19092" in result.stderr
    (tmp_path / "plain").mkdir()
    result = run_script(AUDIT, "--bootstrap", bootstrap, "--topic", topic, "--bronze", str(tmp_path / "plain"))
    assert result.returncode == 2 and "has no _spark_metadata" in result.stderr
