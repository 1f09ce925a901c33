"""Pure parts of the Bronze -> Silver job: flags, the text checks behind "exact or quarantined", the batch log line."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest

from lakehouse.silver import job


def test_defaults():
    args = job.parse_args([])
    assert (args.bronze, args.out, args.quarantine, args.checkpoint) == (
        "data/bronze/crypto_trades", "data/silver/crypto_trades", "data/silver/crypto_trades_quarantine",
        "data/checkpoints/bronze_to_silver_trades")
    assert (args.trigger, args.watermark, args.available_now, args.max_files_per_trigger, args.maintenance_every) == (
        "2000 milliseconds", None, False, None, 3600.0)
    assert job.SILVER_COLUMNS == ["symbol", "price", "size", "side", "ord_type", "trade_id", "v1_ordinal", "ts_event",
                                  "ts_ingest", "source", "topic", "partition", "offset", "ts_kafka", "trade_date"]
    assert job.parse_args(["--watermark", "10 minutes"]).watermark == "600000 milliseconds"  # accepted, unused


@pytest.mark.parametrize("argv", [["--watermark", "soon"], ["--trigger", "0 seconds"],
                                  ["--max-files-per-trigger", "0"], ["--maintenance-every", "0 seconds"]])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        job.parse_args(argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("text, fits", [
    ("83744.3", True), ("0.00044780", True), ("0.12345678901234567", True), ("1.123456789012345678", True),
    ("1.1234567890123456780000", True),  # digits past the 18th are zeros: exact
    ("1.1234567890123456789", False),  # Spark's cast would round this to ...679
    ("99999999999999999999.999999999999999999", True), ("000099999999999999999999", True),
    ("100000000000000000000", False), ("0.0000000000000000001", False), ("0", True),
])
def test_decimal_fit_matches_python_decimal(text, fits):
    """The regex agrees with exact arithmetic: the text fits iff quantizing to 18 places does not change it and the
    integer part has at most 20 digits."""
    assert re.match(job.DECIMAL_RE, text)
    assert bool(re.match(job.DECIMAL_FITS_RE, text)) is fits
    with localcontext() as ctx:
        ctx.prec = 80
        value = Decimal(text)
        exact = value == value.quantize(Decimal("1e-18")) if value.adjusted() < 20 else False
    assert exact is fits


@pytest.mark.parametrize("text", ["abc", "-5", "+5", "1e-5", " 1.0", "1.", ".5", "1,5", ""])
def test_not_a_decimal(text):
    assert not re.match(job.DECIMAL_RE, text)


@pytest.mark.parametrize("text, ok", [
    ("2026-09-25T17:48:26.844359Z", True), ("2026-09-25T17:48:26Z", True), ("2026-09-25T17:48:26.8+02:00", True),
    ("2026-09-25T17:48:26.8443591Z", False), ("2026-09-25 17:48:26.844359", False), ("2026-09-25T17:48:26", False),
])
def test_timestamp_text(text, ok):
    assert bool(re.match(job.TIMESTAMP_RE, text)) is ok


def test_format_batch_line():
    counts = {"bronze_rows": 10, "inserted": 6, "duplicates": 3, "quarantined": 1}
    assert job.format_batch(3, counts, 0.25) == (
        "silver batch=3 bronze_rows=10 inserted=6 duplicates=3 quarantined=1 duration_ms=250")


def test_merge_pruning_sql():
    """The target-side predicates that keep a MERGE's cost to the batch: dates as partitions, per symbol a range."""
    v2 = [("XBT/USDT", 5, 9, ["2026-01-02", "2026-01-01"]), ("ETH/USD", 100, 100, ["2026-01-01"])]
    assert job.id_ranges(v2) == (
        "t.trade_date IN ('2026-01-01', '2026-01-02') AND ((t.symbol = 'XBT/USDT' AND t.trade_id BETWEEN 5 AND 9) "
        "OR (t.symbol = 'ETH/USD' AND t.trade_id BETWEEN 100 AND 100))")
    v1 = [("O'NE/USD", "2026-01-01 00:00:00.000001", "2026-01-01 00:00:59", ["2026-01-01"])]
    assert job.time_ranges(v1) == (
        "t.trade_date IN ('2026-01-01') AND ((t.symbol = 'O''NE/USD' AND t.ts_event BETWEEN "
        "TIMESTAMP '2026-01-01 00:00:00.000001' AND TIMESTAMP '2026-01-01 00:00:59'))")
    assert job.offset_ranges([("t", 0, 3, 7), ("t", 2, 1, 1)]) == (
        "(t.topic = 't' AND t.partition = 0 AND t.offset BETWEEN 3 AND 7) OR "
        "(t.topic = 't' AND t.partition = 2 AND t.offset BETWEEN 1 AND 1)")
    assert job.id_ranges([]) == "FALSE AND (FALSE)" and job.offset_ranges([]) == "FALSE"


def test_merge_statements_match_a_trade_by_its_identity():
    sql = job.insert_only_merge("/lake/silver", "batch", "P", job.V2_MATCH)
    assert sql == ("MERGE INTO delta.`/lake/silver` AS t USING batch AS s ON (P) AND t.symbol = s.symbol AND "
                   "t.trade_date = s.trade_date AND t.trade_id = s.trade_id WHEN NOT MATCHED THEN INSERT *")
    for column in ("symbol", "trade_date", "ts_event", "price", "size", "side", "ord_type", "v1_ordinal"):
        assert f"t.{column} = s.{column}" in job.V1_MATCH
    assert "t.trade_id IS NULL" in job.V1_MATCH
    assert job.QUARANTINE_MATCH == "t.topic = s.topic AND t.partition = s.partition AND t.offset = s.offset"
