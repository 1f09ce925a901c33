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
import time
from dataclasses import dataclass, field
from typing import Optional

# While a pair has open gaps, each record of that pair carries them in this Kafka header (not in the value), so a
# restart after a crash or kill -9 knows which ids were still being filled: "first-last@since_ns@detected_ms;..."
GAP_HEADER = "kraken-open-gaps"
MAX_HEADER_GAPS = 100


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
    detected_ms: int = 0  # wall clock when found (a restart reads the topic back from there)

    def __post_init__(self) -> None:
        self.asked = (self.first, self.last)
        self.detected_ms = self.detected_ms or int(time.time() * 1000)


def encode_gaps(gaps: list[Gap]) -> bytes:
    return ";".join(f"{g.first}-{g.last}@{g.since_ns}@{g.detected_ms}" for g in gaps[:MAX_HEADER_GAPS]).encode()


def decode_gaps(raw: Optional[bytes]) -> list[tuple[int, int, int, int]]:
    """The GAP_HEADER value -> [(first, last, since_ns, detected_ms)]; anything that does not parse is left out."""
    out = []
    for item in (raw or b"").decode("ascii", "replace").split(";"):
        ids, _, rest = item.partition("@")
        first, _, last = ids.partition("-")
        since, _, detected = rest.partition("@")
        if all(x.isdigit() and len(x) <= 20 for x in (first, last, since, detected)) and int(first) <= int(last):
            out.append((int(first), int(last), int(since), int(detected)))
    return out


class GapBook:
    """Open gaps in detection order; every method is safe to call from any thread. `headers` maps a Kafka key (the
    pair) with open gaps to the headers its records carry (read without a lock: each entry is replaced whole)."""

    def __init__(self) -> None:
        self._gaps: list[Gap] = []
        self._lock = threading.Lock()
        self.headers: dict[bytes, list[tuple[str, bytes]]] = {}

    def _refresh(self, pair: str) -> None:
        mine = [g for g in self._gaps if g.pair == pair and g.first <= g.last]
        if mine:
            self.headers[pair.encode("utf-8")] = [(GAP_HEADER, encode_gaps(mine))]
        else:
            self.headers.pop(pair.encode("utf-8"), None)

    def add(self, gap: Gap) -> None:
        with self._lock:
            self._gaps.append(gap)
            self._refresh(gap.pair)

    def advance(self, gap: Gap, first: int) -> None:
        """Ids before `first` are produced (or given up): the gap now starts there."""
        with self._lock:
            gap.first = first
            self._refresh(gap.pair)

    def next_due(self, now: float) -> Optional[Gap]:
        """The oldest gap whose retry time has come, or None."""
        with self._lock:
            return next((g for g in self._gaps if g.next_try <= now), None)

    def remove(self, gap: Gap) -> None:
        with self._lock:
            if gap in self._gaps:
                self._gaps.remove(gap)
            self._refresh(gap.pair)

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
