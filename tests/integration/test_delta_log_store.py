"""Issue 25: the project's log store for local Delta tables (spark/logstore/, built by `make setup`) gives Delta the
same answers as Delta's own HDFSLogStore, listing a long _delta_log by name first. In-process Spark with Delta (the
session fixture); a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.spark.jars import LOG_STORE_CLASS, LOG_STORE_CONF_KEY

pytestmark = pytest.mark.integration


def statuses(iterator) -> list[tuple[str, int, int, bool]]:
    """A Java Iterator[FileStatus] as (path, length, modification time, is a folder)."""
    out = []
    while iterator.hasNext():
        status = iterator.next()
        out.append((status.getPath().toString(), status.getLen(), status.getModificationTime(), status.isDirectory()))
    return out


def hadoop_conf(spark, file_system: str):
    conf = spark._jvm.org.apache.hadoop.conf.Configuration(spark._jsc.hadoopConfiguration())
    conf.set("fs.file.impl", file_system)
    conf.setBoolean("fs.file.impl.disable.cache", True)
    return conf


def fill_log(log: Path) -> None:
    """What a Delta log folder holds: commits, checkpoints, _last_checkpoint, a writer's temporary file, Hadoop's
    hidden checksums, Delta's own checksums, a folder."""
    log.mkdir(parents=True)
    for version in range(25):
        (log / f"{version:020d}.json").write_text('{"commitInfo":{}}\n' * (version + 1))
        (log / f".{version:020d}.json.crc").write_bytes(b"crc")
    for version in (10, 20):
        (log / f"{version:020d}.checkpoint.parquet").write_bytes(b"PAR1" * version)
        (log / f"{version:020d}.crc").write_text("{}")
    (log / "_last_checkpoint").write_text('{"version":20}')
    (log / ".00000000000000000025.json.0b1c.tmp").write_text("partial")
    (log / "_commits").mkdir()


@pytest.mark.parametrize("file_system", ["org.apache.hadoop.fs.RawLocalFileSystem",
                                         "org.apache.hadoop.fs.LocalFileSystem"])
@pytest.mark.parametrize("start", ["00000000000000000000.json", "00000000000000000020.checkpoint.parquet",
                                   "00000000000000000020.json", "00000000000000000024.json",
                                   "00000000000000000025.json", "00000000000000000007", "_last_checkpoint", "0",
                                   "-"])  # "-" sorts before ".": hidden checksum files are at or after it
def test_lists_what_delta_s_own_log_store_lists(spark, tmp_path, file_system, start):
    log = tmp_path / "_delta_log"
    fill_log(log)
    conf = hadoop_conf(spark, file_system)
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"file:{log}/{start}")
    ours = statuses(jvm.lakehouse.delta.NameFilteredLocalLogStore(conf).listFrom(path, conf))
    deltas = statuses(jvm.io.delta.storage.HDFSLogStore(conf).listFrom(path, conf))
    assert ours == deltas
    names = [Path(p).name for p, *_ in ours]
    assert names == sorted(n for n in names if n >= start)
    hidden_crc_listed = any(n.startswith(".") and n.endswith(".crc") for n in names)
    assert hidden_crc_listed == (file_system.endswith("RawLocalFileSystem") and start < ".")


def test_a_missing_log_folder_is_not_found_as_delta_expects(spark, tmp_path):
    from py4j.protocol import Py4JJavaError

    conf = hadoop_conf(spark, "org.apache.hadoop.fs.RawLocalFileSystem")
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(f"file:{tmp_path}/nothing/_delta_log/00000000000000000000.json")
    with pytest.raises(Py4JJavaError) as raised:
        jvm.lakehouse.delta.NameFilteredLocalLogStore(conf).listFrom(path, conf)
    assert raised.value.java_exception.getClass().getName() == "java.io.FileNotFoundException"
    assert f"No such file or directory: file:{tmp_path}/nothing/_delta_log" in str(raised.value.java_exception)


def test_the_jobs_sessions_use_it_for_local_tables(spark, tmp_path):
    """make setup built the jar, the session named it to Delta, and a table written, checkpointed and read through
    it holds what was written, at every version."""
    from pyspark.sql import functions as F

    assert spark.conf.get(LOG_STORE_CONF_KEY) == LOG_STORE_CLASS
    table = str(tmp_path / "t")
    for n in range(12):  # a checkpoint at version 10 (Delta's default interval)
        spark.range(n * 10, n * 10 + 10).write.format("delta").mode("append").save(table)
    jvm = spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table)
    store = delta_log.store().getDelegate(jvm.org.apache.hadoop.fs.Path(f"file:{table}/_delta_log"))
    assert store.logStoreImpl().getClass().getName() == LOG_STORE_CLASS
    assert (Path(table) / "_delta_log" / "00000000000000000010.checkpoint.parquet").is_file()
    assert spark.read.format("delta").load(table).agg(F.count("*"), F.sum("id")).first() == (120, sum(range(120)))
    assert spark.read.format("delta").option("versionAsOf", 3).load(table).count() == 40
