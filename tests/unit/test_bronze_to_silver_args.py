"""Pure parts of the Bronze -> Silver job: flags, the text checks behind "exact or quarantined", the batch log line.
(The checks themselves on Spark, and the MERGEs' conditions: test_silver_parse.py.)"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest

from lakehouse.silver import job, parse


def test_defaults():
    args = job.parse_args([])
    assert (args.bronze, args.out, args.quarantine, args.checkpoint) == (
        "data/bronze/crypto_trades", "data/silver/crypto_trades", "data/silver/crypto_trades_quarantine",
        "data/checkpoints/bronze_to_silver_trades")
    assert (args.trigger, args.watermark, args.available_now, args.max_files_per_trigger, args.maintenance_every,
            args.future_tolerance) == ("2000 milliseconds", None, False, 4, 3600.0, 3600)
    assert job.parse_args(["--future-tolerance", "2 hours"]).future_tolerance == 7200
    assert parse.SILVER_COLUMNS == ["symbol", "price", "size", "side", "ord_type", "trade_id", "v1_ordinal", "ts_event",
                                  "ts_ingest", "source", "topic", "partition", "offset", "ts_kafka", "trade_date"]
    assert job.parse_args(["--watermark", "10 minutes"]).watermark == "600000 milliseconds"  # accepted, unused


@pytest.mark.parametrize("argv", [["--watermark", "soon"], ["--trigger", "0 seconds"],
                                  ["--max-files-per-trigger", "0"], ["--maintenance-every", "0 seconds"],
                                  ["--future-tolerance", "soon"], ["--future-tolerance", "1500 milliseconds"]])
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
    assert re.match(parse.DECIMAL_RE, text)
    assert bool(re.match(parse.DECIMAL_FITS_RE, text)) is fits
    with localcontext() as ctx:
        ctx.prec = 80
        value = Decimal(text)
        exact = value == value.quantize(Decimal("1e-18")) if value.adjusted() < 20 else False
    assert exact is fits


@pytest.mark.parametrize("text", ["abc", "-5", "+5", "1e-5", " 1.0", "1.", ".5", "1,5", ""])
def test_not_a_decimal(text):
    assert not re.match(parse.DECIMAL_RE, text)


@pytest.mark.parametrize("text, ok", [
    ("2026-09-25T17:48:26.844359Z", True), ("2026-09-25T17:48:26Z", True), ("2026-09-25T17:48:26.8+02:00", True),
    ("2026-09-25T17:48:26.8443591Z", False), ("2026-09-25 17:48:26.844359", False), ("2026-09-25T17:48:26", False),
])
def test_timestamp_text(text, ok):
    assert bool(re.match(parse.TIMESTAMP_RE, text)) is ok


def test_format_batch_line():
    counts = {"bronze_rows": 10, "inserted": 6, "duplicates": 3, "quarantined": 1}
    assert job.format_batch(3, counts, 0.25) == (
        "silver batch=3 bronze_rows=10 inserted=6 duplicates=3 quarantined=1 duration_ms=250")
