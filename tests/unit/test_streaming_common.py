"""Pure helpers shared by the Spark jobs: trigger parsing, connector jars, the per-batch progress line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from streaming_common import (cached_connector_jars, format_progress, jar_artifact, kafka_connector_coordinate,
                              parse_bool, parse_trigger, positive_int, rows_dropped_by_watermark, trigger_kwargs)


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


def test_rows_dropped_by_watermark_sums_the_state_operators() -> None:
    progress = {"stateOperators": [{"numRowsDroppedByWatermark": 2}, {"numRowsDroppedByWatermark": 3}, {}]}
    assert rows_dropped_by_watermark(progress) == 5
    assert rows_dropped_by_watermark({"stateOperators": []}) == 0
    assert rows_dropped_by_watermark({}) == 0


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
