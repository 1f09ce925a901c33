"""Silver's checks on a local Spark session (lakehouse.silver.parse, the code the Silver job runs): a JSON number's
exact digits read from the record's text, never rounded; a field given twice; implausibly future times; the
quarantine's bytes and text; the MERGEs' pruning conditions with symbols that would break SQL text."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from lakehouse.gold.bars import to_micros
from lakehouse.silver.parse import (BRONZE_SCHEMA, id_ranges, offset_ranges, parse_bronze, time_ranges,
                                    to_quarantine, to_silver_rows)

KAFKA_TIME = datetime(2026, 1, 1, 0, 0, 2)  # naive: the session time zone is UTC


def record(**fields) -> str:
    base = {"symbol": "XBT/USDT", "price": "83744.3", "size": "0.5", "side": "buy", "ord_type": "limit",
            "trade_id": 1, "ts_event": "2026-01-01T00:00:00.000001Z", "ts_ingest": "2026-01-01T00:00:01Z"}
    base.update(fields)
    return json.dumps(base)


def with_number(field: str, number_text: str, **fields) -> str:
    """A record whose `field` is the JSON number written exactly as number_text (json.dumps would round a float)."""
    return record(**{field: "@@"}, **fields).replace('"@@"', number_text)


def parse(spark, values: list[str | bytes], tolerance_s: int = 3600, kafka_time=KAFKA_TIME):
    rows = [("t", 0, i, kafka_time, 0, "k", v if isinstance(v, str) else v.decode("latin-1"))
            for i, v in enumerate(values)]
    return parse_bronze(spark.createDataFrame(rows, BRONZE_SCHEMA), tolerance_s)


def outcome(spark, values, **kwargs) -> list[tuple]:
    """(price, size, reason) per record, in order: the Silver values (Decimal) or the quarantine reason."""
    parsed = parse(spark, values, **kwargs).cache()
    good = {r.offset: (r.price, r.size) for r in to_silver_rows(parsed).collect()}
    bad = {r.offset: r.reason for r in parsed.where("reason IS NOT NULL").collect()}
    return [(*good[i], None) if i in good else (None, None, bad[i]) for i in range(len(values))]


@pytest.mark.parametrize("number, expected", [
    ("83744.30", Decimal("83744.3")),
    ("0.123456789012345678", Decimal("0.123456789012345678")),  # 18 places: exact (a double holds ~17 digits)
    ("1.5e-7", Decimal("0.00000015")), ("1.25E+3", Decimal("1250")), ("12e-18", Decimal("0.000000000000000012")),
    ("99999999999999999999", Decimal("99999999999999999999")), ("0", Decimal(0)),
])
def test_a_json_number_is_taken_exactly_from_its_text(local_spark, number, expected):
    [(price, _, reason)] = outcome(local_spark, [with_number("price", number)])
    assert (price, reason) == (expected, None)


@pytest.mark.parametrize("number, reason", [
    ("0.12345678901234567891", "price '0.12345678901234567891' does not fit decimal(38,18)"),  # never rounded
    ("1e-19", "price '0.0000000000000000001' does not fit decimal(38,18)"),
    ("100000000000000000000", "price '100000000000000000000' does not fit decimal(38,18)"),
    ("-2.5", "price '-2.5' is not a decimal"),
    ("1e45", "price '1e45' is a JSON number with an exponent beyond 40"),
])
def test_a_json_number_that_is_not_an_exact_decimal_is_quarantined(local_spark, number, reason):
    assert outcome(local_spark, [with_number("price", number)]) == [(None, None, reason)]


def test_size_as_a_number_too(local_spark):
    assert outcome(local_spark, [with_number("size", "0.000000000000000001")]) == [
        (Decimal("83744.3"), Decimal("0.000000000000000001"), None)]


def test_ambiguous_money_fields_are_quarantined_with_the_reason(local_spark):
    twice = record().replace('"price": "83744.3"', '"price": 1.5, "price": "2"')
    escaped = record().replace('"price": "83744.3"', '"pr\\u0069ce": 1.5')
    twice_as_text = record().replace('"size": "0.5"', '"size": "0.5", "size": "0.7"')
    assert outcome(local_spark, [twice, escaped, twice_as_text]) == [
        (None, None, "price appears 2 times in the record"),
        (None, None, "price is a JSON number whose exact digits cannot be read from the record (its name is "
                     "escaped); send price as a decimal string"),
        (None, None, "size appears 2 times in the record")]


def test_a_key_inside_a_string_is_not_taken_for_the_field(local_spark):
    sneaky = with_number("price", "7.25", symbol='a","price":9')
    assert outcome(local_spark, [sneaky]) == [(Decimal("7.25"), Decimal("0.5"), None)]


def test_a_trade_dated_far_after_it_was_received_is_quarantined_and_a_late_one_kept(local_spark):
    values = [
        record(ts_event="2099-01-01T00:00:00Z"),  # after its ts_ingest by decades
        record(ts_event="2026-01-01T01:00:01Z"),  # 1 hour after ts_ingest: within the default tolerance
        record(ts_event="2026-01-01T01:00:02Z"),  # 1 hour 1 s after ts_ingest
        record(ts_event="2099-01-01T00:00:00Z", ts_ingest="2099-01-01T00:00:00Z"),  # both ahead of Kafka's time
        record(ts_event="2026-01-01T00:30:00Z", ts_ingest="2099-01-01T00:00:00Z"),  # ts_ingest wrong, ts_event fine
        record(ts_event="2001-01-01T00:00:00Z"),  # very late: kept (Gold restates its bar)
    ]
    got = outcome(local_spark, values)
    assert got[0][2] == ("ts_event '2099-01-01T00:00:00Z' is more than 3600 s after its ts_ingest "
                         "'2026-01-01T00:00:01Z'")
    assert got[1][2] is None and got[4][2] is None and got[5][2] is None
    assert got[2][2] == ("ts_event '2026-01-01T01:00:02Z' is more than 3600 s after its ts_ingest "
                         "'2026-01-01T00:00:01Z'")
    assert got[3][2] == ("ts_event '2099-01-01T00:00:00Z' is more than 3600 s after Kafka's timestamp "
                         "'2026-01-01T00:00:02.000000Z' (its ts_ingest '2099-01-01T00:00:00Z' is ahead of Kafka's "
                         "too)")
    # the tolerance is a flag: 2 hours accept the third record
    assert outcome(local_spark, [values[2]], tolerance_s=7200)[0][2] is None


def test_the_quarantine_keeps_the_bytes_and_text_only_where_it_is_utf8(local_spark):
    rows = [("t", 0, 0, KAFKA_TIME, 0, "k\u00e9", "not json"), ("t", 0, 1, KAFKA_TIME, 0, None, None)]
    frame = local_spark.createDataFrame(rows, BRONZE_SCHEMA)
    invalid = frame.selectExpr("topic", "partition", "2L AS offset", "ts_kafka", "ts_type",
                               "CAST(unhex('FF61') AS STRING) AS key", "CAST(unhex('7BFE') AS STRING) AS value_raw")
    got = {r.offset: r for r in to_quarantine(parse_bronze(frame.unionByName(invalid))).collect()}
    assert (got[0].value_text, bytes(got[0].value_bytes), got[0].key_text, bytes(got[0].key_bytes)) == (
        "not json", b"not json", "k\u00e9", "k\u00e9".encode())
    assert (got[0].reason, got[1].reason, got[2].reason) == (
        "not JSON (or not a JSON object)", "no value (null Kafka record)", "not valid UTF-8")
    assert (got[1].value_text, got[1].value_bytes, got[1].key_bytes) == (None, None, None)
    assert (got[2].value_text, bytes(got[2].value_bytes), got[2].key_text, bytes(got[2].key_bytes)) == (
        None, b"\x7b\xfe", None, b"\xffa")


ODD = ["O'Neil/USD", "O''Neil/USD", "a\\", "\\", "x%_;--", 'q"uote', "line\nbreak", "\U0001F680/USD", "s" * 200]


def test_pruning_conditions_select_exactly_their_rows_whatever_the_symbol(local_spark):
    """The MERGEs' target-side conditions carry symbols as typed literals: with quotes, backslashes, wildcards or
    emoji they select exactly the asked ranges (SQL text would fail to parse, or match nothing)."""
    day = date(2026, 1, 1)
    t0 = datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    rows = [(s, i, t0.replace(second=i), day, "t", 0, 10 * n + i) for n, s in enumerate(ODD) for i in range(1, 6)]
    target = local_spark.createDataFrame(
        rows, "symbol string, trade_id long, ts_event timestamp, trade_date date, topic string, partition int, "
              "offset long").alias("t")
    v2 = [(s, 2, 4, [day]) for s in ODD]
    assert sorted((r.symbol, r.trade_id) for r in target.where(id_ranges(v2)).collect()) == sorted(
        (s, i) for s in ODD for i in (2, 3, 4))
    micros = to_micros(t0)
    v1 = [("O'Neil/USD", micros + 1_000_000, micros + 2_000_000, [day])]
    assert sorted(r.trade_id for r in target.where(time_ranges(v1)).collect()) == [1, 2]
    assert target.where(id_ranges([("O'Neil/USD", 1, 5, [date(2026, 1, 2)])])).count() == 0  # other dates: none
    assert sorted(r.offset for r in target.where(offset_ranges([("t", 0, 12, 14)])).collect()) == [12, 13, 14]
    assert target.where(offset_ranges([])).count() == 0 and target.where(id_ranges([])).count() == 0
