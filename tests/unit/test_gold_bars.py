"""lakehouse.gold.bars: folding partial bars into Gold's bars, against an independent Decimal/Fraction reference.

The property: trades split at random into Silver versions, the versions into Gold writes, some writes redone (a batch
Spark redoes after a crash) and the writer's memory sometimes lost (a restart); Gold's bars then equal the bars of
all the trades, each once: open/close by (ts_event, trade_id, Kafka position) with many ties, exact VWAP, the open bar
each pair's newest minute, revision the number of later writes that added trades to the bar.
"""

from __future__ import annotations

from decimal import Context, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.gold import bars as B

# the largest decimal(38,18), limbs of every position in use, the smallest step, an everyday price
EXTREMES = [Decimal("99999999999999999999.999999999999999999"), Decimal("1000000000000000000.5"), Decimal("0.000000000000000001"), Decimal("83744.3")]
T0 = 1_767_225_600_000_000  # 2026-01-01 in us

trade_st = st.tuples(
    st.sampled_from(["XBT/USDT", "ETH/USD"]),
    st.integers(0, 3),                      # minute
    st.integers(0, 2),                      # microsecond bucket within the minute (many ties)
    st.one_of(st.none(), st.integers(1, 9)),  # trade_id or None (v1)
    st.integers(0, 2),                      # partition
    st.one_of(st.decimals(min_value=Decimal("0.000000000000000001"), max_value=Decimal("99999999999999999999"), places=18, allow_nan=False, allow_infinity=False), st.sampled_from(EXTREMES)),
    st.one_of(st.decimals(min_value=Decimal("0.000000000000000001"), max_value=Decimal("99999999999999999999"), places=18, allow_nan=False, allow_infinity=False), st.sampled_from(EXTREMES)),
)

def reference(trades: list[dict]) -> dict:
    """(symbol, minute) -> (open, high, low, close, volume, vwap, trade_count), computed without lakehouse.gold.bars."""
    groups = {}
    for t in trades:
        groups.setdefault((t["symbol"], B.minute_us(t["key"][0])), []).append(t)
    out = {}
    for key, members in groups.items():
        ordered = sorted(members, key=lambda t: (t["key"][0], -1 if t["key"][1] is None else t["key"][1], t["key"][2], t["key"][3]))
        with localcontext(Context(prec=200)):
            volume = sum((t["size"] for t in members), Decimal(0))
        notional = sum(Fraction(t["price"]) * Fraction(t["size"]) for t in members)
        vwap = Decimal(round(notional / Fraction(volume) * 10 ** 18)).scaleb(-18, context=Context(prec=200))
        out[key] = (ordered[0]["price"], max(t["price"] for t in members), min(t["price"] for t in members),
                    ordered[-1]["price"], volume, vwap, len(members))
    return out

@settings(max_examples=300, deadline=None)
@given(st.lists(trade_st, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_folded_bars_equal_the_bars_of_all_trades(raw, rng):
    trades = []
    for i, (sym, minute, bucket, tid, part, price, size) in enumerate(raw):
        ts = T0 + minute * B.MINUTE_US + bucket
        key = (ts, tid, part, i)   # offset i unique
        trades.append({"symbol": sym, "key": key, "price": price, "size": size})
    # versions: split trades into consecutive Silver versions
    rng.shuffle(trades)
    versions, v = [], 0
    i = 0
    while i < len(trades):
        n = rng.randint(1, 6); versions.append((v, trades[i:i + n])); i += n; v += 1
    # Gold writes: groups of consecutive versions; some writes redone (applied twice)
    gold = {}  # key -> GoldBar  (the "table")
    writes_adding = {}  # bar key -> number of writes that added trades to it
    book = B.BarBook()
    j = 0
    while j < len(versions):
        n = rng.randint(1, 3)
        chunk = versions[j:j + n]
        partials = {}
        for ver, ts_ in chunk:
            for t in ts_:
                b = B.Bar.of_trade(t["symbol"], t["key"], t["price"], t["size"], ver)
                k = (b.key, ver)
                partials[k] = partials[k].merged(b) if k in partials else b
        for key in {k for k, _ in partials}:
            writes_adding[key] = writes_adding.get(key, 0) + 1
        for attempt in range(2 if rng.random() < 0.3 else 1):
            if rng.random() < 0.3:
                book.forget()
            missing, pairs = book.missing(k for k, _ in partials)
            book.load([g for k, g in gold.items() if k in missing or (g.is_open and k[0] in pairs)], missing, pairs)
            rows = book.apply(partials.values())
            for r in rows: gold[r.bar.key] = r
            book.commit(rows)
        j += n
    ref = reference(trades)
    assert {k: g.bar.values() for k, g in gold.items()} == ref
    newest = {}
    for (s, m) in ref: newest[s] = max(newest.get(s, m), m)
    assert {k for k, g in gold.items() if g.is_open} == set(newest.items())
    assert {k: g.revision for k, g in gold.items()} == {k: n - 1 for k, n in writes_adding.items()}


def test_a_stored_bar_is_revised_only_when_its_values_change_and_closing_it_is_no_revision():
    book = B.BarBook()
    minute = T0
    first = B.Bar.of_trade("XBT/USDT", (minute + 1, 1, 0, 0), Decimal("10"), Decimal("1"), silver_version=1)
    book.load([], [first.key], ["XBT/USDT"])
    rows = book.apply([first])
    assert [(r.bar.values(), r.is_open, r.revision) for r in rows] == [(first.values(), True, 0)]
    book.commit(rows)
    # the same version again (a redone write): nothing to write
    assert book.apply([first]) == []
    # a later minute: the new bar is open, the old one closed with its values and revision unchanged
    later = B.Bar.of_trade("XBT/USDT", (minute + B.MINUTE_US, 2, 0, 1), Decimal("11"), Decimal("1"), 2)
    book.load([], [later.key], [])
    rows = {r.bar.key: r for r in book.apply([later])}
    assert rows[first.key].bar == first and not rows[first.key].is_open and rows[first.key].revision == 0
    assert rows[later.key].is_open and rows[later.key].revision == 0
    book.commit(rows.values())
    # a late trade into the closed bar: a revision, the bar stays closed
    late = B.Bar.of_trade("XBT/USDT", (minute + 2, 3, 0, 2), Decimal("9"), Decimal("2"), 3)
    book.load([rows[first.key]], [first.key], [])
    (restated,) = book.apply([late])
    assert (restated.bar.trade_count, restated.bar.low, restated.is_open, restated.revision) == (2, 9, False, 1)


def test_a_minute_after_the_known_open_bar_is_not_read_from_gold_and_an_earlier_one_is():
    book = B.BarBook()
    assert book.missing([("XBT/USDT", T0)]) == ({("XBT/USDT", T0)}, {"XBT/USDT"})  # nothing known: read both
    book.load([], [], ["XBT/USDT"])  # the pair has no bar in Gold: none of its minutes is there
    assert book.missing([("XBT/USDT", T0), ("XBT/USDT", T0 - B.MINUTE_US)]) == (set(), set())
    bar = B.Bar.of_trade("XBT/USDT", (T0 + 1, 1, 0, 0), Decimal("10"), Decimal("1"), silver_version=1)
    book.commit(book.apply([bar]))
    later, earlier = ("XBT/USDT", T0 + B.MINUTE_US), ("XBT/USDT", T0 - B.MINUTE_US)
    assert book.missing([later, earlier, bar.key]) == ({earlier}, set())
    assert book.missing([("ETH/USD", T0)]) == ({("ETH/USD", T0)}, {"ETH/USD"})  # another pair: not known
    rows = book.apply([B.Bar.of_trade("XBT/USDT", (later[1] + 5, 2, 0, 1), Decimal("11"), Decimal("1"), 2)])
    assert sorted((r.bar.window_start_us, r.is_open, r.revision) for r in rows) == [(T0, False, 0),
                                                                                   (later[1], True, 0)]


def test_bars_must_be_loaded_before_they_are_folded():
    bar = B.Bar.of_trade("XBT/USDT", (T0, 1, 0, 0), Decimal("1"), Decimal("1"), 0)
    with pytest.raises(KeyError, match="load these bars first"):
        B.BarBook().apply([bar])
    with pytest.raises(ValueError, match="cannot fold"):
        bar.merged(B.Bar.of_trade("ETH/USD", (T0, 1, 0, 0), Decimal("1"), Decimal("1"), 0))


def test_minutes_floor_before_1970_and_micros_round_trip():
    assert B.minute_us(-1) == -B.MINUTE_US and B.minute_us(B.MINUTE_US + 5) == B.MINUTE_US
    moment = B.from_micros(T0 + 123_456)
    assert B.to_micros(moment) == T0 + 123_456 and moment.tzinfo is not None


def test_a_null_trade_id_sorts_before_id_zero_whatever_the_kafka_position():
    # an API v1 trade (no id) and an API v2 trade with id 0 at the same microsecond: the v1 one opens the bar
    v1, v2 = (T0, None, 2, 9), (T0, 0, 0, 0)
    assert B.order_tuple(v1) < B.order_tuple(v2)
    early = B.Bar.of_trade("XBT/USDT", v1, Decimal("10"), Decimal("1"), 1)
    late = B.Bar.of_trade("XBT/USDT", v2, Decimal("20"), Decimal("1"), 2)
    assert (late.merged(early).open, late.merged(early).close) == (10, 20)


def test_vwap_of_a_negative_volume_keeps_the_sign_rule():
    # not a trade Silver takes (sizes have no sign), but the arithmetic holds for any sign: 2 * -3 / -3 = 2, and a
    # half rounds to even whichever sign the volume has
    terms = B.notional_terms(B.decimal_limbs(Decimal("2")), B.decimal_limbs(Decimal("-3")))
    assert B.vwap_from_terms(terms, Decimal("-3")) == Decimal("2")
    half = B.notional_terms(B.decimal_limbs(Decimal("0.000000000000000001")), B.decimal_limbs(Decimal("1")))
    assert B.vwap_from_terms(half, Decimal("-2")) == 0  # -0.5e-18 rounds half-even to 0, not -1e-18
    third = B.notional_terms(B.decimal_limbs(Decimal("0.000000000000000002")), B.decimal_limbs(Decimal("-1")))
    assert B.vwap_from_terms(third, Decimal("-3")) == Decimal("0.000000000000000001")  # 2/3 e-18 -> 1e-18


def test_apply_refuses_a_missing_bar_or_an_unknown_open_bar_alone():
    book = B.BarBook()
    book.load([], [], ["XBT/USDT"])  # the pair is known, with no bar
    known = B.Bar.of_trade("XBT/USDT", (T0, 1, 0, 0), Decimal("1"), Decimal("1"), 1)
    book.commit(book.apply([known]))
    earlier = B.Bar.of_trade("XBT/USDT", (T0 - B.MINUTE_US, 2, 0, 1), Decimal("1"), Decimal("1"), 2)
    with pytest.raises(KeyError, match=r"load these bars first: \[\('XBT/USDT', \d+\)\], open bars of \[\]"):
        book.apply([earlier])  # a bar before the open one, not read: only the bar is missing
    book.load([], [("ETH/USD", T0)], [])  # the bar read (absent), the pair's open bar not
    with pytest.raises(KeyError, match=r"load these bars first: \[\], open bars of \['ETH/USD'\]"):
        book.apply([B.Bar.of_trade("ETH/USD", (T0, 1, 0, 0), Decimal("1"), Decimal("1"), 1)])


def test_a_replayed_partial_of_the_open_bar_closed_by_a_later_minute_is_no_revision():
    book = B.BarBook()
    book.load([], [], ["XBT/USDT"])
    opened = B.Bar.of_trade("XBT/USDT", (T0 + 1, 1, 0, 0), Decimal("10"), Decimal("1"), 5)
    book.commit(book.apply([opened]))
    later = B.Bar.of_trade("XBT/USDT", (T0 + B.MINUTE_US, 2, 0, 1), Decimal("11"), Decimal("1"), 6)
    rows = {r.bar.key: r for r in book.apply([opened, later])}  # version 5 again (a redone batch), and a new minute
    assert (rows[opened.key].bar, rows[opened.key].is_open, rows[opened.key].revision) == (opened, False, 0)


def test_the_book_keeps_only_each_pairs_open_bar_between_writes():
    book = B.BarBook()
    book.load([], [("XBT/USDT", T0 - B.MINUTE_US)], ["XBT/USDT", "ETH/USD"])  # a bar read and found absent
    bars = [B.Bar.of_trade(pair, (T0 + m * B.MINUTE_US, 1, 0, m), Decimal("1"), Decimal("1"), 1)
            for pair in ("XBT/USDT", "ETH/USD") for m in (0, 1)]
    book.commit(book.apply(bars))
    assert sorted(book.bars) == [("ETH/USD", T0 + B.MINUTE_US), ("XBT/USDT", T0 + B.MINUTE_US)]


def test_the_refusal_names_at_most_five_bars_and_five_pairs():
    pairs = [f"P{i}/USD" for i in range(7)]
    with pytest.raises(KeyError) as refused:
        B.BarBook().apply([B.Bar.of_trade(p, (T0, 1, 0, 0), Decimal("1"), Decimal("1"), 0) for p in pairs])
    assert str(refused.value) == repr(f"load these bars first: {[(p, T0) for p in pairs[:5]]}, open bars of "
                                      f"{pairs[:5]}")
