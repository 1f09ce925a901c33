"""Pure helpers shared by the Spark jobs: trigger parsing, connector jars, the per-batch progress line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lakehouse.spark.flags import parse_bool, parse_trigger, positive_int, trigger_kwargs
from lakehouse.spark.jars import (cached_connector_jars, delta_coordinate, extra_jars, jar_artifact,
                                  kafka_connector_coordinate, log_store_conf, sink_files_source_problem)
from lakehouse.spark.progress import format_progress, spark_start_hint
from lakehouse.spark.session import chosen_master, is_local_master, master_conf, master_host, zip_package
from lakehouse.spark.sinks import local_folder, sink_pairing_problem


@pytest.mark.parametrize("text, expected", [
    ("2 seconds", "2000 milliseconds"),
    ("500 milliseconds", "500 milliseconds"),
    ("1 minute", "60000 milliseconds"),
    ("0.5 seconds", "500 milliseconds"),
    ("10s", "10000 milliseconds"),
    ("1 hour", "3600000 milliseconds"),
])
def test_parse_trigger_accepts_intervals(text: str, expected: str) -> None:
    assert parse_trigger(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "2", "seconds", "-1 seconds", "0 seconds", "0.0001 seconds", "2 parsecs"])
def test_parse_trigger_rejects_non_intervals(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_trigger(text)


def test_trigger_kwargs() -> None:
    assert trigger_kwargs("2000 milliseconds", available_now=False) == {"processingTime": "2000 milliseconds"}
    assert trigger_kwargs("2000 milliseconds", available_now=True) == {"availableNow": True}


def test_connector_coordinate_follows_the_installed_spark() -> None:
    assert kafka_connector_coordinate("3.5.1") == "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1"


def test_delta_coordinate_follows_the_installed_delta_spark() -> None:
    assert delta_coordinate("3.3.2") == "io.delta:delta-spark_2.12:3.3.2"


def test_extra_jars_uses_the_caches_and_falls_back_to_packages(tmp_path: Path, monkeypatch) -> None:
    import lakehouse.spark.jars as jars_module

    kafka_cache, delta_cache, spark_jars = tmp_path / "kafka", tmp_path / "delta", tmp_path / "spark-jars"
    (kafka_cache / "3.5.7").mkdir(parents=True)
    spark_jars.mkdir()
    (kafka_cache / "3.5.7" / "spark-sql-kafka-0-10_2.12-3.5.7.jar").touch()
    (spark_jars / "antlr4-runtime-4.9.3.jar").touch()
    monkeypatch.setattr(jars_module, "CONNECTOR_CACHE", kafka_cache)
    monkeypatch.setattr(jars_module, "DELTA_CACHE", delta_cache)
    log_store_cache, sink_files_cache = tmp_path / "logstore", tmp_path / "sink-files"
    monkeypatch.setattr(jars_module, "LOG_STORE_CACHE", log_store_cache)
    monkeypatch.setattr(jars_module, "SINK_FILES_CACHE", sink_files_cache)
    monkeypatch.setattr(jars_module, "installed_delta_version", lambda: "3.3.2")
    # Delta not fetched yet: its coordinate goes to spark.jars.packages, the cached connector to spark.jars
    jars, packages = extra_jars(kafka=True, delta=True, spark_version="3.5.7", spark_jars_dir=spark_jars)
    assert [Path(j).name for j in jars] == ["spark-sql-kafka-0-10_2.12-3.5.7.jar"]
    assert packages == ["io.delta:delta-spark_2.12:3.3.2"]
    (delta_cache / "3.3.2").mkdir(parents=True)
    for name in ["delta-spark_2.12-3.3.2.jar", "delta-storage-3.3.2.jar", "antlr4-runtime-4.9.3.jar"]:
        (delta_cache / "3.3.2" / name).touch()
    jars, packages = extra_jars(kafka=False, delta=True, spark_version="3.5.7", spark_jars_dir=spark_jars)
    assert [Path(j).name for j in jars] == ["delta-spark_2.12-3.3.2.jar", "delta-storage-3.3.2.jar"]
    assert packages == []
    assert extra_jars(kafka=False, delta=False, spark_version="3.5.7", spark_jars_dir=spark_jars) == ([], [])
    # make setup's log store for local tables, built for this Delta: handed over with Delta's jars, never without them
    (log_store_cache / "3.3.2").mkdir(parents=True)
    (log_store_cache / "3.3.2" / "lakehouse-delta-logstore.jar").touch()
    jars, _ = extra_jars(kafka=False, delta=True, spark_version="3.5.7", spark_jars_dir=spark_jars)
    assert [Path(j).name for j in jars][-1] == "lakehouse-delta-logstore.jar"
    assert log_store_conf(jars) == {"spark.delta.logStore.file.impl": "lakehouse.delta.NameFilteredLocalLogStore"}
    assert extra_jars(kafka=True, delta=False, spark_version="3.5.7", spark_jars_dir=spark_jars)[0] == [
        str(kafka_cache / "3.5.7" / "spark-sql-kafka-0-10_2.12-3.5.7.jar")]
    assert log_store_conf([str(kafka_cache / "3.5.7" / "spark-sql-kafka-0-10_2.12-3.5.7.jar")]) == {}
    # make setup's Bronze reader (Silver's source), built for this Spark: handed to every session once it is there
    assert "run `make setup`" in sink_files_source_problem(",".join(jars))
    (sink_files_cache / "3.5.7").mkdir(parents=True)
    (sink_files_cache / "3.5.7" / "lakehouse-sink-files.jar").touch()
    jars, _ = extra_jars(kafka=False, delta=False, spark_version="3.5.7", spark_jars_dir=spark_jars)
    assert jars == [str(sink_files_cache / "3.5.7" / "lakehouse-sink-files.jar")]
    assert sink_files_source_problem(",".join(jars)) is None
    assert extra_jars(kafka=False, delta=False, spark_version="3.5.1", spark_jars_dir=spark_jars) == ([], [])


@pytest.mark.parametrize("name, artifact", [
    ("kafka-clients-3.4.1.jar", "kafka-clients"),
    ("spark-sql-kafka-0-10_2.12-3.5.7.jar", "spark-sql-kafka-0-10_2.12"),
    ("zstd-jni-1.5.5-4.jar", "zstd-jni"),
    ("commons-pool2-2.11.1.jar", "commons-pool2"),
])
def test_jar_artifact(name: str, artifact: str) -> None:
    assert jar_artifact(name) == artifact


def test_cached_connector_jars_skips_what_spark_ships(tmp_path: Path) -> None:
    cache, spark_jars = tmp_path / "cache", tmp_path / "spark-jars"
    (cache / "3.5.7").mkdir(parents=True)
    spark_jars.mkdir()
    for name in ["spark-sql-kafka-0-10_2.12-3.5.7.jar", "kafka-clients-3.4.1.jar", "slf4j-api-1.7.36.jar"]:
        (cache / "3.5.7" / name).touch()
    (spark_jars / "slf4j-api-2.0.7.jar").touch()  # Spark's own slf4j wins over Maven's older pick
    jars = cached_connector_jars(cache, "3.5.7", spark_jars)
    assert [Path(j).name for j in jars] == ["kafka-clients-3.4.1.jar", "spark-sql-kafka-0-10_2.12-3.5.7.jar"]
    assert cached_connector_jars(cache, "3.5.1", spark_jars) == []


def test_format_progress_one_line_with_offsets_per_partition() -> None:
    progress = {
        "batchId": 7, "numInputRows": 1200, "processedRowsPerSecond": 600.4,
        "durationMs": {"triggerExecution": 2000},
        "sources": [{"endOffset": {"crypto.trades": {"10": 5, "2": 40, "0": 12}},
                     "metrics": {"maxOffsetsBehindLatest": "3"}}],
    }
    assert format_progress(progress) == (
        "batch=7 rows=1200 rows/s=600 duration_ms=2000 end[crypto.trades]=0:12,2:40,10:5 max_offsets_behind=3")


@pytest.mark.parametrize("text, value", [("1", 1), ("5000", 5000)])
def test_positive_int(text: str, value: int) -> None:
    assert positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "many"])
def test_positive_int_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="whole number >= 1"):
        positive_int(text)


def test_parse_bool() -> None:
    assert [parse_bool(t) for t in ["true", "False", "1", "no"]] == [True, False, True, False]
    with pytest.raises(argparse.ArgumentTypeError, match="use true or false"):
        parse_bool("maybe")


def make_log(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("v1\n")


def test_sink_pairing_accepts_a_fresh_start_and_a_matching_pair(tmp_path: Path) -> None:
    out, ck = tmp_path / "out", tmp_path / "ck"
    assert sink_pairing_problem(str(out), str(ck)) is None  # both new
    make_log(out / "_spark_metadata", "0", "1")
    make_log(ck / "offsets", "0", "1", "2")
    make_log(ck / "commits", "0", "1")
    assert sink_pairing_problem(str(out), str(ck)) is None  # batch 2 planned, not committed: redone on restart


def test_sink_pairing_accepts_a_crash_before_the_first_commit(tmp_path: Path) -> None:
    out, ck = tmp_path / "out", tmp_path / "ck"
    make_log(out / "_spark_metadata", "0")  # the sink committed batch 0 ...
    make_log(ck / "offsets", "0")  # ... and the process died before the checkpoint's commit
    assert sink_pairing_problem(str(out), str(ck)) is None


def test_sink_pairing_refuses_an_old_output_with_a_new_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_log(out / "_spark_metadata", "0", "1", "9.compact", "10")
    problem = sink_pairing_problem(str(out), str(tmp_path / "new-ck"))
    assert problem is not None and "already holds batches 0..10 written with another checkpoint" in problem


def test_sink_pairing_refuses_a_checkpoint_whose_output_is_gone(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    make_log(ck / "offsets", "0", "1")
    make_log(ck / "commits", "0", "1")
    problem = sink_pairing_problem(str(tmp_path / "deleted-out"), str(ck))
    assert problem is not None and "has committed batches 0..1" in problem


def test_sink_pairing_checks_local_folders_only(tmp_path: Path) -> None:
    assert local_folder("s3a://lake/bronze") is None and local_folder("hdfs://nn/x") is None
    assert local_folder("file:///data/bronze") == Path("/data/bronze")
    assert local_folder("data/bronze") == Path("data/bronze")
    assert sink_pairing_problem("s3a://lake/bronze", str(tmp_path)) is None


def test_spark_start_hint_names_the_likely_causes() -> None:
    hint = spark_start_hint(True, RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited\nmore"))
    assert hint.startswith("Spark could not start ([JAVA_GATEWAY_EXITED] Java gateway process exited).")
    assert "run `make setup`" in hint and "Java 17" in hint
    assert "make setup" not in spark_start_hint(False, RuntimeError("x"))


# ---------------------------------------------------------------------------------------------------------------------
# --master: which master, and what a cluster master adds to the session


def test_chosen_master_is_the_flag_then_spark_master_then_local() -> None:
    assert chosen_master("spark://h:7077", {"SPARK_MASTER": "local[2]"}) == "spark://h:7077"
    assert chosen_master(None, {"SPARK_MASTER": "spark://127.0.0.1:7077"}) == "spark://127.0.0.1:7077"
    assert chosen_master(None, {}) == "local[*]"
    assert chosen_master("", {"SPARK_MASTER": ""}) == "local[*]"


@pytest.mark.parametrize("master, local", [
    ("local", True), ("local[*]", True), ("local[2]", True), ("local[2,3]", True), (" local[4] ", True),
    ("spark://127.0.0.1:7077", False), ("yarn", False), ("k8s://https://k8s:6443", False), ("localhost", False),
])
def test_is_local_master(master: str, local: bool) -> None:
    assert is_local_master(master) is local


@pytest.mark.parametrize("master, host", [
    ("spark://127.0.0.1:7077", "127.0.0.1"), ("spark://localhost:7077", "localhost"),
    ("spark://m1:7077,m2:7077", "m1"), ("spark://[::1]:7077", "::1"), ("yarn", None), ("local[*]", None),
])
def test_master_host(master: str, host: str | None) -> None:
    assert master_host(master) == host


JARS = ["/c/spark-sql-kafka-0-10_2.12-3.5.7.jar", "/c/delta-spark_2.12-3.2.1.jar"]


def test_a_local_master_gets_only_the_master_and_the_jars() -> None:
    assert master_conf("local[*]", JARS, ["/tmp/x/lakehouse.zip"], python="/venv/bin/python") == {
        "spark.master": "local[*]", "spark.jars": ",".join(JARS)}
    assert master_conf("local[2]", [], [], python="/venv/bin/python") == {"spark.master": "local[2]"}


def test_a_loopback_cluster_master_ships_code_jars_python_and_binds_the_driver_to_loopback() -> None:
    assert master_conf("spark://127.0.0.1:7077", JARS, ["/tmp/x/lakehouse.zip"], python="/venv/bin/python") == {
        "spark.master": "spark://127.0.0.1:7077",
        "spark.jars": ",".join(JARS),  # the same local paths: the driver serves them, the executors fetch them
        "spark.submit.pyFiles": "/tmp/x/lakehouse.zip",
        "spark.pyspark.python": "/venv/bin/python",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }


@pytest.mark.parametrize("master", ["spark://localhost:7077", "spark://[::1]:7077"])
def test_any_loopback_master_gets_a_loopback_driver(master: str) -> None:
    conf = master_conf(master, [], ["/z.zip"], python="python3")
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("127.0.0.1", "127.0.0.1")


def test_a_remote_master_leaves_the_driver_address_to_spark() -> None:
    conf = master_conf("spark://spark-master.internal:7077", JARS, ["/z.zip"], python="python3")
    assert "spark.driver.host" not in conf and "spark.driver.bindAddress" not in conf
    assert (conf["spark.submit.pyFiles"], conf["spark.jars"]) == ("/z.zip", ",".join(JARS))
    assert master_conf("yarn", [], [], python="python3") == {"spark.master": "yarn", "spark.pyspark.python": "python3"}


def test_zip_package_holds_the_whole_package_as_it_is_imported(tmp_path: Path) -> None:
    """What a cluster's executors get (spark.submit.pyFiles): the lakehouse package, importable from the zip alone."""
    import os
    import subprocess
    import sys
    import zipfile

    archive = zip_package(tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert archive == tmp_path / "lakehouse.zip"
    assert {"lakehouse/__init__.py", "lakehouse/spark/session.py", "lakehouse/pipeline/all_layers.py",
            "lakehouse/bronze/job.py", "lakehouse/silver/job.py", "lakehouse/gold/job.py", "lakehouse/lake/delta.py",
            "lakehouse/gold/recompute.py"} <= set(names)
    assert names == sorted(names) and all(n.startswith("lakehouse/") and n.endswith(".py") for n in names)
    # -S: no site-packages, so not the installed package: only the zip can provide it
    found = subprocess.run([sys.executable, "-S", "-c", "import lakehouse.spark.session as s; print(s.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(archive)}, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(archive / "lakehouse" / "spark" / "session.py"), found.stderr


@pytest.mark.parametrize("module", ["lakehouse.pipeline.all_layers", "lakehouse.bronze.job", "lakehouse.silver.job",
                                    "lakehouse.gold.job", "lakehouse.gold.recompute", "lakehouse.pipeline.optimize",
                                    "lakehouse.bronze.audit"])
def test_every_spark_job_takes_master(module: str, monkeypatch) -> None:
    import importlib

    monkeypatch.delenv("SPARK_MASTER", raising=False)
    parse_args = importlib.import_module(module).parse_args
    recompute = module == "lakehouse.gold.recompute"
    required = ["--from", "2026-01-01T00:00", "--to", "2026-01-01T01:00"] if recompute else []
    assert parse_args([*required, "--master", "spark://127.0.0.1:7077"]).master == "spark://127.0.0.1:7077"
    assert parse_args(required).master is None  # then SPARK_MASTER, else local[*] (chosen_master)


class StuckQuery:
    """A streaming query as run_queries sees it; `stuck`: stop() times out and it stays active (a fetch from a broker
    that is gone)."""

    def __init__(self, name: str, stuck: bool = False) -> None:
        self.name, self.stuck, self.isActive = name, stuck, True
        self.status, self.recentProgress = {"isTriggerActive": False}, []

    def awaitTermination(self, timeout: float) -> bool:
        return not self.isActive

    def stop(self) -> None:
        if self.stuck:
            raise RuntimeError("java.util.concurrent.TimeoutException: Stream Execution thread did not stop")
        self.isActive = False

    def exception(self) -> None:
        return None


def test_a_layer_that_does_not_stop_in_time_is_not_drained_and_a_drain_that_cannot_start_is_reported(caplog):
    """Ctrl-C with the broker gone: Bronze's stop times out, so its drain is skipped (starting it again would clash
    with the query still running); Silver's drain cannot start. Both are warnings and exit 1, never a traceback."""
    import logging

    from lakehouse.spark.lifecycle import StopRequest, run_queries

    stop = StopRequest()
    stop.event.set()
    stop.signal_name = "SIGINT"
    started = []

    def cannot_start():
        started.append("silver")
        raise RuntimeError("org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node")

    queries = {"bronze": StuckQuery("bronze", stuck=True), "silver": StuckQuery("silver")}
    with caplog.at_level(logging.WARNING, logger="spark_jobs"):
        code = run_queries(queries, stop, drain={"bronze": lambda: started.append("bronze"), "silver": cannot_start},
                           drain_timeout=1)
    assert code == 1 and started == ["silver"]
    assert "bronze did not stop in time, so it does not land what its input holds now" in caplog.text
    assert ("silver could not start to land what its input holds (org.apache.kafka.common.errors.TimeoutException: "
            "Timed out waiting for a node)") in caplog.text
