"""Which trades were produced, per pair: what makes a reconnect neither double nor lose a trade.

API v2 (trades have ids): a trade_id not above the pair's last produced one is a duplicate (a snapshot's overlap) and
is skipped; one more than one past it opens a gap, counted, logged and, with backfill on, handed to the backfill
thread (gaps.GapBook). At start the last ids come from the topic (resume.py); the first snapshot checks them.
API v1 (no ids): right after a resubscribe, trades not newer than the last produced one are skipped.

The receive loop (session.py) calls v2_trades/v1_trades with each frame's parsed trades; `produce(key, value)` hands
one record to Kafka (delivery.py).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

from lakehouse.producer.backfill import REFILL_MARGIN_MS
from lakehouse.producer.gaps import Gap, GapBook
from lakehouse.producer.records import PairCodec, epoch_ns_from_iso

log = logging.getLogger(__name__)


class TradeLedger:
    """The per-pair memory of produced trades; `codecs` maps each native pair to its codec."""

    def __init__(self, codecs: dict[str, PairCodec], produce: Callable[[bytes, bytes], None], stats: Any,
                 gaps: GapBook, backfill: bool) -> None:
        self.codecs, self.produce, self.stats, self.gaps = codecs, produce, stats, gaps
        self.backfill = backfill  # gaps are queued for REST (else only counted and logged)
        self.gaps_by_pair: dict[str, list[int]] = {c.user_pair: [0, 0] for c in codecs.values()}
        self.last_id: dict[str, int] = {}  # v2: last produced trade_id per native pair
        self.last_value: dict[str, bytes] = {}  # v2: the last produced value per native pair (a gap's REST cursor)
        self.resumed: dict[str, int] = {}  # v2: trade_id read back from the topic, until the pair's first snapshot
        self.resume_times: dict[str, Any] = {}  # v2: ts_event of the resume point per native pair
        self.v1_guard: dict[str, tuple] = {}  # v1: (last time, rows at that time) to drop resubscribe overlap
        self.v1_last: dict[str, tuple] = {}

    # -- start-up: what the topic already holds -------------------------------------------------

    def resume_from(self, points: dict[str, int], times: Optional[dict[str, Any]] = None) -> None:
        """Seed the last produced trade_id per pair (user spelling -> id) with what the topic already holds, and
        its ts_event (`times`, user spelling -> text), the REST cursor of a gap found at start-up."""
        for codec in self.codecs.values():
            tid = points.get(codec.user_pair)
            if tid is not None:
                self.last_id[codec.native] = tid
                self.resumed[codec.native] = tid
                if times and codec.user_pair in times:
                    self.resume_times[codec.native] = times[codec.user_pair]

    def restore_gaps(self, open_gaps: dict[str, list], present: Callable[..., set]) -> None:
        """Gaps a previous run was still filling when it stopped (read from its newest record's header, see
        gaps.GAP_HEADER): the ids the topic holds since each gap was found are done; the rest are filled again.
        present(pair, since_ms, first, last) -> the trade_ids of first..last in the topic."""
        for pair, ranges in open_gaps.items():
            if pair not in {c.user_pair for c in self.codecs.values()}:
                continue
            for first, last, since_ns, detected_ms in ranges:
                done = present(pair, detected_ms - REFILL_MARGIN_MS, first, last)
                todo = [i for i in range(first, last + 1) if i not in done]
                log.warning("resume: %s had trade_ids %d..%d still to fill when the last run stopped: %d in the "
                            "topic, %d to fill from REST", pair, first, last, len(done), len(todo))
                for a, b in id_ranges(todo):
                    self.gaps.add(Gap(pair, a, b, since_ns, time.monotonic()))

    def check_resumed(self, records: list) -> None:
        """First snapshot after a resume: the newest trade Kraken has cannot be older than one we produced.

        If it is, the topic's ids come from another id sequence (e.g. an earlier run against the fake Kraken):
        forget the resume point rather than skip every trade until Kraken's ids catch up.
        """
        newest: dict[str, int] = {}
        for codec, tid, _ in records:
            newest[codec.native] = max(tid, newest.get(codec.native, tid))
        for native, tid in newest.items():
            seed = self.resumed.pop(native, None)
            if seed is not None and tid < seed and self.last_id.get(native) == seed:
                del self.last_id[native]
                self.resume_times.pop(native, None)
                log.warning("resume point of %s (trade_id %d, read from the topic) is ahead of Kraken's newest "
                            "trade_id %d: ignored, producing the snapshot as if started without memory",
                            self.codecs[native].user_pair, seed, tid)

    # -- API v2: by trade_id ---------------------------------------------------------------------

    def v2_trades(self, records: list, snapshot: bool = False) -> None:
        """Produce in order; skip trade_ids already produced; count a jump in trade_id as a gap."""
        if snapshot and self.resumed:
            self.check_resumed(records)
        last_id, last_value, produce, stats = self.last_id, self.last_value, self.produce, self.stats
        codec, last, last_val = None, None, None
        for c, tid, value in records:
            if c is not codec:
                if codec is not None and last is not None:
                    last_id[codec.native], last_value[codec.native] = last, last_val
                codec, last, last_val = c, last_id.get(c.native), last_value.get(c.native)
            if last is not None:
                if tid <= last:
                    stats.dups += 1
                    continue
                if tid != last + 1:
                    self.record_gap(codec, last + 1, tid - 1, last_val, value)
            produce(codec.key, value)
            last, last_val = tid, value
        if codec is not None and last is not None:
            last_id[codec.native], last_value[codec.native] = last, last_val

    def record_gap(self, codec: PairCodec, first: int, last: int, before: Optional[bytes] = None,
                   after: Optional[bytes] = None) -> None:
        """Count and log trade_ids first..last as missing; with backfill on, queue them for REST. `before`/`after`:
        the values of the trades produced just before and just after the gap (for REST's time cursor)."""
        n = last - first + 1
        self.stats.gaps += 1
        self.stats.missing += n
        g = self.gaps_by_pair[codec.user_pair]
        g[0] += 1
        g[1] += n
        log.warning("gap on %s: trade_ids %d..%d missing (%d trades)%s", codec.user_pair, first, last, n,
                    ": filling from REST" if self.backfill else "")
        if self.backfill:
            since = self.gap_cursor(codec.native, before, after)
            self.gaps.add(Gap(codec.user_pair, first, last, since, time.monotonic()))

    def gap_cursor(self, native: str, before: Optional[bytes], after: Optional[bytes]) -> int:
        """REST `since` (ns) for a gap: 1 µs before the last trade produced ahead of it (so that trade and any
        sharing its timestamp come back, and are skipped by id); an hour before the trade after it if unknown."""
        try:
            ts = json.loads(before)["ts_event"] if before is not None else self.resume_times.get(native)
            return epoch_ns_from_iso(ts) - 1000
        except (TypeError, ValueError, KeyError, IndexError):
            return epoch_ns_from_iso(json.loads(after)["ts_event"]) - 3600 * 10**9 if after else 0

    # -- API v1: no ids ----------------------------------------------------------------------------

    def v1_trades(self, records: list) -> None:
        """v1 has no ids: right after a resubscribe, skip trades not newer than the last produced one
        (same time: only rows identical to ones already produced at that time). Heuristic by necessity."""
        for codec, row, value in records:
            native = codec.native
            tkey = _v1_time_key(row[0])
            guard = self.v1_guard.get(native)
            if guard is not None:
                if tkey < guard[0] or (tkey == guard[0] and row in guard[1]):
                    if tkey == guard[0]:
                        guard[1].remove(row)
                    self.stats.dups += 1
                    continue
                del self.v1_guard[native]
            self.produce(codec.key, value)
            last = self.v1_last.get(native)
            if last is not None and last[0] == tkey:
                last[1].append(row)
            else:
                self.v1_last[native] = (tkey, [row])

    def v1_resubscribed(self, native: str) -> None:
        """A v1 subscription acked again (a reconnect): guard against the trades already produced coming back."""
        if native in self.v1_last:
            tkey, rows = self.v1_last[native]
            self.v1_guard[native] = (tkey, list(rows))


def _v1_time_key(ts: str) -> tuple:
    sec, _, frac = ts.partition(".")
    return (int(sec), (frac + "000000")[:6])


def id_ranges(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids -> [(first, last)] of consecutive runs: [1, 2, 3, 7, 9, 10] -> [(1, 3), (7, 7), (9, 10)]."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
