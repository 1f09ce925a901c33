"""Issue 25: metadata stays bounded. The tables' retention properties are set at creation and on an existing table
(idempotently), and the hourly OPTIMIZE compacts only the partitions written since its last round, with a 16 MB
minimum file size instead of Delta's 1 GB. In-process Spark with Delta (the session fixture), a few seconds."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.lake import delta

pytestmark = pytest.mark.integration

DDL = "symbol STRING, n BIGINT, trade_date DATE"
DAY_A, DAY_B = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def append(spark, path: str, day: dt.date, n: int) -> None:
    spark.createDataFrame([("XBT/USDT", n, day)], DDL).write.format("delta").mode("append").save(path)


def files_of(spark, path: str, day: dt.date) -> set[str]:
    from pyspark.sql import functions as F

    return set(spark.read.format("delta").load(path).where(F.col("trade_date") == F.lit(day)).inputFiles())


def test_retention_properties_at_creation_and_on_an_existing_table_once(spark, tmp_path):
    path = str(tmp_path / "t")
    delta.ensure_table(spark, path, DDL, partition_by=["trade_date"], owner="test")
    props = delta.table_properties(spark, path)
    assert {k: props[k] for k in delta.TABLE_PROPERTIES} == {
        "delta.autoOptimize.autoCompact": "true", "delta.logRetentionDuration": "interval 3 days",
        "delta.deletedFileRetentionDuration": "interval 1 day", "delta.checkpointInterval": "10"}
    # a table an older version made (7-day retention, no checkpoint interval) gets today's values at the next start
    delta.set_properties(spark, path, {"delta.logRetentionDuration": "interval 7 days"})
    before = delta.table_version(spark, path)
    delta.ensure_table(spark, path, DDL, partition_by=["trade_date"], owner="test")
    assert delta.table_properties(spark, path)["delta.logRetentionDuration"] == "interval 3 days"
    assert delta.table_version(spark, path) == before + 1  # one commit
    delta.ensure_table(spark, path, DDL, partition_by=["trade_date"], owner="test")
    assert delta.table_version(spark, path) == before + 1  # and none when all are set


def test_optimize_compacts_only_the_partitions_written_since_the_last_round(spark, tmp_path):
    path = str(tmp_path / "t")
    delta.ensure_table(spark, path, DDL, partition_by=["trade_date"], owner="test")
    delta.set_properties(spark, path, {"delta.autoOptimize.autoCompact": "false"})  # files stay as written here
    for n in range(3):
        append(spark, path, DAY_A, n)
        append(spark, path, DAY_B, n)
    assert spark.conf.get("spark.databricks.delta.optimize.minFileSize") == str(16 * 1024 * 1024)
    seen = delta.table_version(spark, path)  # the last round saw this version
    append(spark, path, DAY_B, 10)
    files_a = files_of(spark, path, DAY_A)
    assert len(files_a) == 3 and len(files_of(spark, path, DAY_B)) == 4

    where = delta.changed_partitions_filter(spark, path, seen, delta.table_version(spark, path))
    assert where == "(trade_date = CAST('2026-01-02' AS DATE))"  # Spark's own rendering of the literal
    result = delta.compact_and_vacuum(spark, path, since_version=seen)
    assert files_of(spark, path, DAY_A) == files_a  # not written since: not rewritten
    assert len(files_of(spark, path, DAY_B)) == 1
    assert result["files_before"] == 7 and result["files_after"] == 4

    # nothing written since that round (its own compaction does not count): no OPTIMIZE at all
    assert delta.changed_partitions_filter(spark, path, result["version"], delta.table_version(spark, path)) is False
    again = delta.compact_and_vacuum(spark, path, since_version=result["version"])
    assert files_of(spark, path, DAY_A) == files_a and again["files_after"] == 4
    # no round before (since_version None): the whole table
    delta.compact_and_vacuum(spark, path)
    assert len(files_of(spark, path, DAY_A)) == 1
    rows = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    assert rows == sorted([("XBT/USDT", n, d) for n in range(3) for d in (DAY_A, DAY_B)] + [("XBT/USDT", 10, DAY_B)])


def test_commit_info_reads_what_history_shows_of_one_commit(spark, tmp_path):
    """A writer's look at the commit it just made (Silver's inserted count) reads that commit's file: the same
    operation, metrics and user metadata as DESCRIBE HISTORY; {} for a version that is not there."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = str(tmp_path / "t")
    delta.ensure_table(spark, path, DDL, partition_by=["trade_date"], owner="test")
    append(spark, path, DAY_A, 1)
    source = spark.createDataFrame([("XBT/USDT", n, DAY_A) for n in (1, 2, 3)], DDL)
    with delta.commit_metadata(spark, {"through": 7}):
        version = delta.committed_version(spark, lambda: DeltaTable.forPath(spark, path).alias("t").merge(
            source.alias("s"), F.col("t.n") == F.col("s.n")).whenNotMatchedInsertAll().execute())
    info = delta.commit_info(spark, path, version)
    shown = DeltaTable.forPath(spark, path).history(1).collect()[0]
    assert (info["operation"], info["operationMetrics"], info["userMetadata"]) == (
        shown["operation"], shown["operationMetrics"], shown["userMetadata"])
    assert (info["operation"], info["operationMetrics"]["numTargetRowsInserted"]) == ("MERGE", "2")
    assert delta.parse_commit_metadata(info["userMetadata"]) == {"through": 7}
    assert delta.commit_info(spark, path, version - 1)["operation"] == "WRITE"
    assert delta.commit_info(spark, path, version + 1) == {}
