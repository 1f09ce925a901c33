"""Fuzz the producer's frame handling: mutated real-format Kraken v1/v2 frames never raise, every record it emits
satisfies the value contract (checked by the independent validator below, not by the producer's own code), and
every good element of a mixed frame is produced.

Two parts: a property test with Hypothesis (mutations drawn by Hypothesis, derandomized so CI is repeatable) and a
fixed-seed corpus of FUZZ_CORPUS_FRAMES mutated frames (default 40,000). Frames go through the producer's whole
text path (`FrameHandler.handle_text`: decode, parse, dedup/gap/resume bookkeeping) with an in-memory Kafka.
    FUZZ_CORPUS_FRAMES=400000 .venv/bin/python -m pytest -q tests/unit/test_producer_fuzz.py   # a longer run
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.fake_kraken.server import FakeKraken
from lakehouse.producer import cli, protocol, records, rest, session

DATA = Path(__file__).resolve().parents[1] / "data" / "kraken"
CORPUS_FRAMES = int(os.environ.get("FUZZ_CORPUS_FRAMES", "40000"))

# The producer's pairs (as typed) and their names in each dialect: written out here, not computed by the producer.
V2_PAIRS = {"XBT/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "XDG/USD": "DOGE/USD"}
V1_PAIRS = {"BTC/USDT": "XBT/USDT", "ETH/USD": "ETH/USD", "DOGE/USD": "XDG/USD"}
FIELDS = ["symbol", "price", "size", "side", "ord_type", "trade_id", "ts_event", "ts_ingest", "api", "pair_native",
          "source"]
PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
ISO_US = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


# ---------------------------------------------------------------------------------------------------------------------
# The independent validator of the value contract (README "Each Kafka value is UTF-8 JSON")


def _no_float(text: str) -> Any:
    raise AssertionError(f"a JSON float in a record: {text}")


def check_record(key: bytes, value: bytes, api: str, source: str = "ws") -> dict:
    pairs = V2_PAIRS if api == "v2" else V1_PAIRS
    items = json.loads(value.decode("utf-8"), parse_float=_no_float, object_pairs_hook=list)
    assert [name for name, _ in items] == FIELDS, items
    rec = dict(items)
    assert rec["symbol"] in pairs and key == rec["symbol"].encode("utf-8")
    assert rec["pair_native"] == pairs[rec["symbol"]] and rec["api"] == api and rec["source"] == source
    for name in ("price", "size"):
        text = rec[name]
        assert type(text) is str and PLAIN_DECIMAL.fullmatch(text), rec
        whole, _, frac = text.partition(".")
        assert len(whole) <= 40 and len(frac) <= 40 and Decimal(text) >= 0, rec
    assert rec["side"] in ("buy", "sell") and rec["ord_type"] in ("limit", "market"), rec
    if api == "v2":
        assert type(rec["trade_id"]) is int and 0 <= rec["trade_id"] < 2**63, rec
    else:
        assert rec["trade_id"] is None, rec
    for name in ("ts_event", "ts_ingest"):
        assert type(rec[name]) is str and ISO_US.fullmatch(rec[name]), rec
        assert dt.datetime.strptime(rec[name], "%Y-%m-%dT%H:%M:%S.%fZ").year >= 1970, rec
    return rec


# ---------------------------------------------------------------------------------------------------------------------
# Seeds: recorded frames, frames the fake Kraken builds, and the frames issue 15 found fatal


def recorded(name: str) -> list[str]:
    return [json.loads(line)["frame"] for line in (DATA / name).read_text().splitlines() if line.strip()]


def fake_frames(api: str, n: int = 12) -> list[str]:
    fake = FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=15, max_batch=4)
    out = []
    for i in range(n):
        pair = fake.pairs[i % 3]
        batch = [fake._new_trade(pair, 1_790_000_000_000_000 + i) for _ in range(1 + i % 4)]
        out.append(fake._trade_frame(api, pair, batch, "snapshot" if i == 0 and api == "v2" else "update"))
    return out


GOOD_V2 = ('{"symbol":"BTC/USDT","side":"buy","price":83744.3,"qty":0.00044780,"ord_type":"limit",'
           '"trade_id":109116693,"timestamp":"2026-09-25T17:48:26.844359Z"}')
ISSUE_15 = {
    "v2": [
        '{"channel":"trade","type":"update","data":[' + GOOD_V2.replace('"BTC/USDT"', '["BTC/USDT"]') + "]}",
        '{"channel":"trade","type":"update","data":[' + GOOD_V2.replace('"BTC/USDT"', '{"a":1}') + "]}",
        '{"method":"subscribe","result":{"channel":"trade","symbol":["BTC/USDT"]},"success":true}',
        '{"method":"subscribe","result":{"channel":"trade","symbol":{"x":1}},"success":false,"error":"x"}',
        '{"channel":"trade","type":"update","data":[' + GOOD_V2.replace("26.844359Z", "26.844359+99:99") + "]}",
        '{"channel":"trade","type":"update","data":['
        + GOOD_V2.replace("2026-09-25T17:48:26.844359Z", "2026-02-30T25:61:61.000000Z") + "]}",
        '{"channel":"trade","type":"update","data":[' + GOOD_V2.replace("83744.3", "1e400") + "]}",
        '{"channel":"trade","type":"update","data":[' + GOOD_V2.replace("83744.3", "1e999999999") + "]}",
    ],
    "v1": [
        '[0,[],"trade",["XBT/USDT"]]',
        '[0,[["5541.20000","0.15850568","","s","l",""]],"trade","XBT/USDT"]',
        '{"event":"subscriptionStatus","status":"subscribed","pair":["XBT/USDT"]}',
        '[0,[["5541.20000","0.15850568","999999999999.5","s","l",""]],"trade","XBT/USDT"]',
        '[0,["123bl"],"trade","XBT/USDT"]',
    ],
}
SEEDS = {
    "v2": recorded("v2_frames.jsonl") + fake_frames("v2") + ISSUE_15["v2"],
    "v1": recorded("v1_frames.jsonl") + fake_frames("v1") + ISSUE_15["v1"],
}


# ---------------------------------------------------------------------------------------------------------------------
# Mutations


HOSTILE = [
    None, True, False, 0, -1, 1, 2**63, 2**64, 10**50, -(10**30), "", " ", "abc", "1.5.5", "-1.5", "1e5", "NaN",
    "Infinity", "0x10", "１２３", "\u0000", "\ud800", "\U0001F4A9" * 3, "buy ", "BUY", "b", "s", "l", "m", "x" * 5000,
    [], {}, [1, 2], {"a": [1, {"b": None}]}, ["BTC/USDT"], {"symbol": "BTC/USDT"}, "BTC/USDT", "XBT/USDT",
    "2026-02-30T12:00:00.000000Z", "2026-09-25T25:61:61.000000Z", "2026-09-25T17:48:26.844359+99:99",
    "2026-09-25T17:48:26.844359+14:01", "2026-09-25T17:48:26.8443591Z", "2026-09-25t17:48:26z",
    "0000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999-14:00", "2026-09-25T17:48:60.000000Z",
    "1618678142.557535", "99999999999999", "", "1618678142.", ".5",
]
NUMBER_TEXTS = ["1e400", "1e-400", "1e999999999", "1E-8", "1.5e+3", "-0.0", "0.0", "-5", "1" * 45, "0." + "1" * 45,
                "1" * 4400, "3.14159265358979323846264338327950288419716939937510", "1e40", "1.0e-40", "00.5"]


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indexes) to a value inside a decoded frame, the root included."""
    out = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += paths(value, prefix + (i,))
    return out


def replace_at(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: replace_at(obj[head], rest, value)}
    return obj[:head] + [replace_at(obj[head], rest, value)] + obj[head + 1:]


def remove_at(obj: Any, path: tuple) -> Any:
    if len(path) == 1:
        if isinstance(obj, dict):
            return {key: v for key, v in obj.items() if key != path[0]}
        return obj[:path[0]] + obj[path[0] + 1:]
    head = path[0]
    if isinstance(obj, dict):
        return {**obj, head: remove_at(obj[head], path[1:])}
    return obj[:head] + [remove_at(obj[head], path[1:])] + obj[head + 1:]


NUMBER_MARK = "\u0001NUM\u0001"


def encode(obj: Any, numbers: list[str]) -> str:
    """JSON text of obj, each NUMBER_MARK string replaced by a raw number literal from `numbers` (in order)."""
    text = json.dumps(obj, ensure_ascii=False)
    for number in numbers:
        text = text.replace(json.dumps(NUMBER_MARK, ensure_ascii=False), number, 1)
    return text


def mutate(text: str, rng: random.Random, value: Any = None) -> bytes:
    """One to three mutations of a frame, structural (on the decoded JSON) and/or on its text or bytes."""
    obj = json.loads(text, parse_float=records.Num)
    numbers: list[str] = []
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(paths(obj))
        op = rng.randrange(8)
        if op <= 2:  # swap a value for a hostile one (types swapped, huge/tiny numbers, bad times)
            v = value if value is not None and op == 0 else rng.choice(HOSTILE)
            obj = replace_at(obj, where, v)
        elif op == 3 and where:  # a field or element missing
            obj = remove_at(obj, where)
        elif op == 4:  # a raw number literal (1e400, 1e999999999, 45 digits, ...)
            numbers.append(rng.choice(NUMBER_TEXTS))
            obj = replace_at(obj, where, NUMBER_MARK)
        elif op == 5:  # deep nesting
            depth = rng.choice((3, 50, 2000, 20000))
            nested: Any = "x"
            for _ in range(min(depth, 60)):
                nested = [nested]
            obj = replace_at(obj, where, nested if depth <= 60 else "\u0002DEEP%d\u0002" % depth)
        elif op == 6 and isinstance(obj, dict) and obj.get("data"):  # duplicate an element of a trade frame
            data = obj["data"] if isinstance(obj["data"], list) else [obj["data"]]
            obj = {**obj, "data": data + data[: rng.randint(1, 2)]}
    out = encode(obj, numbers)
    for depth in re.findall("\u0002DEEP([0-9]+)\u0002", out):
        out = out.replace(f'"\u0002DEEP{depth}\u0002"', "[" * int(depth) + "1" + "]" * int(depth), 1)
    if rng.random() < 0.1:  # a duplicated key: the last one wins in every JSON decoder used here
        out = out.replace('"price":', '"price":"oops","price":', 1)
    raw = out.encode("utf-8", "surrogatepass")
    r = rng.random()
    if r < 0.08:
        raw = raw[: rng.randrange(len(raw) + 1)]  # truncated JSON
    elif r < 0.12:
        raw = out.encode("utf-16", "surrogatepass")  # wrong encoding
    elif r < 0.16:
        raw = raw.replace(b'"', b'"\xff', 1)  # invalid UTF-8
    elif r < 0.18:
        raw = b"\xef\xbb\xbf" + raw  # a BOM
    elif r < 0.20:
        raw = out.encode("latin-1", "replace")
    return raw


# ---------------------------------------------------------------------------------------------------------------------
# The producer under test, with Kafka in memory


class MemoryKafka:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: object = None) -> None:
        self.messages.append((key, value))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def producer(api: str) -> session.TradeProducer:
    pairs = V2_PAIRS if api == "v2" else V1_PAIRS
    config = cli.parse_config(["--api", api, *sum((["--pair", p] for p in pairs), [])])
    app = session.TradeProducer(config.session, config.backfill, MemoryKafka(), lambda *a: None)
    app.ledger.resume_from({"ETH/USD": 5})  # exercise the resume bookkeeping too
    return app


def feed(app: session.TradeProducer, raw: bytes) -> None:
    """handle_text as the receive loop calls it; only the protocol's own outcomes may raise (a Kraken error frame
    asks for a reconnect)."""
    try:
        app.frames.handle_text(raw, 1_790_000_000_000_000_000, set())
    except session.Reconnect:
        pass


def check_all(app: session.TradeProducer, api: str) -> None:
    for key, value in app.producer.messages:
        check_record(key, value, api)
    app.producer.messages.clear()


# ---------------------------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_issue_15_frames_are_skipped_and_counted(api):
    app = producer(api)
    for frame in ISSUE_15[api]:
        app.frames.handle_text(frame.encode(), 1_790_000_000_000_000_000, set())
    assert app.producer.messages == []
    assert app.stats.malformed + app.stats.unknown == len(ISSUE_15[api])


@pytest.mark.parametrize("text", [
    "2026-02-30T12:00:00.000000Z", "2026-09-25T25:61:61.000000Z", "2026-09-25T17:48:26.844359+99:99",
    "2026-09-25T17:48:26+14:01", "2026-09-25T17:48:60Z", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999-00:01", "2026-13-01T00:00:00.000000Z", "2026-04-31T00:00:00.000000Z", "",
    "2026-02-29T00:00:00.000000Z", "1900-02-29T00:00:00Z",
])
def test_timestamps_that_are_not_real_are_rejected(text):
    with pytest.raises(records.BadTrade):
        records.iso_from_rfc3339(text)


@pytest.mark.parametrize("text,iso", [
    ("2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999Z"),
    ("2026-09-25T17:48:26.844359-14:00", "2026-09-26T07:48:26.844359Z"),
    ("2026-09-25T17:48:26.8443591+14:00", "2026-09-25T03:48:26.844359Z"),
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
])
def test_real_timestamps_at_the_edges(text, iso):
    assert records.iso_from_rfc3339(text) == iso


@pytest.mark.parametrize("text,want", [
    ("1E-8", "0.00000001"), ("1.5e+3", "1500"), ("1e39", "1" + "0" * 39), ("1e-40", "0." + "0" * 39 + "1"),
    ("1e40", None),
    ("1e400", None), ("1e999999999", None), ("1e-41", None), ("-1.5", None), ("-0.0", None), ("1" * 41, None),
    ("0." + "1" * 41, None), ("1e41", None),
])
def test_decimal_bounds(text, want):
    if want is None:
        with pytest.raises(records.BadTrade):
            records.decimal_text(records.Num(text))
    else:
        assert records.decimal_text(records.Num(text)) == want
    with pytest.raises(records.BadTrade):
        records.decimal_text(10**40)


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_fixed_seed_corpus_never_raises_and_keeps_the_contract(api):
    rng = random.Random(15_000 + (api == "v1"))
    app = producer(api)
    seeds = SEEDS[api]
    for i in range(CORPUS_FRAMES // 2):
        feed(app, mutate(rng.choice(seeds), rng))
        if i % 500 == 0:
            check_all(app, api)
    check_all(app, api)
    assert app.stats.malformed > CORPUS_FRAMES // 20  # the corpus really does hit the checks


def mixed_frame(api: str, rng: random.Random, n_bad: int) -> tuple[str, list[dict]]:
    """A frame of good trades (built by the fake Kraken) with mutated elements between them; the good ones' records."""
    fake = FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=rng.randrange(10**6))
    pair = rng.choice(fake.pairs)
    goods = [fake._new_trade(pair, 1_790_000_000_000_000 + rng.randrange(10**9)) for _ in range(rng.randint(1, 5))]
    texts = [t.v2_json() if api == "v2" else t.v1_json() for t in goods]
    elements = list(texts)
    for _ in range(n_bad):
        seed = json.dumps([json.loads(rng.choice(texts), parse_float=records.Num)])
        bad = mutate(seed, rng).decode("utf-8", "replace")
        try:
            bad_element = json.loads(bad)[0]
        except (ValueError, IndexError, KeyError, TypeError):
            bad_element = bad
        element = json.dumps(bad_element)
        try:
            protocol.load_frame(element)  # element-level junk only: the frame itself must stay JSON for this property
        except (ValueError, RecursionError):
            element = json.dumps({"symbol": ["junk"], "bad": element[:40]})
        elements.insert(rng.randrange(len(elements) + 1), element)
    frame = fake._frame_of(api, pair, elements, "update")
    return frame, [t.record(api) for t in goods]


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_every_good_element_of_a_mixed_frame_is_produced(api):
    rng = random.Random(1500 + (api == "v1"))
    pairs = V2_PAIRS if api == "v2" else V1_PAIRS
    codecs = {native: records.PairCodec(user, native, api) for user, native in pairs.items()}
    for _ in range(2000):
        frame, goods = mixed_frame(api, rng, rng.randint(1, 4))
        kind, _snapshot, produced, _bad = protocol.parse_frame(frame, "2026-01-01T00:00:00.000000Z", codecs, api)
        assert kind == "trades", frame
        got = [check_record(codec.key, value, api) for codec, _, value in produced]
        got_fields = [{f: r[f] for f in ("pair_native", "price", "size", "side", "ord_type", "trade_id", "ts_event")}
                      for r in got]
        it = iter(got_fields)
        assert all(any(g == want for g in it) for want in goods), (frame, goods, got_fields)  # in order


HOSTILE_VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30)
                 | st.floats(allow_nan=False, allow_infinity=False),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=8),
)


@settings(max_examples=1500, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(api=st.sampled_from(["v2", "v1"]), seed=st.integers(0, len(SEEDS["v2"]) * len(SEEDS["v1"])),
       rng=st.randoms(use_true_random=False), value=HOSTILE_VALUES)
def test_hypothesis_mutated_frames_never_raise_and_keep_the_contract(api, seed, rng, value):
    app = producer(api)
    seeds = SEEDS[api]
    feed(app, mutate(seeds[seed % len(seeds)], rng, value))
    check_all(app, api)


def rest_reply(seed: int) -> str:
    """A REST /0/public/Trades reply of the fake Kraken (the format Kraken documents, legacy key included)."""
    fake = FakeKraken(pairs=["BTC/USDT"], rate=0, seed=seed)
    trades = [fake._new_trade("BTC/USDT", 1_790_000_000_000_000 + i) for i in range(1 + seed % 5)]
    return ('{"error":[],"result":{"XBTUSDT":[' + ",".join(t.rest_json() for t in trades)
            + f'],"last":"{trades[-1].ts_ns}"}}}}')


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 50), rng=st.randoms(use_true_random=False), value=HOSTILE_VALUES)
def test_hypothesis_mutated_rest_replies_never_raise_and_keep_the_contract(seed, rng, value):
    """The backfill's input: a reply is either refused as a whole (RestError) or its elements become records that
    keep the contract ("source": "rest") or are skipped (BadTrade), one by one."""
    codec = records.PairCodec("XBT/USDT", "BTC/USDT", "v2")
    try:
        trades, _cursor = rest.parse_trades_reply(mutate(rest_reply(seed), rng, value))
    except rest.RestError:
        return
    for t in trades:
        try:
            _tid, value_bytes = codec.rest_value(t, "2026-01-01T00:00:00.000000Z")
        except records.BadTrade:
            continue
        check_record(codec.key, value_bytes, "v2", source="rest")
