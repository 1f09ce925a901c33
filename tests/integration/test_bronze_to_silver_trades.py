"""Bronze -> Silver against the real broker and real Spark.

Every test lands Bronze with the Bronze job's own transform in the test session (the Bronze script itself:
test_bronze_job.py; all the scripts together: test_demo_pipeline.py and test_run_pipeline.py). One runs the Silver
script as a user would; the others run the Silver job's query in the test session (no JVM start per run). kill -9 of the running Silver (and Gold) job: test_lakehouse_kill9.py.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import run_script
from tests.integration.silver_helpers import (land_bronze, produce, quarantine_rows, run_silver, silver_args,
                                              silver_rows, trade)

# Over the default time limit (pyproject.toml): Spark's session and the Silver script's JVM start in the first test: 6 minutes on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SILVER_SCRIPT = "spark/jobs/bronze_to_silver_trades.py"
MINUTE_MS = 60_000


@pytest.mark.quick
def test_end_to_end_exact_values(bootstrap, new_topic, spark, tmp_path: Path):
    """Kafka -> Bronze -> Silver script: decimals equal the producer's text, timestamps to the microsecond,
    sides, order types and ids right for API v2 and v1 records."""
    topic = new_topic(partitions=1)
    messages = [
        trade(109116693, price="83744.3", size="0.00044780", side="buy", ord_type="limit",
              ts_event="2026-09-25T17:48:26.844359Z", ts_ingest="2026-09-25T17:48:26.901234Z"),
        trade(109116694, price="0.00001234567890123", size="12345.12345678901234567", side="sell",
              ord_type="market", ts_event="2026-09-25T23:59:59.999999Z", ts_ingest="2026-09-26T00:00:00.000001Z"),
        trade(None, symbol="ETH/USD", price="2500.10000000000000000", size="0.10000000", side="sell",
              ord_type="limit", ts_event="2026-09-26T00:00:00.000000Z", ts_ingest="2026-09-26T00:00:00.123456Z"),
        trade(None, symbol="ETH/USD", price="99999999999999999999.999999999999999999", size="1", side="buy",
              ord_type="market", ts_event="2026-09-26T00:00:00.000007Z", ts_ingest="2026-09-26T00:00:00.000008Z",
              source="ws"),
        trade(109116690, price="83740.1", size="1.5", ts_event="2026-09-25T17:48:20.000000Z", source="rest"),
    ]
    produce(bootstrap, topic, [(m["symbol"], m) for m in messages] + [("XBT/USDT", b"not json")])
    for message in messages:
        message.setdefault("source", "ws")
    bronze, base = tmp_path / "bronze", tmp_path
    land_bronze(spark, bootstrap, topic, bronze, tmp_path / "bronze_cp")
    result = run_script(SILVER_SCRIPT, "--bronze", str(bronze), "--out", str(base / "silver"),
                        "--quarantine", str(base / "quarantine"), "--checkpoint", str(base / "cp"),
                        "--available-now", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "silver batch=0 bronze_rows=6 inserted=5 duplicates=0 quarantined=1" in result.stderr

    rows = silver_rows(spark, base / "silver")
    assert len(rows) == 5
    for offset, (row, message) in enumerate(zip(rows, messages)):
        # decimal(38,18) has a fixed scale: the stored value equals the text numerically; the text's own trailing
        # zeros are not kept as a scale (0.00044780 is stored as 0.000447800000000000).
        assert row["price"] == Decimal(message["price"]) and isinstance(row["price"], Decimal)
        assert row["size"] == Decimal(message["size"])
        assert row["price"].as_tuple().exponent == -18
        assert (row["symbol"], row["side"], row["ord_type"], row["trade_id"]) == (
            message["symbol"], message["side"], message["ord_type"], message["trade_id"])
        # a record without "source" came from the WebSocket (producers before REST backfill did not send it)
        assert row["source"] == message.get("source", "ws")
        assert row["v1_ordinal"] == (1 if message["trade_id"] is None else None)
        assert (row["ts_event"], row["ts_ingest"]) == (message["ts_event"], message["ts_ingest"])
        assert (row["topic"], row["partition"], row["offset"]) == (topic, 0, offset)
        assert str(row["trade_date"]) == message["ts_event"][:10]
    quarantine = quarantine_rows(spark, base / "quarantine")
    assert [(q["offset"], q["reason"], q["value_bytes"]) for q in quarantine] == [
        (5, "not JSON (or not a JSON object)", bytearray(b"not json"))]


def test_good_and_bad_records(bootstrap, new_topic, spark, tmp_path: Path):
    """Every good record is in Silver, every bad one in quarantine with its reason and exact bytes; rows in = out."""
    topic = new_topic(partitions=1)
    good = [trade(1), trade(2, size="0.12345678901234567"), trade(None, side="sell", ord_type="market"),
            trade(3, price="12345678901234567890.123456789012345678000")]  # 21 fractional digits, 3 are zeros
    bad = [
        (b"not json", "not JSON (or not a JSON object)"),
        (b"\xff\xfe" + b'{"symbol": "XBT/USDT"}', "not valid UTF-8"),
        (b'["a list"]', "not JSON (or not a JSON object)"),
        (trade(10, price=None), "missing field price"),
        ({k: v for k, v in trade(11).items() if k != "ts_event"}, "missing field ts_event"),
        (trade(12, price="abc"), "price 'abc' is not a decimal"),
        (trade(13, price="-5"), "price '-5' is not a decimal"),
        (trade(14, size="0.1234567890123456789"), "size '0.1234567890123456789' does not fit decimal(38,18)"),
        (trade(15, size="123456789012345678901"), "size '123456789012345678901' does not fit decimal(38,18)"),
        (trade(16, side="hold"), "side 'hold' is not buy or sell"),
        (trade(17, ord_type="stop"), "ord_type 'stop' is not limit or market"),
        (trade("x"), "trade_id 'x' is not a non-negative integer"),
        (trade(19, ts_event="2026-09-25T17:48:26.8443591Z"),
         "ts_event '2026-09-25T17:48:26.8443591Z' is not an ISO-8601 timestamp with a zone and at most 6 "
         "fractional digits"),
        (trade(20, ts_ingest="2026-02-30T17:48:26.844359Z"),
         "ts_ingest '2026-02-30T17:48:26.844359Z' is not an ISO-8601 timestamp with a zone and at most 6 "
         "fractional digits"),
        (trade(21, source="carrier pigeon"), "source 'carrier pigeon' is not ws or rest"),
    ]
    records = [(m, None) for m in good] + list(bad)
    records = [records[i] for i in (0, 4, 1, 5, 6, 2, 7, 8, 9, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18)]  # interleave
    produce(bootstrap, topic, [("XBT/USDT", message) for message, _ in records])
    land_bronze(spark, bootstrap, topic, tmp_path / "bronze", tmp_path / "bronze_cp")
    run_silver(spark, silver_args(tmp_path, tmp_path / "bronze"))

    from tests.integration.silver_helpers import encode
    expected_good = {o: m for o, (m, reason) in enumerate(records) if reason is None}
    expected_bad = {o: (encode(m), reason) for o, (m, reason) in enumerate(records) if reason is not None}
    silver = silver_rows(spark, tmp_path / "silver")
    quarantine = quarantine_rows(spark, tmp_path / "silver_quarantine")
    assert len(silver) + len(quarantine) == len(records) == spark.read.parquet(str(tmp_path / "bronze")).count()
    assert [r["v1_ordinal"] for r in silver if r["trade_id"] is None] == [1]
    assert {r["offset"]: (r["trade_id"], r["price"], r["size"]) for r in silver} == {
        o: (m["trade_id"], Decimal(m["price"]), Decimal(m["size"])) for o, m in expected_good.items()}
    assert {q["offset"]: (bytes(q["value_bytes"]), q["reason"]) for q in quarantine} == expected_bad
    assert all(q["key_text"] == "XBT/USDT" and q["topic"] == topic and q["quarantined_at"] for q in quarantine)


def test_each_trade_once_however_late_its_copy_arrives(bootstrap, new_topic, spark, tmp_path: Path):
    """Copies of v2 trades arriving in the same batch, minutes, hours and days later (Kafka CreateTime) are each
    stored once: the first copy by Kafka position stays. The same trade_id on another symbol is another trade. v1
    trades (no id): two identical ones received in one frame (same ts_ingest) are two trades (v1_ordinal 1 and 2),
    also when a third identical one of the same frame arrives in a later batch (3); replayed later (another frame)
    they are recognised and not inserted again; a v1 trade differing in one value is another trade."""
    topic = new_topic(partitions=2)
    t0 = (int(time.time() * 1000) // MINUTE_MS - 5 * 24 * 60) * MINUTE_MS  # five days ago
    bronze, bronze_cp = tmp_path / "bronze", tmp_path / "bronze_cp"
    args = silver_args(tmp_path, bronze)

    def phase(records, at_ms):
        produce(bootstrap, topic, records, timestamp_ms=at_ms, partition=0)
        land_bronze(spark, bootstrap, topic, bronze, bronze_cp)
        run_silver(spark, args)

    v1 = trade(None, price="1.5", ts_ingest="2026-09-25T17:48:26.901234Z")  # received in one frame ...
    v1_replayed = trade(None, price="1.5", ts_ingest="2026-09-28T09:00:00.000001Z")  # ... and that frame replayed
    v1_other = trade(None, price="1.5", size="0.00044781", ts_ingest="2026-09-28T09:00:00.000001Z")
    phase([("XBT/USDT", trade(1)), ("XBT/USDT", trade(2)), ("XBT/USDT", trade(3)), ("XBT/USDT", trade(3)),
           ("ETH/USD", trade(1, symbol="ETH/USD")), ("XBT/USDT", v1), ("XBT/USDT", v1)], t0)        # offsets 0-6
    phase([("XBT/USDT", trade(1, ts_ingest="2026-09-25T17:50:00.000000Z")),                        # 7: copy
           ("XBT/USDT", trade(4)), ("XBT/USDT", v1)], t0 + 2 * MINUTE_MS)                          # 8, 9: 3rd of frame
    phase([("XBT/USDT", trade(5)), ("XBT/USDT", trade(3))], t0 + 120 * MINUTE_MS)                  # 10, 11: copy
    phase([("XBT/USDT", trade(2)), ("XBT/USDT", v1_replayed), ("XBT/USDT", v1_replayed),           # 12-14: copies
           ("XBT/USDT", v1_replayed), ("XBT/USDT", v1_other),                                      # 15: copy, 16
           ("ETH/USD", trade(1, symbol="ETH/USD"))], t0 + 3 * 24 * 60 * MINUTE_MS)                 # 17: copy

    rows = silver_rows(spark, tmp_path / "silver")
    kept = sorted((r["symbol"], r["trade_id"] if r["trade_id"] is not None else -1, r["v1_ordinal"], r["offset"])
                  for r in rows)
    assert kept == sorted([("XBT/USDT", 1, None, 0), ("XBT/USDT", 2, None, 1), ("XBT/USDT", 3, None, 2),
                           ("ETH/USD", 1, None, 4), ("XBT/USDT", -1, 1, 5), ("XBT/USDT", -1, 2, 6),
                           ("XBT/USDT", 4, None, 8), ("XBT/USDT", -1, 3, 9), ("XBT/USDT", 5, None, 10),
                           ("XBT/USDT", -1, 1, 16)])
    assert quarantine_rows(spark, tmp_path / "silver_quarantine") == []
    # Running again over the same Bronze with a NEW checkpoint (a rebuild into the same tables, in one batch) inserts
    # nothing; a rebuild into new tables, in one batch, holds the same trades as the incremental run
    run_silver(spark, silver_args(tmp_path, bronze, checkpoint=tmp_path / "second_checkpoint"))
    assert silver_rows(spark, tmp_path / "silver") == rows
    run_silver(spark, silver_args(tmp_path, bronze, name="rebuild"))
    assert silver_rows(spark, tmp_path / "rebuild") == rows


def test_inserted_counts_the_merge_when_auto_compaction_commits_after_it(spark, tmp_path: Path):
    """Auto compaction commits right after the MERGE that filled a partition with small files, and the session's last
    commit version is then the compaction's: the count must still be the MERGE's own (it once read 0)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from lakehouse.lake.delta import TABLE_PROPERTIES
    from lakehouse.silver.job import insert_new

    table = str(tmp_path / "table")
    writer = spark.range(1).selectExpr("id", "'x' AS v").write.format("delta")
    for name, value in TABLE_PROPERTIES.items():
        writer = writer.option(name, value)
    writer.save(table)
    setting = "spark.databricks.delta.autoCompact.minNumFiles"
    before = spark.conf.get(setting)
    spark.conf.set(setting, "2")
    try:
        results = [insert_new(spark, spark.range(first, first + 3 + first // 10).selectExpr("id", "'x' AS v"), table,
                              F.col("t.id") == F.col("s.id")) for first in (10, 20, 30)]
    finally:
        spark.conf.set(setting, before)
    operations = {row["version"]: row["operation"] for row in DeltaTable.forPath(spark, table).history().collect()}
    assert [count for count, _ in results] == [4, 5, 6]
    assert any(operations[version] == "OPTIMIZE" for _, version in results)  # compaction did commit last
    assert spark.read.format("delta").load(table).count() == 1 + 4 + 5 + 6
