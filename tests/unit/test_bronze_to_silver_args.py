"""Pure parts of the Bronze -> Silver job: flags, the text checks behind "exact or quarantined", the batch log line."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest

import bronze_to_silver_trades as job


def test_defaults():
    args = job.parse_args([])
    assert (args.bronze, args.out, args.quarantine, args.checkpoint) == (
        "data/bronze/crypto_trades", "data/silver/crypto_trades", "data/silver/crypto_trades_quarantine",
        "data/checkpoints/bronze_to_silver_trades")
    assert (args.trigger, args.watermark, args.available_now, args.max_files_per_trigger) == (
        "2000 milliseconds", "600000 milliseconds", False, None)


@pytest.mark.parametrize("argv", [["--watermark", "soon"], ["--trigger", "0 seconds"],
                                  ["--max-files-per-trigger", "0"]])
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
    progress = {"batchId": 3, "numInputRows": 10, "durationMs": {"triggerExecution": 250},
                "stateOperators": [{"numDroppedDuplicateRows": 2, "numRowsDroppedByWatermark": 0, "numRowsTotal": 8}],
                "eventTime": {"watermark": "2026-09-25T17:38:26.000Z"}}
    assert job.format_batch("silver", progress) == (
        "silver batch=3 bronze_rows=10 duplicates_dropped=2 late_dropped=0 state_rows=8 duration_ms=250 "
        "watermark=2026-09-25T17:38:26.000Z")
    assert job.format_batch("silver", {"batchId": 4, "numInputRows": 0}) is None  # an empty batch says nothing
    assert job.format_batch("quarantine", {"batchId": 0, "numInputRows": 5,
                                           "observedMetrics": {"quarantine_counts": {"quarantined": 1}}}) == (
        "quarantine batch=0 bronze_rows=5 quarantined=1 duration_ms=0")
