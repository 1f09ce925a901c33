"""Gap bookkeeping: trade ids the topic is missing and the producer still has to fill, shared by the receive loop
(which finds them) and the backfill thread (which fills them).

Two kinds:
  Gap          a range of trade_ids of one pair (API v2) that Kraken's WebSocket never delivered to us (a disconnect
               longer than the 50-trade snapshot, a restart after a long downtime): filled from REST.
  Undelivered  records whose delivery to Kafka finally failed (a broker outage longer than --delivery-timeout): kept
               in memory (librdkafka hands the value back) and produced again once Kafka accepts writes, unless the
               topic holds them already (a timed-out message may still have been written).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Gap:
    pair: str  # as the user typed it (the Kafka key)
    first: int  # first trade_id still missing
    last: int  # last trade_id missing
    since_ns: int  # REST cursor for the next call: just before trade `first`
    detected: float  # time.monotonic() when found
    next_try: float = 0.0
    pages: int = 0  # REST replies applied so far
    filled: int = 0  # trades produced from REST so far
    asked: tuple = field(default=(0, 0))  # the range as first recorded (for the log)

    def __post_init__(self) -> None:
        self.asked = (self.first, self.last)


class GapBook:
    """Open gaps in detection order; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._gaps: list[Gap] = []
        self._lock = threading.Lock()

    def add(self, gap: Gap) -> None:
        with self._lock:
            self._gaps.append(gap)

    def next_due(self, now: float) -> Optional[Gap]:
        """The oldest gap whose retry time has come, or None."""
        with self._lock:
            return next((g for g in self._gaps if g.next_try <= now), None)

    def remove(self, gap: Gap) -> None:
        with self._lock:
            if gap in self._gaps:
                self._gaps.remove(gap)

    def open_ranges(self) -> list[tuple[str, int, int]]:
        with self._lock:
            return [(g.pair, g.first, g.last) for g in self._gaps]

    def __len__(self) -> int:
        return len(self._gaps)


@dataclass
class Failed:
    key: bytes
    value: bytes
    partition: int  # -1 when librdkafka had not chosen one
    timestamp_ms: int  # the record's CreateTime (when it was first produced), 0 if unknown


class UndeliveredBook:
    """Records whose delivery finally failed, waiting to be produced again; safe from any thread."""

    def __init__(self) -> None:
        self._items: list[Failed] = []
        self._lock = threading.Lock()

    def add(self, item: Failed) -> None:
        with self._lock:
            self._items.append(item)

    def take_all(self) -> list[Failed]:
        with self._lock:
            items, self._items = self._items, []
            return items

    def put_back(self, items: list[Failed]) -> None:
        with self._lock:
            self._items[:0] = items

    def __len__(self) -> int:
        return len(self._items)
