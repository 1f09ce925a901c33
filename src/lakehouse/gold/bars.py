"""Exact 1-minute bars in plain Python: what a bar keeps so that more trades can be folded into it, and the finishing
arithmetic (VWAP). No Spark here: the Gold writer folds the partial bars Spark computes from Silver's new trades into
the bars it holds, and the live page folds trades read from the topic, with the same rules.

A bar is the trades of one pair in one UTC minute of ts_event:
  open / close   the price of its first / last trade by the order key (ts_event, trade_id, partition, offset): ties
                 on ts_event go by trade_id, and where trade_id is null (API v1) by Kafka position; a null trade_id
                 sorts before any id, as in Spark's ordering of structs
  high / low     max / min price; volume the sum of sizes; trade_count
  limbs          the nine sums that make sum(price * size) exact (notional_terms): folding adds them
  vwap           sum(price * size) / volume, rounded half-even to 18 places, from the limbs
  silver_version the newest Silver table version whose trades are in the bar: a partial bar of a version the bar
                 already holds is not folded in again (what makes Gold exactly once without transaction ids)

Folding is associative and commutative: a bar folded from any split of its trades into partial bars, in any order,
equals the bar of all of them (tests/unit/test_gold_bars.py checks this against a Decimal reference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Iterable, Optional

SCALE = 18  # decimal places of Silver's price and size, and of Gold's vwap
LIMB_BASE = 10 ** 9  # limbs below 10^9 make every limb product < 10^18 and a sum of five < 9.2 * 10^18 (a BIGINT)
LIMB_COUNT = 5  # 18 fraction digits = 2 limbs, 20 integer digits = 3 limbs
NOTIONAL_TERMS = 2 * LIMB_COUNT - 1  # sum_k of limb products p_i * s_j with i + j = k
EXACT = Context(prec=200)  # Decimal's default context keeps only 28 digits; decimal(38,18) needs 38
MINUTE_US = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# (ts_event in microseconds since the epoch, trade_id or None, Kafka partition, Kafka offset)
OrderKey = tuple[int, Optional[int], int, int]


# ---------------------------------------------------------------------------------------------------------------------
# Exact arithmetic


def unscaled_18(value: Decimal) -> int:
    """value * 10^18 as an exact integer (value has at most 18 decimal places, as decimal(38,18) does)."""
    scaled = Decimal(value).scaleb(SCALE, context=EXACT)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {SCALE} decimal places")
    return int(scaled)


def decimal_limbs(value: Decimal) -> list[int]:
    """The base-10^9 limbs (least significant first) of value's unscaled integer at scale 18, truncating like
    Spark's % and div, so sum(limb * 10^(9k)) == value * 10^18 for any sign."""
    unscaled = unscaled_18(value)
    sign, magnitude = (-1 if unscaled < 0 else 1), abs(unscaled)
    limbs = []
    for _ in range(LIMB_COUNT):
        magnitude, limb = divmod(magnitude, LIMB_BASE)
        limbs.append(sign * limb)
    return limbs


def notional_terms(price_limbs: list[int], size_limbs: list[int]) -> list[int]:
    """The limb convolution of one trade: term k = sum of price_limbs[i] * size_limbs[j] with i + j = k."""
    return [sum(price_limbs[i] * size_limbs[k - i] for i in range(LIMB_COUNT) if 0 <= k - i < LIMB_COUNT)
            for k in range(NOTIONAL_TERMS)]


def vwap_from_terms(term_sums: Iterable[object], volume: Decimal | None) -> Decimal | None:
    """VWAP = sum(price * size) / volume, rounded half-even to 18 decimal places, from the summed limb terms.

    sum(price * size) = sum_k term_sums[k] * 10^(9k) / 10^36 and volume = V / 10^18, so vwap * 10^18 = T / V with
    T = sum_k term_sums[k] * 10^(9k): one exact integer division, rounded half-even. None when volume is 0 or null.
    """
    sums = list(term_sums)
    if volume is None or volume == 0 or any(s is None for s in sums):
        return None
    total = sum(int(s) * LIMB_BASE ** k for k, s in enumerate(sums))
    denominator = unscaled_18(volume)
    if denominator < 0:
        total, denominator = -total, -denominator
    quotient, remainder = divmod(total, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return Decimal(quotient).scaleb(-SCALE, context=EXACT)


# ---------------------------------------------------------------------------------------------------------------------
# Order keys and minutes


def order_tuple(key: OrderKey) -> tuple:
    """A key as a tuple Python compares like Spark compares the struct: a null trade_id first."""
    ts_us, trade_id, partition, offset = key
    return ts_us, (0, 0) if trade_id is None else (1, trade_id), partition, offset


def minute_us(ts_us: int) -> int:
    """The start of the UTC minute holding ts_us (microseconds since the epoch; floor also before 1970)."""
    return ts_us - ts_us % MINUTE_US


def to_micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact: no float)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """Microseconds since the epoch (Spark's unix_micros) -> an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


# ---------------------------------------------------------------------------------------------------------------------
# Bars


@dataclass(frozen=True)
class Bar:
    """One pair's trades of one minute (or a part of them: a partial bar), with what folding more trades needs."""

    symbol: str
    window_start_us: int
    open: Decimal
    open_key: OrderKey
    high: Decimal
    low: Decimal
    close: Decimal
    close_key: OrderKey
    volume: Decimal
    trade_count: int
    limbs: tuple[int, ...]
    silver_version: int = -1

    @classmethod
    def of_trade(cls, symbol: str, key: OrderKey, price: Decimal, size: Decimal, silver_version: int = -1) -> "Bar":
        terms = notional_terms(decimal_limbs(price), decimal_limbs(size))
        return cls(symbol, minute_us(key[0]), price, key, price, price, price, key, size, 1, tuple(terms),
                   silver_version)

    @property
    def key(self) -> tuple[str, int]:
        return self.symbol, self.window_start_us

    @property
    def window_start(self) -> datetime:
        return from_micros(self.window_start_us)

    @property
    def window_end(self) -> datetime:
        return from_micros(self.window_start_us + MINUTE_US)

    @property
    def bar_date(self) -> date:
        return self.window_start.date()

    @property
    def vwap(self) -> Decimal | None:
        return vwap_from_terms(self.limbs, self.volume)

    def values(self) -> tuple:
        """What Gold shows of the bar: (open, high, low, close, volume, vwap, trade_count); a change is a revision."""
        return self.open, self.high, self.low, self.close, self.volume, self.vwap, self.trade_count

    def merged(self, other: "Bar") -> "Bar":
        """This bar with the trades of `other` (the same pair and minute, disjoint trades) folded in."""
        if other.key != self.key:
            raise ValueError(f"cannot fold bar {other.key} into bar {self.key}")
        first, last = (other, self) if order_tuple(other.open_key) < order_tuple(self.open_key) else (self, other)
        late = other if order_tuple(other.close_key) > order_tuple(self.close_key) else self
        return Bar(self.symbol, self.window_start_us, first.open, first.open_key, max(self.high, other.high),
                   min(self.low, other.low), late.close, late.close_key, EXACT.add(self.volume, other.volume),
                   self.trade_count + other.trade_count, tuple(a + b for a, b in zip(self.limbs, other.limbs)),
                   max(self.silver_version, other.silver_version))


def fold(bar: Bar | None, partials: Iterable[Bar]) -> Bar | None:
    """`bar` with each partial bar of a newer Silver version than the bar holds folded in, oldest version first.

    A partial of a version the bar already holds (a redone write, a replayed change feed) is skipped: folding it again
    would count its trades twice. Partials of one bar carry distinct versions (one partial per bar and version)."""
    for partial in sorted(partials, key=lambda p: p.silver_version):
        if bar is None:
            bar = partial
        elif partial.silver_version > bar.silver_version:
            bar = bar.merged(partial)
    return bar


@dataclass(frozen=True)
class GoldBar:
    """A bar as Gold stores it: the bar, whether it is its pair's newest minute, and how often its values changed."""

    bar: Bar
    is_open: bool
    revision: int


class BarBook:
    """The bars a single Gold writer holds between its writes, and the rule that turns new partial bars into the rows
    to write: folded bars (revision + 1 when a stored bar's values change), and the pair's previously open bar closed
    when a later minute appears. The caller loads every bar and open bar it needs first (missing(), load()), writes
    the rows, then keeps them (commit()). Between writes the book keeps only each pair's open bar."""

    def __init__(self) -> None:
        self.bars: dict[tuple[str, int], Optional[GoldBar]] = {}  # None: known not to be in Gold
        self.open_minute: dict[str, Optional[int]] = {}  # pair -> its open bar's minute; None: the pair has no bar yet

    def missing(self, keys: Iterable[tuple[str, int]]) -> tuple[set[tuple[str, int]], set[str]]:
        """(bars not held, pairs whose open bar is not known): what to read from Gold before apply(). A minute after
        its pair's known open bar is not read: the open bar is the pair's newest in Gold (the one writer keeps it so),
        so a later one is a new bar. Live, that is every batch that starts a minute: no Gold read for it."""
        keys = set(keys)
        return ({k for k in keys if k not in self.bars and not self.is_new(k)},
                {s for s, _ in keys if s not in self.open_minute})

    def is_new(self, key: tuple[str, int]) -> bool:
        """The bar is known not to be in Gold: its minute is after its pair's open bar, or the pair has no bar."""
        symbol, minute = key
        if symbol not in self.open_minute:
            return False
        open_minute = self.open_minute[symbol]
        return open_minute is None or minute > open_minute

    def load(self, stored: Iterable[GoldBar], keys_read: Iterable[tuple[str, int]], pairs_read: Iterable[str]) -> None:
        """Bars read from Gold: those of `keys_read` that exist, and the open bars of `pairs_read` (a key or pair
        without a row has no bar yet)."""
        for key in keys_read:
            self.bars.setdefault(key, None)
        for gold_bar in stored:
            self.bars[gold_bar.bar.key] = gold_bar
            if gold_bar.is_open:
                self.open_minute[gold_bar.bar.symbol] = gold_bar.bar.window_start_us
        for pair in pairs_read:
            self.open_minute.setdefault(pair, None)

    def apply(self, partials: Iterable[Bar]) -> list[GoldBar]:
        """The Gold rows that folding `partials` changes (their bars, and open bars they close), not yet kept."""
        by_key: dict[tuple[str, int], list[Bar]] = {}
        for partial in partials:
            by_key.setdefault(partial.key, []).append(partial)
        missing, pairs = self.missing(by_key)
        if missing or pairs:
            raise KeyError(f"load these bars first: {sorted(missing)[:5]}, open bars of {sorted(pairs)[:5]}")
        open_minute = dict(self.open_minute)
        for symbol, minute in by_key:
            if open_minute[symbol] is None or minute > open_minute[symbol]:
                open_minute[symbol] = minute
        rows: dict[tuple[str, int], GoldBar] = {}
        for key, group in by_key.items():
            stored = self.bars.get(key)
            bar = fold(stored.bar if stored else None, group)
            is_open = key[1] == open_minute[key[0]]
            if stored is None:
                rows[key] = GoldBar(bar, is_open, 0)
            elif bar is not stored.bar or is_open != stored.is_open:
                changed = bar.values() != stored.bar.values()
                rows[key] = GoldBar(bar, is_open, stored.revision + (1 if changed else 0))
        for symbol, minute in self.open_minute.items():
            if minute is not None and open_minute[symbol] != minute and (symbol, minute) not in rows:
                rows[(symbol, minute)] = replace(self.bars[(symbol, minute)], is_open=False)
        return list(rows.values())

    def commit(self, written: Iterable[GoldBar]) -> None:
        """Keep what was written; then forget every bar but each pair's open one (memory stays bounded)."""
        for gold_bar in written:
            self.bars[gold_bar.bar.key] = gold_bar
            if gold_bar.is_open:
                self.open_minute[gold_bar.bar.symbol] = gold_bar.bar.window_start_us
        self.bars = {k: v for k, v in self.bars.items() if v is not None and self.open_minute.get(k[0]) == k[1]}

    def forget(self) -> None:
        """After a failed write: nothing held can be trusted; read again."""
        self.bars.clear()
        self.open_minute.clear()
