"""Pure helpers shared by the Spark jobs: trigger parsing, connector jars, the per-batch progress line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streaming_common import (cached_connector_jars, delta_coordinate, extra_jars, format_progress, jar_artifact,
                              kafka_connector_coordinate, local_folder, parse_bool, parse_trigger, positive_int,
                              sink_pairing_problem, spark_start_hint, trigger_kwargs)


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
    import streaming_common

    kafka_cache, delta_cache, spark_jars = tmp_path / "kafka", tmp_path / "delta", tmp_path / "spark-jars"
    (kafka_cache / "3.5.7").mkdir(parents=True)
    spark_jars.mkdir()
    (kafka_cache / "3.5.7" / "spark-sql-kafka-0-10_2.12-3.5.7.jar").touch()
    (spark_jars / "antlr4-runtime-4.9.3.jar").touch()
    monkeypatch.setattr(streaming_common, "CONNECTOR_CACHE", kafka_cache)
    monkeypatch.setattr(streaming_common, "DELTA_CACHE", delta_cache)
    monkeypatch.setattr(streaming_common, "installed_delta_version", lambda: "3.3.2")
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
