"""Unit tests of the Kraken producer: recorded frames of both APIs -> exact records; dedupe, gaps, acks, flags."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest

from lakehouse.producer import cli, gaps, kafka_sink, protocol, records, session

DATA = Path(__file__).resolve().parents[1] / "data" / "kraken"
INGEST = "2026-09-25T17:48:26.901234Z"


def frames(name: str) -> list[str]:
    return [json.loads(line)["frame"] for line in (DATA / name).read_text().splitlines() if line.strip()]


def codecs(api: str, pairs: list[str]) -> dict[str, records.PairCodec]:
    return {records.native_pair(p, api): records.PairCodec(p, records.native_pair(p, api), api) for p in pairs}


def rec(symbol, price, size, side, ord_type, trade_id, ts_event, api, native):
    return {"symbol": symbol, "price": price, "size": size, "side": side, "ord_type": ord_type, "trade_id": trade_id,
            "ts_event": ts_event, "ts_ingest": INGEST, "api": api, "pair_native": native, "source": "ws"}


V2 = frames("v2_frames.jsonl")
V1 = frames("v1_frames.jsonl")
V2_CODECS = codecs("v2", ["XBT/USD", "MATIC/USD"])
V1_CODECS = codecs("v1", ["XMR/USD", "BTC/USD"])

V2_EXPECTED = [
    ("status", "online", 18125794168470749634, "2.0.10"),
    ("ack", "BTC/USD", True, None, "subscribe"),
    [rec("MATIC/USD", "0.5147", "6423.46326", "buy", "limit", 4665846, "2023-09-25T07:48:36.925533Z", "v2", "MATIC/USD"),
     rec("MATIC/USD", "0.5147", "1136.19677815", "buy", "limit", 4665847, "2023-09-25T07:49:36.925603Z", "v2", "MATIC/USD")],
    [rec("XBT/USD", "83744.3", "0.00044780", "buy", "limit", 109116693, "2026-09-25T17:48:26.844359Z", "v2", "BTC/USD")],
    [rec("MATIC/USD", "0.5117", "40.0", "sell", "market", 4665906, "2023-09-25T07:49:37.708706Z", "v2", "MATIC/USD")],
    ("ack", "XBT/USD", False, "Currency pair not supported XBT/USD", "subscribe"),
    ("heartbeat",),
    ("pong",),
    [rec("XBT/USD", "83744.30000000000000000", "0.00000000000000001", "sell", "market", 109116694,
         "2026-09-25T17:48:27.000000Z", "v2", "BTC/USD"),
     rec("XBT/USD", "83745", "12", "buy", "limit", 109116695, "2026-09-25T17:48:27.000000Z", "v2", "BTC/USD")],
]
V1_EXPECTED = [
    ("status", "online", 18239578009413566319, "1.8.3"),
    ("ack", "XMR/USD", True, None, "subscribe"),
    ("heartbeat",),
    [rec("XMR/USD", "354.11000000", "0.89594024", "sell", "limit", None, "2021-04-17T16:49:02.557535Z", "v1", "XMR/USD")],
    [rec("XMR/USD", "354.04000000", "0.28245396", "sell", "market", None, "2021-04-17T16:49:10.826417Z", "v1", "XMR/USD"),
     rec("XMR/USD", "353.81000000", "1.71754604", "sell", "market", None, "2021-04-17T16:49:10.827816Z", "v1", "XMR/USD")],
    [rec("BTC/USD", "5541.20000", "0.15850568", "sell", "limit", None, "2018-08-18T17:40:57.321597Z", "v1", "XBT/USD"),
     rec("BTC/USD", "6060.00000", "0.02455000", "buy", "limit", None, "2018-08-18T17:40:57.324998Z", "v1", "XBT/USD")],
    ("ack", "XBT-USDT", False, "Currency pair not in ISO 4217-A3 format XBT-USDT", "subscribe"),
    ("pong",),
    ("error", "Exceeded msg rate"),
]


@pytest.mark.parametrize("api,text,want", [("v2", f, w) for f, w in zip(V2, V2_EXPECTED)]
                         + [("v1", f, w) for f, w in zip(V1, V1_EXPECTED)])
def test_recorded_frames_parse_exactly(api, text, want):
    parsed = protocol.parse_frame(text, INGEST, V2_CODECS if api == "v2" else V1_CODECS, api)
    if isinstance(want, list):
        assert parsed[0] == "trades" and parsed[3] == []
        values = [v for _, _, v in parsed[2]]
        assert [json.loads(v.decode("utf-8")) for v in values] == want
        assert all(list(json.loads(v)) == list(w) for v, w in zip(values, want))  # field order is the contract
        assert all(b" " not in v for v in values)  # compact JSON, no float repr anywhere
    else:
        assert parsed == want


def test_recordings_cover_every_frame():
    assert len(V2) == len(V2_EXPECTED) and len(V1) == len(V1_EXPECTED)


@pytest.mark.parametrize("pair,api,native", [
    ("XBT/USDT", "v2", "BTC/USDT"), ("BTC/USDT", "v2", "BTC/USDT"), ("XDG/USD", "v2", "DOGE/USD"),
    ("BTC/USDT", "v1", "XBT/USDT"), ("DOGE/USD", "v1", "XDG/USD"), ("XBT/EUR", "v1", "XBT/EUR"),
    ("eth/usd", "v2", "ETH/USD"),
    ("ETH/XBT", "v2", "ETH/BTC"), ("ETH/BTC", "v1", "ETH/XBT"), ("XDG/XBT", "v2", "DOGE/BTC"),  # the quote too
    ("DOGE/BTC", "v1", "XDG/XBT"),
])
def test_native_pair(pair, api, native):
    assert records.native_pair(pair, api) == native


@pytest.mark.parametrize("text,iso", [
    ("1618678142.557535", "2021-04-17T16:49:02.557535Z"),
    ("1618678142.5", "2021-04-17T16:49:02.500000Z"),
    ("1618678142", "2021-04-17T16:49:02.000000Z"),
    ("1618678142.999999999", "2021-04-17T16:49:02.999999Z"),
    ("0.000001", "1970-01-01T00:00:00.000001Z"),
])
def test_v1_time_exact(text, iso):
    assert records.iso_from_v1_time(text) == iso


@pytest.mark.parametrize("text,message", [
    ("253402300800", "bad epoch time: '253402300800'"),         # 10000-01-01: one second past the last
    ("1618678142.", "bad epoch time: '1618678142.'"), ("-1", "bad epoch time: '-1'"),
    (1618678142, "bad epoch time: 1618678142"), (None, "bad epoch time: None"),
])
def test_v1_time_refusals_show_the_value(text, message):
    with pytest.raises(records.BadTrade, match="^" + re.escape(message) + "$"):
        records.iso_from_v1_time(text)


def test_v1_time_last_second_accepted():
    assert records.iso_from_v1_time("253402300799.999999") == "9999-12-31T23:59:59.999999Z"


@pytest.mark.parametrize("now_ns,iso", [
    (0, "1970-01-01T00:00:00.000000Z"),
    (1_618_678_142_557_535_999, "2021-04-17T16:49:02.557535Z"),   # nanoseconds truncated, not rounded
    (1_618_678_142_000_000_999, "2021-04-17T16:49:02.000000Z"),
    (253_402_300_799_999_999_999, "9999-12-31T23:59:59.999999Z"),  # integer math to the last microsecond
])
def test_iso_now_from_nanoseconds(now_ns, iso):
    assert records.iso_now(now_ns) == iso


def test_iso_now_reads_the_clock():
    before = records.iso_now(time.time_ns())
    assert before <= records.iso_now() <= records.iso_now(time.time_ns())


@pytest.mark.parametrize("text,iso", [
    ("2026-09-25T17:48:26.844359Z", "2026-09-25T17:48:26.844359Z"),
    ("2026-09-25T17:48:26.844359566Z", "2026-09-25T17:48:26.844359Z"),
    ("2026-09-25T17:48:26Z", "2026-09-25T17:48:26.000000Z"),
    ("2026-09-25T19:48:26.8+02:00", "2026-09-25T17:48:26.800000Z"),
    ("2026-01-01T00:30:00.000001-01:00", "2026-01-01T01:30:00.000001Z"),
    ("2026-01-01T05:30:00+05:30", "2026-01-01T00:00:00.000000Z"),       # offsets with minutes
    ("2026-01-01T00:00:00.5-09:45", "2026-01-01T09:45:00.500000Z"),
    ("2025-12-31T23:59:59.999999-14:00", "2026-01-01T13:59:59.999999Z"),  # the widest offsets, across a year
    ("2026-01-01T13:59:59+14:00", "2025-12-31T23:59:59.000000Z"),
    ("2026-09-25t17:48:26z", "2026-09-25T17:48:26.000000Z"), ("2026-09-25 17:48:26.1Z", "2026-09-25T17:48:26.100000Z"),
    ("1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
])
def test_rfc3339_exact(text, iso):
    assert records.iso_from_rfc3339(text) == iso


# Kraken's own form (6 digits, Z) takes a fast path that checks the calendar only on days 29-31: every month's end.
REAL_MONTH_ENDS = ["2026-01-31", "2026-02-28", "2024-02-29", "2000-02-29", "2026-03-31", "2026-04-30", "2026-05-31",
                   "2026-06-30", "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31",
                   "2026-03-29", "2026-03-30", "2026-01-09", "2026-01-19", "2026-01-20", "2026-01-28"]
NOT_DATES = ["2026-02-29", "2100-02-29", "1900-02-29", "2024-02-30", "2026-02-31", "2026-04-31", "2026-06-31",
             "2026-09-31", "2026-11-31"]


@pytest.mark.parametrize("form", ["T12:00:00.123456Z", "T12:00:00Z", "T12:00:00.123456+00:00"])
def test_rfc3339_calendar_on_every_path(form):
    for day in REAL_MONTH_ENDS:
        if not day.startswith(("1900", "2100")):
            assert records.iso_from_rfc3339(day + form).startswith(day), day + form
    for day in NOT_DATES:
        with pytest.raises(records.BadTrade, match="not a real date and time"):
            records.iso_from_rfc3339(day + form)


@pytest.mark.parametrize("text,reason", [
    ("2026-01-01T00:00:00+14:01", "(offset beyond ±14:00)"), ("2026-01-01T00:00:00-15:00", "(offset beyond ±14:00)"),
    ("2026-01-01T00:00:00+05:60", "(offset beyond ±14:00)"),
    ("1969-12-31T23:59:59.999999Z", "(outside 1970..9999)"), ("1970-01-01T00:30:00+01:00", "(outside 1970..9999)"),
    ("9999-12-31T23:00:00-01:00", "(outside 1970..9999)"), ("0001-01-01T00:00:00Z", "(outside 1970..9999)"),
    ("2026-01-01T24:00:00Z", "(not a real date and time)"), ("2026-01-01T23:60:00Z", "(not a real date and time)"),
    ("2026-01-01T23:59:60Z", "(not a real date and time)"), ("2026-13-01T00:00:00Z", "(not a real date and time)"),
    ("2026-00-01T00:00:00Z", "(not a real date and time)"), ("2026-01-00T00:00:00Z", "(not a real date and time)"),
    ("0000-01-01T00:00:00Z", "(not a real date and time)"), ("2026-02-30T00:00:00.000000Z", "(not a real date and time)"),
    ("2026-01-01T00:00:00.1234567890Z", ""), ("2026-01-01T00:00:00", ""), ("2026-01-01", ""), (1767225600, ""),
    (None, ""),
])
def test_rfc3339_refusals_say_why_and_show_the_value(text, reason):
    """The message names the reason and shows the value as received (its repr, so a number is told from text)."""
    with pytest.raises(records.BadTrade) as exc:
        records.iso_from_rfc3339(text)
    assert str(exc.value) == f"bad timestamp{' ' + reason if reason else ''}: {text!r}"


MISSING = object()


def v2_trade(**fields) -> dict:
    """A well-formed v2 trade element with some fields changed (MISSING: left out)."""
    trade = {"symbol": "BTC/USDT", "side": "buy", "price": records.Num("83744.3"), "qty": records.Num("0.00044780"),
             "ord_type": "limit", "trade_id": 109116693, "timestamp": "2026-09-25T17:48:26.844359Z"}
    return {k: v for k, v in {**trade, **fields}.items() if v is not MISSING}


V1_ROW = ["354.11000000", "0.89594024", "1618678142.557535", "s", "l", ""]


@pytest.mark.parametrize("refuse,head", [
    (records.iso_from_rfc3339, "bad timestamp: "),
    (records.iso_from_v1_time, "bad epoch time: "),
    (records.decimal_text, "not a decimal within bounds: "),
    (lambda v: records.PairCodec("XBT/USDT", "BTC/USDT", "v2").v2_value(v2_trade(trade_id=v), INGEST),
     "bad trade_id: "),
    (lambda v: records.PairCodec("XBT/USDT", "BTC/USDT", "v2").rest_value(V1_ROW + [v], INGEST), "bad trade_id: "),
])
def test_refusal_of_a_huge_value_is_cut_short(refuse, head):
    with pytest.raises(records.BadTrade) as exc:
        refuse([["y" * 50] * 8])
    message = str(exc.value)
    assert message.startswith(head + "[['yyyy") and message.endswith("...")
    assert len(message) == len(head) + 80


@pytest.mark.parametrize("text,iso", [
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),           # the first second, off the fast path
    ("1970-01-01T05:59:00+05:59", "1970-01-01T00:00:00.000000Z"),      # the largest minutes of an offset
    ("2026-01-01T00:00:00-00:59", "2026-01-01T00:59:00.000000Z"),
])
def test_rfc3339_bounds_are_inclusive(text, iso):
    assert records.iso_from_rfc3339(text) == iso


@pytest.mark.parametrize("value", ["abc", "1.5.5", "", 1.5, None, True])
def test_decimal_text_rejects_junk(value):
    with pytest.raises(records.BadTrade):
        records.decimal_text(value)


def test_decimal_text_keeps_wire_text():
    assert records.decimal_text(records.Num("0.00044780")) == "0.00044780"
    assert records.decimal_text(records.Num("1E-8")) == "0.00000001"
    assert records.decimal_text(83744) == "83744"
    assert protocol.load_frame('{"p": 0.10000000000000000555}')["p"] == "0.10000000000000000555"


@pytest.mark.parametrize("value,text", [
    (0, "0"), (10**40 - 1, "9" * 40),                                        # integers: 0 .. 40 digits
    (records.Num("1e-8"), "0.00000001"), (records.Num("2.5e+3"), "2500"),  # lower-case exponents
    (records.Num("1E-40"), "0." + "0" * 39 + "1"),                          # |exponent| up to 40 ...
    (records.Num("0.1E40"), "1" + "0" * 39), (records.Num("0.1e+040"), "1" + "0" * 39),
])
def test_decimal_text_bounds_are_inclusive(value, text):
    assert records.decimal_text(value) == text


@pytest.mark.parametrize("value,shown", [
    (10**40, "100000000000000000...0000000000000000000"), (-1, "-1"),
    (records.Num("1E-41"), "'1E-41'"), (records.Num("0.01E41"), "'0.01E41'"),  # ... not beyond
    (records.Num("1E40"), "'1E40'"),                                            # 41 digits
    ("1e-8", "'1e-8'"),                    # exponent form only for JSON numbers, not for text
    (1.5, "1.5"), (None, "None"),
])
def test_decimal_text_refusals_show_the_value(value, shown):
    with pytest.raises(records.BadTrade, match="^" + re.escape(f"not a decimal within bounds: {shown}") + "$"):
        records.decimal_text(value)


def test_short_keeps_a_repr_that_fits_and_cuts_a_longer_one():
    assert records.short("x" * 8, 10) == "'xxxxxxxx'"
    assert records.short("x" * 9, 10) == "'xxxxxx..."
    huge = {i: "v" * 50 for i in range(8)}
    assert len(records.short(huge)) == 200 and records.short(huge).endswith("...")


def test_bad_elements_skipped_rest_kept_in_order():
    text = json.dumps({"channel": "trade", "type": "update", "data": [
        {"symbol": "BTC/USD", "side": "buy", "price": 1, "qty": 2, "ord_type": "limit", "trade_id": 1,
         "timestamp": "2026-01-01T00:00:00.000000Z"},
        {"symbol": "BTC/USD", "side": "up", "price": 1, "qty": 2, "ord_type": "limit", "trade_id": 2,
         "timestamp": "2026-01-01T00:00:00.000000Z"},
        {"symbol": "ETH/USD", "side": "buy", "price": 1, "qty": 2, "ord_type": "limit", "trade_id": 3,
         "timestamp": "2026-01-01T00:00:00.000000Z"},
        {"symbol": "BTC/USD", "side": "sell", "price": "x", "qty": 2, "ord_type": "m", "trade_id": 4,
         "timestamp": "2026-01-01T00:00:00.000000Z"},
        {"symbol": "BTC/USD", "side": "sell", "price": 3, "qty": 4, "ord_type": "market", "trade_id": 5,
         "timestamp": "2026-01-01T00:00:00.000000Z"},
    ]})
    kind, _snap, records, bad = protocol.parse_frame(text, INGEST, V2_CODECS, "v2")
    assert kind == "trades" and [tid for _, tid, _ in records] == [1, 5] and len(bad) == 3


def test_codec_values_exact_bytes():
    """The value contract byte for byte: field names, order, the user's pair and the native one, the API."""
    v2 = records.PairCodec("XBT/USDT", "BTC/USDT", "v2")
    assert v2.key == b"XBT/USDT"
    assert v2.v2_value(v2_trade(trade_id=0), INGEST) == (0, (
        b'{"symbol":"XBT/USDT","price":"83744.3","size":"0.00044780","side":"buy","ord_type":"limit","trade_id":0,'
        b'"ts_event":"2026-09-25T17:48:26.844359Z","ts_ingest":"2026-09-25T17:48:26.901234Z","api":"v2",'
        b'"pair_native":"BTC/USDT","source":"ws"}'))
    assert v2.v2_value(v2_trade(trade_id=2**63 - 1), INGEST)[0] == 2**63 - 1
    v1 = records.PairCodec("DOGE/USD", "XDG/USD", "v1")
    assert v1.v1_value(V1_ROW[:5], INGEST) == (("1618678142.557535", "354.11000000", "0.89594024", "sell", "limit"), (
        b'{"symbol":"DOGE/USD","price":"354.11000000","size":"0.89594024","side":"sell","ord_type":"limit",'
        b'"trade_id":null,"ts_event":"2021-04-17T16:49:02.557535Z","ts_ingest":"2026-09-25T17:48:26.901234Z",'
        b'"api":"v1","pair_native":"XDG/USD","source":"ws"}'))


@pytest.mark.parametrize("fields,message", [
    ({"side": MISSING}, "bad v2 trade: missing field or bad side/ord_type ('side')"),
    ({"timestamp": MISSING}, "bad v2 trade: missing field or bad side/ord_type ('timestamp')"),
    ({"ord_type": "stop"}, "bad v2 trade: missing field or bad side/ord_type ('stop')"),
    ({"side": "s" * 100}, "bad v2 trade: missing field or bad side/ord_type ('" + "s" * 27 + "..." + "s" * 6 + "...)"),
    ({"trade_id": -1}, "bad trade_id: -1"), ({"trade_id": 2**63}, "bad trade_id: 9223372036854775808"),
    ({"trade_id": "5"}, "bad trade_id: '5'"), ({"trade_id": True}, "bad trade_id: True"),
    ({"timestamp": ""}, "bad timestamp: ''"),   # a first trade's time is checked, never taken from the cache
])
def test_v2_trade_refusals_say_why(fields, message):
    codec = records.PairCodec("XBT/USDT", "BTC/USDT", "v2")
    with pytest.raises(records.BadTrade, match="^" + re.escape(message) + "$"):
        codec.v2_value(v2_trade(**fields), INGEST)


@pytest.mark.parametrize("row,message", [
    (7, "bad v1 trade: not a list of [price, volume, time, side, orderType, misc]"),
    ("354.1,0.8,1618678142,s,l", "bad v1 trade: not a list of [price, volume, time, side, orderType, misc]"),
    (V1_ROW[:4], "bad v1 trade: not a list of [price, volume, time, side, orderType, misc]"),
    (V1_ROW[:3] + ["x", "l"], "bad v1 trade: side or orderType"),
    (V1_ROW[:3] + ["s", ["l"]], "bad v1 trade: side or orderType"),
    (V1_ROW[:2] + ["", "s", "l"], "bad epoch time: ''"),   # a first trade's time is checked, never taken from the cache
])
def test_v1_trade_refusals_say_why(row, message):
    codec = records.PairCodec("XBT/USD", "XBT/USD", "v1")
    with pytest.raises(records.BadTrade, match="^" + re.escape(message) + "$"):
        codec.v1_value(row, INGEST)


@pytest.mark.parametrize("text,kind", [
    ("not json", "malformed"), ("[1,2]", "unknown"), ('{"channel":"book"}', "unknown"), ("42", "malformed"),
    ('{"channel":"trade","type":"update","data":"x"}', "malformed"), ('{"foo":1}', "unknown"),
])
def test_odd_frames_are_classified(text, kind):
    assert protocol.parse_frame(text, INGEST, V2_CODECS, "v2")[0] == kind


class FakeKafka:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, dict]] = []
        self.headers: list = []

    def produce(self, topic, value, key, headers=None):
        self.messages.append((key, json.loads(value)))
        self.headers.append(headers)

    def poll(self, _t=0):
        return 0

    def __len__(self):
        return 0


def app(api: str, pairs: list[str]) -> session.TradeProducer:
    config = cli.parse_config(["--api", api, *sum((["--pair", p] for p in pairs), [])])
    return session.TradeProducer(config.session, config.backfill, FakeKafka(), lambda *a: None)


def v2_frame(kind: str, ids: list[int], symbol: str = "BTC/USDT") -> bytes:
    return json.dumps({"channel": "trade", "type": kind, "data": [
        {"symbol": symbol, "side": "buy", "price": 1.5, "qty": 0.1, "ord_type": "limit", "trade_id": i,
         "timestamp": "2026-01-01T00:00:00.000000Z"} for i in ids]}).encode()


def test_v2_snapshot_overlap_deduped_and_gaps_counted():
    a = app("v2", ["XBT/USDT"])
    for frame in (v2_frame("snapshot", list(range(1, 51))), v2_frame("update", [51, 52]),
                  v2_frame("snapshot", list(range(10, 60))),   # reconnect: 1..52 again + 53..59 missed
                  v2_frame("snapshot", list(range(100, 150))), # reconnect after a long outage: 60..99 lost
                  v2_frame("update", [150, 150, 149])):
        a.frames.handle_text(frame, 0, set())
    ids = [v["trade_id"] for _, v in a.producer.messages]
    assert ids == list(range(1, 60)) + list(range(100, 151))
    assert {key for key, _ in a.producer.messages} == {b"XBT/USDT"}
    assert (a.stats.gaps, a.stats.missing, a.stats.dups) == (1, 40, 43 + 2)
    assert a.ledger.gaps_by_pair == {"XBT/USDT": [1, 40]}
    # while the gap is open (no backfill thread here), every record of the pair names it in a header
    assert a.producer.headers[:59] == [None] * 59
    since = records.epoch_ns_from_iso("2026-01-01T00:00:00.000000Z") - 1000
    for headers in a.producer.headers[59:]:
        (name, raw), = headers
        assert name == "kraken-open-gaps" and [g[:3] for g in gaps.decode_gaps(raw)] == [(60, 99, since)]


def test_v1_resubscribe_overlap_skipped():
    a = app("v1", ["XBT/USD"])
    row = lambda p, t: [p, "0.10000000", t, "b", "l", ""]  # noqa: E731
    first = [0, [row("1.0", "100.000001"), row("2.0", "100.000002"), row("2.0", "100.000002")], "trade", "XBT/USD"]
    a.frames.handle_text(json.dumps(first).encode(), 0, set())
    a.frames.handle_ack(("ack", "XBT/USD", True, None, "subscribe"), set())  # resubscribed; v1 snapshot replays history
    again = [0, [row("1.0", "100.000001"), row("2.0", "100.000002"), row("2.0", "100.000002"),
                 row("2.0", "100.000002"), row("3.0", "100.000003")], "trade", "XBT/USD"]
    a.frames.handle_text(json.dumps(again).encode(), 0, set())
    assert [v["price"] for _, v in a.producer.messages] == ["1.0", "2.0", "2.0", "2.0", "3.0"]
    assert a.stats.dups == 3


def test_rejected_pair_and_rate_limit():
    a = app("v2", ["XBT/USDT"])
    with pytest.raises(session.PairRejected, match=r"Kraken rejected pair 'XBT/USDT' \(sent as 'BTC/USDT' on v2\): nope"):
        a.frames.handle_ack(("ack", "BTC/USDT", False, "nope", "subscribe"), {"BTC/USDT"})
    with pytest.raises(session.Reconnect, match="Exceeded msg rate"):
        a.frames.handle_text(b'{"Error":"Exceeded msg rate"}', 0, set())
    pending = {"BTC/USDT"}
    a.frames.handle_ack(("ack", "BTC/USDT", True, None, "subscribe"), pending)
    assert pending == set()


def test_invalid_utf8_counted_not_fatal(tmp_path):
    a = app("v2", ["XBT/USDT"])
    a.frames.record = open(tmp_path / "rec.jsonl", "a", encoding="utf-8")
    a.frames.handle_text(b"\xff\xfe", 10**18, set())
    a.frames.handle_text(v2_frame("update", [7]), 10**18, set())
    a.frames.record.close()
    lines = [json.loads(x) for x in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert a.stats.malformed == 1 and len(a.producer.messages) == 1
    assert [x["t"] for x in lines] == [1e9, 1e9] and lines[1]["frame"] == v2_frame("update", [7]).decode()


def test_backoff_doubles_per_attempt_up_to_the_cap_with_jitter():
    """Attempt n waits uniformly in [d/2, d], d = min(cap, initial * 2^n): every attempt checked, and the jitter
    spans its whole range (the lowest and highest of many draws near both ends)."""
    rng = random.Random(1)
    for attempt, ceiling in enumerate([0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30]):
        draws = [session.backoff_delay(attempt, 0.5, 30, rng) for _ in range(400)]
        assert ceiling / 2 <= min(draws) < ceiling * 0.52 and ceiling * 0.98 < max(draws) <= ceiling, attempt
    assert session.backoff_delay(10**6, 0.5, 30, rng) <= 30  # a huge attempt number neither overflows nor exceeds


def test_producer_config_is_idempotent_and_patient():
    conf = kafka_sink.producer_config(cli.parse_config([]).kafka)
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["message.timeout.ms"] == 300_000 and conf["compression.type"] == "lz4"


def test_subscribe_requests():
    assert json.loads(protocol.subscribe_request("v2", ["BTC/USDT"], 7)) == {
        "method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"], "snapshot": True}, "req_id": 7}
    assert json.loads(protocol.subscribe_request("v1", ["XBT/USDT"], 7)) == {
        "event": "subscribe", "pair": ["XBT/USDT"], "subscription": {"name": "trade"}, "reqid": 7}


@pytest.mark.parametrize("argv,msg", [
    (["--pair", "XBT/USDT", "--pair", "BTC/USDT"], "same Kraken pair"),
    (["--pair", "XBTUSDT"], "expected BASE/QUOTE"),
    (["--watchdog", "0"], "must be > 0"),
    (["--api", "v3"], "invalid choice"),
])
def test_usage_errors_exit_2(argv, msg, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2 and msg in capsys.readouterr().err


def test_defaults():
    """The documented defaults (README "Producer"), as literal values: a changed default fails here."""
    args = cli.parse_args([])
    assert (args.pair, args.bootstrap, args.topic, args.api) == (["XBT/USDT"], "localhost:19092", "crypto.trades", "v2")
    assert (args.ws_url, args.rest_url, args.compression, args.linger_ms) == (None, "https://api.kraken.com", "lz4", 5)
    assert (args.watchdog, args.ack_timeout, args.connect_timeout, args.stats_interval) == (10, 10, 10, 10)
    assert (args.backoff_initial, args.backoff_max) == (0.5, 30)
    assert (args.delivery_timeout, args.flush_timeout, args.startup_timeout) == (300, 30, 5)
    assert (args.no_resume, args.resume_scan_limit, args.resume_timeout) == (False, 200_000, 15)
    assert (args.no_backfill, args.rest_interval, args.rest_timeout, args.backfill_give_up) == (False, 1, 10, 3600)
    assert (args.partitions, args.record, args.log_level) == (3, None, "INFO")


@pytest.mark.parametrize("msg,expected", [
    ({"event": "heartbeat"}, (protocol.HEARTBEAT,)),
    ({"event": "pong", "reqid": 3}, (protocol.PONG,)),
    ({"event": "systemStatus", "status": "online", "connectionID": 8628615390848610000, "version": "1.9.5"},
     (protocol.STATUS, "online", 8628615390848610000, "1.9.5")),
    ({"event": "systemStatus", "status": "maintenance"}, (protocol.STATUS, "maintenance", None, None)),
    ({"event": "systemStatus", "status": 1}, (protocol.MALFORMED, "systemStatus without a status text")),
    ({"event": "systemStatus", "status": "online", "version": 2}, (protocol.MALFORMED,
                                                                    "systemStatus without a status text")),
    ({"event": "systemStatus", "status": "online", "connectionID": "7"}, (protocol.MALFORMED,
                                                                           "systemStatus without a status text")),
    ({"event": "subscriptionStatus", "status": "subscribed", "pair": "XBT/USD"},
     (protocol.ACK, "XBT/USD", True, None, "subscribe")),
    ({"event": "subscriptionStatus", "status": "unsubscribed", "pair": "XBT/USD"},
     (protocol.ACK, "XBT/USD", True, None, "unsubscribe")),
    ({"event": "subscriptionStatus", "status": "error", "pair": "XBT/USDX", "errorMessage": "Currency pair not supported"},
     (protocol.ACK, "XBT/USDX", False, "Currency pair not supported", "subscribe")),
    ({"event": "subscriptionStatus", "status": "error", "errorMessage": ["x"] * 3},
     (protocol.ACK, None, False, "['x', 'x', 'x']", "subscribe")),
    ({"event": "subscriptionStatus", "status": "subscribed", "pair": ["XBT/USD"]},
     (protocol.MALFORMED, "subscriptionStatus with a pair that is not text: ['XBT/USD']")),
    ({"event": "subscriptionStatus", "status": "pending", "pair": "XBT/USD"},
     (protocol.UNKNOWN, "subscriptionStatus 'pending'")),
    ({"event": "error", "errorMessage": "Exceeded msg rate"}, (protocol.ERROR, "Exceeded msg rate")),
    ({"event": "error", "errorMessage": "e" * 400}, (protocol.ERROR, "e" * 300)),
    ({"event": "error"}, (protocol.ERROR, "None")),
    ({"event": "addOrder"}, (protocol.UNKNOWN, "event 'addOrder'")),
    ({"event": ["error"]}, (protocol.UNKNOWN, "event ['error']")),
])
def test_v1_events_each_kind_exactly(msg, expected):
    """Every v1 event kind, well-formed and not, as parse_frame reports it (reasons and texts exact)."""
    assert protocol.parse_frame(json.dumps(msg), "2026-01-01T00:00:00.000000Z", codecs("v1", ["XBT/USD"]),
                                "v1") == expected


STATUS_V2 = {"channel": "status", "type": "update"}
BTC_ROW = ["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""]


@pytest.mark.parametrize("msg,expected", [
    ({"channel": "heartbeat"}, (protocol.HEARTBEAT,)),
    ({**STATUS_V2, "data": [{"system": "online", "connection_id": 7, "version": "2.0.10"}]},
     (protocol.STATUS, "online", 7, "2.0.10")),
    ({**STATUS_V2, "data": [{"system": "maintenance"}]}, (protocol.STATUS, "maintenance", None, None)),
    ({**STATUS_V2, "data": {"system": "online"}}, (protocol.MALFORMED, "status frame without a system text")),
    ({**STATUS_V2, "data": []}, (protocol.MALFORMED, "status frame without a system text")),
    ({**STATUS_V2, "data": ["online"]}, (protocol.MALFORMED, "status frame without a system text")),
    ({**STATUS_V2, "data": [{"system": 1, "version": "2"}]}, (protocol.MALFORMED, "status frame without a system text")),
    ({**STATUS_V2, "data": [{"system": "online", "version": 2}]},
     (protocol.MALFORMED, "status frame without a system text")),
    ({**STATUS_V2, "data": [{"system": "online", "connection_id": "7"}]},
     (protocol.MALFORMED, "status frame without a system text")),
    ({"channel": "book"}, (protocol.UNKNOWN, "channel 'book'")),
    ({"method": "pong", "req_id": 3}, (protocol.PONG,)),
    ({"method": "subscribe", "result": {"channel": "trade", "symbol": "BTC/USD"}, "success": True},
     (protocol.ACK, "BTC/USD", True, None, "subscribe")),
    ({"method": "unsubscribe", "result": {"channel": "trade", "symbol": "BTC/USD"}, "success": True},
     (protocol.ACK, "BTC/USD", True, None, "unsubscribe")),
    ({"method": "subscribe", "error": "Currency pair not supported", "success": False, "symbol": "BTC/USDX"},
     (protocol.ACK, "BTC/USDX", False, "Currency pair not supported", "subscribe")),
    ({"method": "subscribe", "result": {"symbol": ["BTC/USD"]}, "success": True},
     (protocol.MALFORMED, "subscribe ack with a symbol that is not text: ['BTC/USD']")),
    ({"method": "error", "error": "Malformed request", "symbol": "BTC/USD"},
     (protocol.ACK, "BTC/USD", False, "Malformed request", "error")),
    ({"method": "error", "error": "Malformed request", "symbol": 5}, (protocol.ACK, None, False, "Malformed request", "error")),
    ({"method": "error"}, (protocol.ACK, None, False, "None", "error")),
    ({"method": "ping"}, (protocol.UNKNOWN, "method 'ping'")),
    ({"Error": "Exceeded msg rate"}, (protocol.ERROR, "Exceeded msg rate")),
    ({"error": "Exceeded msg rate"}, (protocol.ERROR, "Exceeded msg rate")),
    ({"error": "x", "event": "heartbeat"}, (protocol.HEARTBEAT,)),       # an error field inside an event is the event's
    ({"foo": 1}, (protocol.UNKNOWN, "no channel/method/event")),
    (42, (protocol.MALFORMED, "unexpected JSON int")), ("x", (protocol.MALFORMED, "unexpected JSON str")),
    ({"channel": "trade", "type": "update", "data": "x"}, (protocol.MALFORMED, "trade frame without data list or type")),
    ({"channel": "trade", "type": "change", "data": []}, (protocol.MALFORMED, "trade frame without data list or type")),
    ({"channel": "trade", "type": "update", "data": [5, {"symbol": ["BTC/USD"]}, {"symbol": "ETH/USD"}]},
     (protocol.TRADES, False, [], ["bad v2 trade: not an object in 5",
                                   "trade for unsubscribed symbol ['BTC/USD'] in {'symbol': ['BTC/USD']}",
                                   "trade for unsubscribed symbol 'ETH/USD' in {'symbol': 'ETH/USD'}"])),
])
def test_v2_frames_each_kind_exactly(msg, expected):
    """Every v2 frame kind, well-formed and not, as parse_frame reports it (reasons and texts exact)."""
    assert protocol.parse_frame(json.dumps(msg), INGEST, V2_CODECS, "v2") == expected


@pytest.mark.parametrize("msg,expected", [
    ([7], (protocol.UNKNOWN, "array frame for channel None")),
    ([1, 2], (protocol.UNKNOWN, "array frame for channel 1")),
    ([0, "trade", "XBT/USD"], (protocol.UNKNOWN, "array frame for channel 'trade'")),
    ([0, [BTC_ROW], "book", "XBT/USD"], (protocol.UNKNOWN, "array frame for channel 'book'")),
    ([0, [BTC_ROW], "trade", ["XBT/USD"]], (protocol.MALFORMED, "trade for unsubscribed pair ['XBT/USD']")),
    ([0, [BTC_ROW], "trade", "ETH/USD"], (protocol.MALFORMED, "trade for unsubscribed pair 'ETH/USD'")),
    ([0, "x", "trade", "XBT/USD"], (protocol.MALFORMED, "v1 trade frame without a list of trades")),
    ([0, [7, ["1"]], "trade", "XBT/USD"], (protocol.TRADES, False, [], [
        "bad v1 trade: not a list of [price, volume, time, side, orderType, misc] in 7",
        "bad v1 trade: not a list of [price, volume, time, side, orderType, misc] in ['1']"])),
])
def test_v1_arrays_each_kind_exactly(msg, expected):
    assert protocol.parse_frame(json.dumps(msg), INGEST, V1_CODECS, "v1") == expected


def test_v1_trades_are_never_a_snapshot_and_name_channel_and_pair_from_the_end():
    kind, snapshot, parsed, bad = protocol.parse_frame(json.dumps([0, [BTC_ROW], {"extra": 1}, "trade", "XBT/USD"]),
                                                       INGEST, V1_CODECS, "v1")
    assert (kind, snapshot, bad) == (protocol.TRADES, False, [])
    assert [(codec.user_pair, row) for codec, row, _ in parsed] == [
        ("BTC/USD", ("1534614057.321597", "5541.20000", "0.15850568", "sell", "limit"))]


@pytest.mark.parametrize("api,msg,head", [
    ("v2", {"channel": "c" * 80}, "channel "),
    ("v2", {"method": "m" * 80}, "method "),
    ("v2", {"method": "subscribe", "result": {"symbol": ["s" * 80]}}, "subscribe ack with a symbol that is not text: "),
    ("v1", [0, [], "c" * 80, "XBT/USD"], "array frame for channel "),
    ("v1", [0, [], "trade", ["p" * 80]], "trade for unsubscribed pair "),
])
def test_frame_values_in_reasons_are_cut_at_40_characters(api, msg, head):
    kind, reason = protocol.parse_frame(json.dumps(msg), INGEST, V2_CODECS if api == "v2" else V1_CODECS, api)
    assert reason.startswith(head) and reason.endswith("...") and len(reason) == len(head) + 40, reason


def test_unsubscribed_symbol_in_a_trade_is_cut_at_40_characters():
    frame = {"channel": "trade", "type": "update", "data": [{"symbol": "s" * 80}]}
    (bad,) = protocol.parse_frame(json.dumps(frame), INGEST, V2_CODECS, "v2")[3]
    head = "trade for unsubscribed symbol "
    assert bad.startswith(head) and bad[len(head):].index(" in {") == 40, bad


def test_load_frame_without_msgspec_gives_the_same_values(monkeypatch):
    text = '{"p": 0.10000000000000000555, "n": 109116693, "s": "x", "e": 1E-8}'
    fast = protocol.load_frame(text)
    monkeypatch.setattr(protocol, "_FAST_LOADS", None)
    slow = protocol.load_frame(text)
    assert slow == fast == {"p": "0.10000000000000000555", "n": 109116693, "s": "x", "e": "1E-8"}
    assert type(slow["p"]) is type(slow["e"]) is records.Num and type(slow["n"]) is int


def test_ping_requests():
    assert json.loads(protocol.ping_request("v2", 7)) == {"method": "ping", "req_id": 7}
    assert json.loads(protocol.ping_request("v1", 7)) == {"event": "ping", "reqid": 7}


def test_v1_event_values_in_reasons_are_cut_at_40_characters():
    for msg, head in [({"event": "subscriptionStatus", "status": "x" * 80, "pair": "XBT/USD"}, "subscriptionStatus "),
                      ({"event": "e" * 80}, "event "),
                      ({"event": "subscriptionStatus", "status": "subscribed", "pair": ["p" * 80]},
                       "subscriptionStatus with a pair that is not text: ")]:
        kind, reason = protocol.parse_frame(json.dumps(msg), "2026-01-01T00:00:00.000000Z", codecs("v1", ["XBT/USD"]),
                                            "v1")
        assert reason.startswith(head) and reason.endswith("...") and len(reason) == len(head) + 40, reason
