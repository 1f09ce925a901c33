"""Live 1-minute bars from the topic's trades, with Gold's exact rules: each trade once, as Silver deduplicates, folded
with lakehouse.gold.bars (open/close by (ts_event, trade_id, Kafka position), Decimal sums, VWAP rounded half-even
to 18 places).

Each trade once:
  - API v2 (a trade_id): a trade is (symbol, trade_id); a copy (a reconnect's snapshot, a REST backfill, a restarted
    producer without memory) is skipped. The first copy by Kafka position is kept, as Silver keeps it.
  - API v1 (no trade_id): as Silver does, a trade is its values (symbol, ts_event, price, size, side, ord_type) plus
    its ordinal among identical trades received in one frame (same ts_ingest), counted in Kafka order; a copy
    received in another frame gets the same ordinals and is skipped. (Silver's limit holds here too: two identical
    trades in frames of their own are taken for a trade and its copy.)
Memory stays bounded: a pair's bars, and the ids that recognise its copies, are kept for its newest `keep_minutes`
minutes of trade time; a trade older than that is left to Gold (counted as too_old).

A bar is served only when the book saw all of its minute: from the start of each partition, or from the minute after
the first minute a pair showed (reading from the middle of the topic, that first minute may have begun before).

Pure Python, no I/O: the tail reader (tail.py) feeds it records; the server asks it for bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from lakehouse.gold.bars import MINUTE_US, Bar, minute_us
from lakehouse.page.trades import Trade

DEFAULT_KEEP_MINUTES = 60


@dataclass
class PairBook:
    """One pair's recent live bars and what recognises copies of its trades."""

    bars: dict[int, Bar] = field(default_factory=dict)  # minute -> bar
    ids: dict[int, int] = field(default_factory=dict)  # v2 trade_id -> its minute
    v1_seen: dict[int, set] = field(default_factory=dict)  # minute -> {(values, ordinal)}
    v1_frames: dict[int, dict] = field(default_factory=dict)  # minute -> {(values, ts_ingest): count}
    first_minute: int | None = None  # the first minute this book saw for the pair (possibly begun before)
    newest_minute: int | None = None


class LiveBook:
    """The live bars of every pair seen on the topic."""

    def __init__(self, keep_minutes: int = DEFAULT_KEEP_MINUTES) -> None:
        self.keep_us = keep_minutes * MINUTE_US
        self.pairs: dict[str, PairBook] = {}
        self.from_start: set[int] = set()  # partitions read from their first offset: every minute whole
        self.counts = {"trades": 0, "duplicates": 0, "too_old": 0}
        self.revision = 0  # grows with every change: a cache key for the server

    def reading_from_start(self, partition: int) -> None:
        """The tail reads `partition` from its first record: no minute of it can have begun before."""
        self.from_start.add(partition)

    def add(self, trade: Trade) -> str:
        """Fold a valid trade in; returns "added", "duplicate" or "too_old"."""
        book = self.pairs.setdefault(trade.symbol, PairBook())
        minute = minute_us(trade.ts_event_us)
        if book.newest_minute is not None and minute < book.newest_minute - self.keep_us:
            self.counts["too_old"] += 1
            return "too_old"
        if not self._first_copy(book, trade, minute):
            self.counts["duplicates"] += 1
            return "duplicate"
        if book.first_minute is None:
            book.first_minute = -1 if trade.partition in self.from_start else minute
        partial = Bar.of_trade(trade.symbol, trade.order_key, trade.price, trade.size)
        book.bars[minute] = book.bars[minute].merged(partial) if minute in book.bars else partial
        if book.newest_minute is None or minute > book.newest_minute:
            book.newest_minute = minute
            self._forget_before(book, minute - self.keep_us)
        self.counts["trades"] += 1
        self.revision += 1
        return "added"

    @staticmethod
    def _first_copy(book: PairBook, trade: Trade, minute: int) -> bool:
        """True for the first copy of a trade (and remember it), False for a copy of one the book holds."""
        if trade.trade_id is not None:
            if trade.trade_id in book.ids:
                return False
            book.ids[trade.trade_id] = minute
            return True
        values = (trade.ts_event_us, trade.price, trade.size, trade.side, trade.ord_type)
        frames = book.v1_frames.setdefault(minute, {})
        ordinal = frames.get((values, trade.ts_ingest_us), 0) + 1
        frames[(values, trade.ts_ingest_us)] = ordinal
        seen = book.v1_seen.setdefault(minute, set())
        if (values, ordinal) in seen:
            return False
        seen.add((values, ordinal))
        return True

    @staticmethod
    def _forget_before(book: PairBook, cutoff: int) -> None:
        for minute in [m for m in book.bars if m < cutoff]:
            del book.bars[minute]
        for store in (book.v1_seen, book.v1_frames):
            for minute in [m for m in store if m < cutoff]:
                del store[minute]
        if len(book.ids) > 2 * len(book.bars) + 1000:  # ids of forgotten minutes, pruned now and then
            book.ids = {i: m for i, m in book.ids.items() if m >= cutoff}

    def symbols(self) -> list[str]:
        return sorted(self.pairs)

    def bars(self, symbol: str) -> dict[int, Bar]:
        """{minute: bar} of the pair's minutes the book saw whole (the module docstring)."""
        book = self.pairs.get(symbol)
        if book is None:
            return {}
        return {m: b for m, b in book.bars.items() if book.first_minute is not None and m > book.first_minute}

    def add_all(self, trades: Iterable[Trade]) -> None:
        for trade in trades:
            self.add(trade)
