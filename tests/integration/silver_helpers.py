"""Helpers for the Bronze -> Silver tests: produce exact records, land Bronze with the Bronze job's own transform,
run the Silver job's query in the test's SparkSession (no JVM start per run), read the Delta tables exactly."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from lakehouse.bronze import job as bronze_job
from lakehouse.silver import job as silver_job
from lakehouse.silver.parse import QUARANTINE_COLUMNS, SILVER_COLUMNS
from lakehouse.spark.lifecycle import StopRequest, run_queries

TS_TEXT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"  # session time zone is UTC
LAND_BRONZE_TIMEOUT_S = 240


def trade(trade_id: int | None, *, symbol: str = "XBT/USDT", price: str = "83744.3", size: str = "0.00044780",
          side: str = "buy", ord_type: str = "limit", ts_event: str = "2026-09-25T17:48:26.844359Z",
          ts_ingest: str = "2026-09-25T17:48:26.901234Z", **overrides: Any) -> dict[str, Any]:
    """A producer-shaped message (price/size as decimal text)."""
    message = {"symbol": symbol, "price": price, "size": size, "side": side, "ord_type": ord_type,
               "trade_id": trade_id, "ts_event": ts_event, "ts_ingest": ts_ingest,
               "api": "v2" if trade_id is not None else "v1", "pair_native": symbol}
    message.update(overrides)
    return message


def encode(message: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    return json.dumps(message).encode()


def produce(bootstrap: str, topic: str, records: list[tuple[str, Any]], timestamp_ms: int | None = None,
            partition: int | None = None) -> None:
    """Produce (key, message) records in order, all with the same CreateTime when timestamp_ms is given."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, message in records:
        kwargs: dict[str, Any] = {}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, key=key.encode(), value=encode(message), **kwargs)
    assert producer.flush(30) == 0, "undelivered messages"


def land_bronze(spark, bootstrap: str, topic: str, out: Path, checkpoint: Path,
                max_offsets_per_trigger: int | None = None) -> None:
    """Kafka -> Bronze with the Bronze job's own options and projection, available-now, in this session."""
    args = bronze_job.parse_args(["--bootstrap", bootstrap, "--topic", topic, "--out", str(out),
                                  "--checkpoint", str(checkpoint), "--available-now",
                                  *(["--maxOffsetsPerTrigger", str(max_offsets_per_trigger)]
                                    if max_offsets_per_trigger else [])])
    kafka_df = spark.readStream.format("kafka").options(**bronze_job.kafka_source_options(args, {})).load()
    query = (bronze_job.to_bronze(kafka_df).writeStream.format("parquet").option("path", str(out))
             .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
    finished = query.awaitTermination(LAND_BRONZE_TIMEOUT_S)  # every wait has a bound: a hung query fails here
    if not finished:
        query.stop()
    assert finished, f"Kafka -> Bronze did not finish within {LAND_BRONZE_TIMEOUT_S} s"
    assert query.exception() is None


def silver_args(base: Path, bronze: Path, *extra: str, name: str = "silver",
                checkpoint: Path | None = None) -> argparse.Namespace:
    """The Silver job's flags for tables base/<name> and base/<name>_quarantine (checkpoint base/<name>_checkpoint
    unless given), available-now."""
    return silver_job.parse_args(["--bronze", str(bronze), "--out", str(base / name),
                                  "--quarantine", str(base / f"{name}_quarantine"),
                                  "--checkpoint", str(checkpoint or base / f"{name}_checkpoint"), "--available-now",
                                  *extra])


def run_silver(spark, args: argparse.Namespace) -> None:
    """The Silver job's query, available-now, in this session."""
    code = run_queries({"silver": silver_job.start_query(spark, args)}, StopRequest())
    assert code == 0


def silver_rows(spark, path: Path) -> list[dict[str, Any]]:
    """Silver as dicts, timestamps as exact UTC text (microseconds), sorted by Kafka coordinates."""
    from pyspark.sql import functions as F

    df = spark.read.format("delta").load(str(path))
    assert df.columns == SILVER_COLUMNS
    df = df.select(*[F.date_format(c, TS_TEXT).alias(c) if c.startswith("ts_") else F.col(c) for c in df.columns])
    return [r.asDict() for r in df.orderBy("topic", "partition", "offset").collect()]


def quarantine_rows(spark, path: Path) -> list[dict[str, Any]]:
    """Quarantine as dicts (value_bytes: the record's exact bytes), sorted by Kafka coordinates."""
    df = spark.read.format("delta").load(str(path))
    assert df.columns == QUARANTINE_COLUMNS
    return [r.asDict() for r in df.orderBy("topic", "partition", "offset").collect()]
