"""Issue 25: Silver reads Bronze through the project's streaming source of a file sink's committed files
(spark/source/lakehouse/spark/SinkFilesSource.java, built by `make setup`), which reads only the sink log's new
batch files at each trigger. Against real Parquet file sinks written by Spark's own file sink, with real compactions
and their deletions: every committed file once, in commit order, in bounded batches, across restarts, a batch redone
after a crash, and a checkpoint taken over from Spark's own file source. In-process Spark (the session fixture)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lakehouse.bronze.audit import read_sink_log
from lakehouse.silver.job import bronze_records
from lakehouse.spark.jars import SINK_FILES_CLASS

pytestmark = pytest.mark.integration


@pytest.fixture
def quick_cleanup(spark):
    """The sink deletes a compaction's older batch files at once (the project keeps the last 100 batches, and Spark
    waits 10 minutes): the source then finds only the compact file for them."""
    settings = {"spark.sql.streaming.fileSink.log.cleanupDelay": "0", "spark.sql.streaming.minBatchesToRetain": "1"}
    before = {key: spark.conf.get(key) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    yield
    for key, value in before.items():
        spark.conf.set(key, value)


def write_sink(spark, root: Path, sink: Path, batches: range) -> None:
    """Spark's file sink over one input file per batch: one Parquet file per sink batch, 3 rows each."""
    source = root / "input"
    source.mkdir(parents=True, exist_ok=True)
    for b in batches:
        (source / f"in-{b:04d}.json").write_text("".join(json.dumps({"n": b * 10 + i}) + "\n" for i in range(3)))
    query = (spark.readStream.schema("n long").option("maxFilesPerTrigger", "1").json(str(source)).coalesce(1)
             .writeStream.format("parquet").option("path", str(sink))
             .option("checkpointLocation", str(root / "sink_checkpoint")).trigger(availableNow=True).start())
    query.awaitTermination(180)
    assert query.exception() is None


def committed(sink: Path) -> list[str]:
    """The sink's committed files in commit order (the project's own reader of the log: bronze.audit)."""
    return list(read_sink_log(sink).files)


def read_files(spark, sink: Path, checkpoint: Path, max_files: int = 3, held: int | None = None,
               metrics: list | None = None) -> list[tuple[int, list[tuple[int, str]]]]:
    """Run the source to the log's end (available-now): [(batch id, [(file_index, local path)])]. `held`: the most
    log entries it may hold ahead of its offset (default 50,000); `metrics` gets each batch's source metrics."""
    batches = []

    def collect(df, batch_id):
        rows = sorted((r.file_index, r.path) for r in df.collect())
        batches.append((batch_id, [(i, p.removeprefix("file:")) for i, p in rows]))
    reader = spark.readStream.format(SINK_FILES_CLASS).option("maxFilesPerTrigger", str(max_files))
    if held is not None:
        reader = reader.option("maxFilesHeld", str(held))
    query = (reader.load(str(sink)).writeStream.foreachBatch(collect).option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True).start())
    try:
        query.awaitTermination(180)
    except Exception as exc:  # noqa: BLE001 - the query's failure (StreamingQueryException), with the source's message
        raise RuntimeError(str(exc)) from exc
    if metrics is not None:
        metrics.extend(p["sources"][0]["metrics"] for p in query.recentProgress if p["numInputRows"])
    return batches


def paths(batches) -> list[str]:
    return [p for _, files in batches for _, p in files]


@pytest.mark.quick
def test_every_committed_file_once_in_commit_order_in_bounded_batches(spark, tmp_path, quick_cleanup):
    sink = tmp_path / "sink"
    write_sink(spark, tmp_path, sink, range(25))
    names = {f.name for f in (sink / "_spark_metadata").iterdir() if not f.name.startswith(".")}
    assert {"19.compact", "24"} <= names and not {"3", "9.compact", "18"} & names  # compacted, older ones deleted
    files = committed(sink)
    assert len(files) == 25
    batches = read_files(spark, sink, tmp_path / "reader")
    assert [len(f) for _, f in batches] == [3] * 8 + [1]
    assert paths(batches) == files
    assert [i for _, f in batches for i, _ in f] == list(range(25))
    # holding at most 2 entries ahead of its offset (a catch-up over a long log), it reads the compact file in parts
    metrics = []
    held = read_files(spark, sink, tmp_path / "reader_held", max_files=1, held=1, metrics=metrics)  # held: 2
    assert [len(f) for _, f in held] == [1] * 25 and paths(held) == files
    assert max(int(m["filesHeld"]) for m in metrics) == 2 and int(metrics[-1]["filesRead"]) == 25


def test_a_running_reader_follows_each_new_batch_and_compaction(spark, tmp_path, quick_cleanup):
    sink = tmp_path / "sink"
    write_sink(spark, tmp_path, sink, range(1))
    batches = []
    query = (spark.readStream.format(SINK_FILES_CLASS).option("maxFilesPerTrigger", "2").load(str(sink)).writeStream
             .foreachBatch(lambda df, b: batches.append(sorted((r.file_index, r.path.removeprefix("file:"))
                                                               for r in df.collect())))
             .option("checkpointLocation", str(tmp_path / "reader")).trigger(processingTime="100 milliseconds")
             .start())
    try:
        for b in range(1, 22):  # the reader has read batch b-1 when b lands: it reads 9 and 19 from their compact files
            deadline = time.monotonic() + 60
            while sum(map(len, batches)) < b and query.exception() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sum(map(len, batches)) == b, query.exception()
            write_sink(spark, tmp_path, sink, range(b, b + 1))
        deadline = time.monotonic() + 60
        while sum(map(len, batches)) < 22 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        query.stop()
    assert query.exception() is None
    assert [p for files in batches for _, p in files] == committed(sink)
    assert [i for files in batches for i, _ in files] == list(range(22))


def test_a_restart_reads_only_the_files_committed_since(spark, tmp_path, quick_cleanup):
    sink, reader = tmp_path / "sink", tmp_path / "reader"
    write_sink(spark, tmp_path, sink, range(12))
    first = read_files(spark, sink, reader, max_files=5)
    assert [len(f) for _, f in first] == [5, 5, 2]
    write_sink(spark, tmp_path, sink, range(12, 31))  # compactions at 19 and 29 hold the first run's files too
    second = read_files(spark, sink, reader, max_files=2, held=3)  # held: 4 (2 batches), the compact read in parts
    files = committed(sink)
    assert len(files) == 31
    assert paths(first) == files[:12] and paths(second) == files[12:]
    assert [len(f) for _, f in second] == [2] * 9 + [1]
    assert read_files(spark, sink, reader) == []  # nothing new: no batch


def test_a_batch_redone_after_a_crash_reads_the_same_files(spark, tmp_path, quick_cleanup):
    sink, reader = tmp_path / "sink", tmp_path / "reader"
    write_sink(spark, tmp_path, sink, range(14))
    first = read_files(spark, sink, reader, max_files=4)
    last_id, last_files = first[-1]
    (reader / "commits" / str(last_id)).unlink()  # the batch ran, its commit was never written (kill -9)
    write_sink(spark, tmp_path, sink, range(14, 16))
    redone = read_files(spark, sink, reader, max_files=4)
    assert redone[0] == (last_id, last_files)  # the same files, planned from the offsets log alone
    assert paths(redone[1:]) == committed(sink)[14:]


def test_a_checkpoint_of_spark_s_own_file_source_is_taken_over(spark, tmp_path, quick_cleanup):
    sink, reader = tmp_path / "sink", tmp_path / "reader"
    write_sink(spark, tmp_path, sink, range(11))
    seen = []
    query = (spark.readStream.schema("n long").option("maxFilesPerTrigger", "4").parquet(str(sink)).writeStream
             .foreachBatch(lambda df, b: seen.append((b, input_files(df))))
             .option("checkpointLocation", str(reader)).trigger(availableNow=True).start())
    query.awaitTermination(180)
    assert [len(f) for _, f in seen] == [4, 4, 3]
    (reader / "commits" / "2").unlink()  # its last batch is redone by the new source
    write_sink(spark, tmp_path, sink, range(11, 17))
    taken_over = read_files(spark, sink, reader, max_files=4)
    files = committed(sink)
    assert taken_over[0] == (2, [(8 + i, p) for i, p in enumerate(files[8:11])]) and sorted(seen[2][1]) == sorted(
        files[8:11])
    assert paths(taken_over[1:]) == files[11:]
    assert json.loads((reader / "offsets" / str(taken_over[-1][0])).read_text().splitlines()[-1]) == {"files": 17}


def input_files(df) -> list[str]:
    from pyspark.sql import functions as F

    return sorted(r.f.removeprefix("file://") for r in df.select(F.input_file_name().alias("f")).distinct().collect())


def test_the_sink_log_and_the_checkpoint_keep_about_20_batches(spark, tmp_path):
    """The project's settings (lakehouse.spark.sinks): after 45 batches, Bronze's log holds 2 or 3 compact files (with
    Spark's default of 100 batches, every compact file of the last 100 batches: up to 11 copies of a list that grows
    with Bronze), and the sink's checkpoint the offsets of its last 20 batches. The 2-minute clean-up delay is set to
    0 here."""
    key = "spark.sql.streaming.fileSink.log.cleanupDelay"
    before = spark.conf.get(key)
    spark.conf.set(key, "0")
    try:
        write_sink(spark, tmp_path, tmp_path / "sink", range(45))
    finally:
        spark.conf.set(key, before)
    names = [f.name for f in (tmp_path / "sink" / "_spark_metadata").iterdir() if not f.name.startswith(".")]
    # Spark keeps from the compaction before the 20th last batch (25): 19.compact and everything after it
    assert sorted(names, key=lambda n: int(n.split(".")[0])) == (
        ["19.compact"] + [str(b) for b in range(20, 29)] + ["29.compact"] + [str(b) for b in range(30, 39)]
        + ["39.compact"] + [str(b) for b in range(40, 45)])
    offsets = [f.name for f in (tmp_path / "sink_checkpoint" / "offsets").iterdir() if not f.name.startswith(".")]
    assert sorted(map(int, offsets)) == list(range(24, 45))


def test_a_sink_log_with_deletions_fails_with_a_message(spark, tmp_path):
    sink = tmp_path / "sink"
    write_sink(spark, tmp_path, sink, range(3))
    entry = json.loads((sink / "_spark_metadata" / "1").read_text().splitlines()[1])
    (sink / "_spark_metadata" / "3").write_text("v1\n" + json.dumps(dict(entry, action="delete")))
    with pytest.raises(RuntimeError, match="holds a 'delete' entry .* retention option"):
        read_files(spark, sink, tmp_path / "reader")


def test_a_checkpoint_ahead_of_the_sink_fails_with_a_message(spark, tmp_path):
    sink, other, reader = tmp_path / "sink", tmp_path / "other" / "sink", tmp_path / "reader"
    write_sink(spark, tmp_path, sink, range(6))
    assert len(paths(read_files(spark, sink, reader))) == 6
    write_sink(spark, tmp_path / "other", other, range(2))
    with pytest.raises(RuntimeError, match="has read 6 files of .*, which lists only 2"):
        read_files(spark, other, reader)


def test_files_under_a_folder_named_with_glob_characters_are_read_as_named(spark, tmp_path):
    sink = tmp_path / "lake [x] {a,b} *" / "bronze"
    write_sink(spark, tmp_path, sink, range(4))
    counts = []
    query = (spark.readStream.format(SINK_FILES_CLASS).load(str(sink)).writeStream
             .foreachBatch(lambda df, b: counts.append(bronze_records_count(df)))
             .option("checkpointLocation", str(tmp_path / "reader")).trigger(availableNow=True).start())
    query.awaitTermination(180)
    assert query.exception() is None
    assert counts == [12]


def bronze_records_count(files_df) -> int:
    """Rows in the batch's files as Silver reads them (Bronze's schema: a file without its columns gives nulls)."""
    return bronze_records(files_df.sparkSession, files_df).count()
