"""The backfill thread: fills trade-id gaps from Kraken's REST trades and produces undelivered records again, while
the receive loop keeps producing live trades.

Gaps (API v2): at most one REST call per --rest-interval seconds (Kraken's public limit is about one a second),
starting just before the gap's first trade (since = the time of the last trade produced before it); each page's
trades inside the gap are produced with "source":"rest", in trade_id order, until the gap is closed. A rate-limit
error (`EAPI:Rate limit exceeded`), an HTTP error or a timeout backs off (as reconnects do: --backoff-initial doubling
to --backoff-max, with jitter, never under two --rest-interval) and tries again; a page with nothing new yet is tried
again a little later. What REST cannot give is logged and counted (`unfillable`): ids older than REST's history, ids
REST skips, and a whole gap still open --backfill-give-up seconds after it was found (REST down that long). While a
pair has open gaps its records name them in a Kafka header (gaps.GAP_HEADER), so a restart after a crash finishes
them (ledger.TradeLedger.restore_gaps).

Undelivered records (delivery failed after --delivery-timeout): once Kafka accepts writes again (a delivery
succeeded after the last failure), the topic is read back from the records' own timestamps (minus a margin) and
only the values it does not hold are produced again (a timed-out message may still have been written), so each
trade ends in the topic once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable

from lakehouse.producer.config import BackfillConfig
from lakehouse.producer.gaps import Failed, Gap, GapBook, UndeliveredBook
from lakehouse.producer.records import BadTrade, PairCodec, iso_now, rest_pair_name, short
from lakehouse.producer.rest import RestError, fetch_trades
from lakehouse.producer.resume import values_in_topic

log = logging.getLogger(__name__)

RETRY_EMPTY = 2.0  # seconds before asking again when REST has nothing newer yet
REFILL_MARGIN_MS = 60_000  # read the topic back from this long before the undelivered records' own timestamps
REFILL_RETRY = 5.0


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with 'equal jitter': uniform in [d/2, d], d = min(cap, initial*2^attempt)."""
    d = min(cap, initial * (2 ** min(attempt, 30)))
    return d / 2 + rng.random() * d / 2


class Backfiller(threading.Thread):
    """Runs until `stop` is set; `step()` does one unit of work (tests call it directly)."""

    def __init__(self, config: BackfillConfig, codecs: dict[str, PairCodec], producer: Any, stats: Any,
                 gaps: GapBook, undelivered: UndeliveredBook, kafka_ok: Callable[[], bool], rlog: Any,
                 fetch: Callable[..., tuple[list, int]] = fetch_trades,
                 check_topic: Callable[..., set] = values_in_topic) -> None:
        super().__init__(daemon=True, name="backfill")
        self.config, self.producer, self.stats, self.rlog = config, producer, stats, rlog
        self.codecs = codecs  # user pair -> codec
        self.gaps, self.undelivered, self.kafka_ok = gaps, undelivered, kafka_ok
        self.fetch, self.check_topic = fetch, check_topic
        self.stop = threading.Event()
        self.next_call = 0.0  # REST pacing, shared by every gap
        self.errors = 0  # consecutive failed REST calls
        self.next_refill = 0.0
        self.rng = random.Random()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.step()
            except Exception:  # a bug: log it, keep the producer (and this thread) going
                self.rlog.exception("backfill", "backfill: unexpected error (retrying in 1s)")
                busy = False
            if not busy:
                self.stop.wait(1.0 if not self.gaps else 0.1)

    def step(self) -> bool:
        """Refill undelivered records when Kafka is back, else one REST call for the oldest due gap. True if it did
        something (the caller loops at once), False if there was nothing to do yet."""
        now = time.monotonic()
        if len(self.undelivered) and self.kafka_ok() and now >= self.next_refill:
            self.refill()
            return True
        gap = self.gaps.next_due(now)
        if gap is None:
            return False
        if now - gap.detected > self.config.give_up_after:
            self.give_up(gap, f"REST could not fill it within --backfill-give-up {self.config.give_up_after:.0f}s")
            return True
        if now < self.next_call:
            self.stop.wait(self.next_call - now)
            return True
        self.next_call = now + self.config.rest_interval
        try:
            trades, cursor = self.fetch(self.config.rest_url, rest_pair_name(gap.pair), gap.since_ns,
                                        self.config.rest_timeout)
        except RestError as exc:
            self.back_off(gap, exc)
            return True
        self.errors = 0
        self.apply_page(gap, trades, cursor)
        return True

    def back_off(self, gap: Gap, exc: RestError) -> None:
        """The reconnect backoff (--backoff-initial/--backoff-max), never shorter than two --rest-interval."""
        floor = 2 * self.config.rest_interval
        delay = backoff_delay(self.errors, max(floor, self.config.backoff_initial),
                              max(floor, self.config.backoff_max), self.rng)
        self.errors += 1
        self.stats.rest_errors += 1
        self.next_call = gap.next_try = time.monotonic() + delay
        self.rlog.warning("rest", "backfill %s: REST call failed (%s%s): retrying in %.1fs", gap.pair, exc,
                          ", rate limited" if exc.rate_limited else "", delay)

    def apply_page(self, gap: Gap, trades: list, cursor: int) -> None:
        """Produce the page's trades that fall inside the gap, in trade_id order; close the gap when done."""
        codec = self.codecs[gap.pair]
        ts_ingest = iso_now()
        page = []
        for t in trades:
            try:
                page.append(codec.rest_value(t, ts_ingest))
            except BadTrade as exc:
                self.stats.rest_malformed += 1
                self.rlog.warning("malformed", "backfill %s: malformed REST trade skipped: %s in %s", gap.pair, exc,
                                  short(t))
        page.sort(key=lambda item: item[0])
        expect, done = gap.first, False
        for tid, value in page:
            if tid < expect:
                continue
            if tid > gap.last:
                done = True
                break
            if tid > expect:
                why = "older than REST's history" if gap.pages == 0 and gap.filled == 0 else "not in REST's trades"
                self.unfillable(gap.pair, expect, tid - 1, why)
            if not self.produce(codec.key, value):
                break
            gap.filled += 1
            self.stats.backfilled += 1
            expect = tid + 1
        gap.pages += 1
        self.gaps.advance(gap, expect)
        if expect > gap.last or done:
            if expect <= gap.last:
                self.unfillable(gap.pair, expect, gap.last, "not in REST's trades")
            self.gaps.remove(gap)
            log.info("backfill %s: trade_ids %d..%d done, %d trade(s) produced from REST in %d call(s)",
                     gap.pair, gap.asked[0], gap.asked[1], gap.filled, gap.pages)
        elif not page or cursor <= gap.since_ns:
            gap.next_try = time.monotonic() + RETRY_EMPTY  # REST has nothing newer yet
        else:
            gap.since_ns = cursor

    def unfillable(self, pair: str, first: int, last: int, why: str) -> None:
        self.stats.unfillable += last - first + 1
        log.warning("backfill %s: trade_ids %d..%d (%d trades) cannot be filled: %s", pair, first, last,
                    last - first + 1, why)

    def give_up(self, gap: Gap, why: str) -> None:
        self.gaps.remove(gap)
        self.unfillable(gap.pair, gap.first, gap.last, why)

    def produce(self, key: bytes, value: bytes) -> bool:
        """Hand one record to librdkafka (waiting while its queue is full); False if stopped meanwhile."""
        while True:
            try:
                headers = self.gaps.headers.get(key)
                if headers is None:
                    self.producer.produce(self.config.topic, value, key)
                else:
                    self.producer.produce(self.config.topic, value, key, headers=headers)
                return True
            except BufferError:
                if self.stop.wait(0.1):
                    return False

    def refill(self) -> None:
        """Produce again the undelivered records the topic does not hold."""
        items = self.undelivered.take_all()
        since: dict[int, int] = {}
        fallback = int(time.time() * 1000) - int(self.config.delivery_timeout * 1000)
        for item in items:
            ts = (item.timestamp_ms or fallback) - REFILL_MARGIN_MS
            since[item.partition] = min(ts, since.get(item.partition, ts))
        try:
            present = self.check_topic(self.config.bootstrap, self.config.topic, since, {i.value for i in items},
                                       self.config.read_back_timeout)
        except Exception as exc:  # broker not readable yet: keep them, try again
            self.undelivered.put_back(items)
            self.next_refill = time.monotonic() + REFILL_RETRY
            self.rlog.warning("refill", "undelivered records: could not read %s back yet (%s); retrying in %.0fs",
                              self.config.topic, exc, REFILL_RETRY)
            return
        again: list[Failed] = []
        produced = found = 0
        for item in items:
            if item.value in present:
                found += 1
            elif self.produce(item.key, item.value):
                produced += 1
            else:
                again.append(item)
        self.undelivered.put_back(again)
        self.stats.refilled += produced
        self.stats.refill_found += found
        log.info("undelivered records: %d produced again, %d were in the topic already", produced, found)
