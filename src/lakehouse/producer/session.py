"""The running producer: one WebSocket session after another (reconnect with backoff), the receive loop, the
per-kind frame handlers, dedup and gap bookkeeping by trade_id, stats, and the Kafka hand-off."""

from __future__ import annotations

import argparse
import json
import logging
import random
import socket
import threading
import time
from typing import Any, Callable, Optional

from lakehouse.observe import status as status_files
from lakehouse.producer.backfill import REFILL_MARGIN_MS, Backfiller, backoff_delay
from lakehouse.producer.gaps import Failed, Gap, GapBook, UndeliveredBook
from lakehouse.producer.protocol import (
    ACK, DEFAULT_WS_URLS, ERROR, HEARTBEAT, PONG, STATUS, TRADES, UNKNOWN, parse_frame, ping_request,
    subscribe_request,
)
from lakehouse.producer.records import PairCodec, epoch_ns_from_iso, iso_now, native_pair, short

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
STATUS_INTERVAL_S = 2.0  # how often the counters are published for make status and the page


class Reconnect(Exception):
    """Drop this connection and reconnect (with backoff)."""


class PairRejected(Exception):
    """Kraken refused a subscription: fatal."""


class RateLimitedLog:
    """At most `burst` log lines per `interval` seconds per category; the rest are only counted."""

    def __init__(self, burst: int = 5, interval: float = 10.0) -> None:
        self.burst, self.interval = burst, interval
        self._window: dict[str, list] = {}

    def warning(self, category: str, fmt: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        w = self._window.get(category)
        if w is None or now - w[0] >= self.interval:
            if w is not None and w[2]:
                log.warning("%s: %d more suppressed in the last %.0fs", category, w[2], now - w[0])
            w = self._window[category] = [now, 0, 0]
        if w[1] < self.burst:
            w[1] += 1
            log.warning(fmt, *args, exc_info=exc_info)
        else:
            w[2] += 1

    def exception(self, category: str, fmt: str, *args: Any) -> None:
        """warning() with the current exception's traceback."""
        self.warning(category, fmt, *args, exc_info=True)


class RateLimitFilter(logging.Filter):
    """librdkafka repeats connection failures every second during an outage: keep `burst` lines per window."""

    def __init__(self, burst: int = 3, interval: float = 30.0) -> None:
        super().__init__()
        self.burst, self.interval, self.start, self.seen = burst, interval, 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.start >= self.interval:
            self.start, self.seen = now, 0
        self.seen += 1
        return self.seen <= self.burst


class Stats:
    __slots__ = (
        "frames", "trades", "produced", "delivered", "failed", "dups", "gaps", "missing", "reconnects",
        "malformed", "unknown", "unexpected", "heartbeats", "queue_full",
        # written by the backfill thread only
        "backfilled", "unfillable", "rest_errors", "rest_malformed", "refilled", "refill_found",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def line(self, queue: int, open_gaps: int = 0, undelivered: int = 0) -> str:
        return (" ".join(f"{n}={getattr(self, n)}" for n in self.__slots__)
                + f" open_gaps={open_gaps} undelivered={undelivered} queue={queue}")


class TradeProducer:
    """WebSocket session loop + Kafka producer; `run()` returns the exit code."""

    def __init__(self, args: argparse.Namespace, producer: Any, ws_connect: Callable[..., Any]) -> None:
        self.args = args
        self.api = args.api
        self.url = args.ws_url or DEFAULT_WS_URLS[args.api]
        self.topic = args.topic
        self.producer = producer
        self.ws_connect = ws_connect
        self.codecs = {native_pair(p, self.api): PairCodec(p, native_pair(p, self.api), self.api) for p in args.pair}
        self.stats = Stats()
        self.gaps_by_pair: dict[str, list[int]] = {c.user_pair: [0, 0] for c in self.codecs.values()}
        self.last_id: dict[str, int] = {}  # v2: last produced trade_id per native pair
        self.resumed: dict[str, int] = {}  # v2: trade_id read back from the topic, until the pair's first snapshot
        self.v1_guard: dict[str, tuple] = {}  # v1: (last time, rows at that time) to drop resubscribe overlap
        self.v1_last: dict[str, tuple] = {}
        self.stop = threading.Event()
        self.ws: Any = None
        self.rlog = RateLimitedLog(interval=max(args.stats_interval, 1.0))
        self.rng = random.Random()
        self.req_id = 0
        self.record = open(args.record, "a", encoding="utf-8") if args.record else None
        self._system = None
        self._next_stats = 0.0  # the sooner of the next stats line and the next status file
        self._next_line = 0.0
        self._next_status = 0.0
        self._status_at = (time.monotonic(), 0)  # (when, trades) at the last status file: the trades/s
        self.subscribed_ok = False
        self.backfill = self.api == "v2" and not args.no_backfill  # gaps filled from REST (v2 has trade ids)
        self.last_value: dict[str, bytes] = {}  # v2: the last produced value per native pair (a gap's REST cursor)
        self.resume_times: dict[str, Any] = {}  # v2: ts_event of the resume point per native pair
        self.gaps = GapBook()
        self.gap_headers = self.gaps.headers  # the same dict, one lookup less on the hot path
        self.undelivered = UndeliveredBook()
        self.delivered_at_failure = -1  # stats.delivered when the last delivery failed (-1: none failed)
        self.worker: Optional[Backfiller] = None

    # -- Kafka ---------------------------------------------------------------------------------

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.delivered_at_failure = self.stats.delivered
            ts_type, ts_ms = msg.timestamp()
            self.undelivered.add(Failed(msg.key(), msg.value(), msg.partition(), ts_ms if ts_type else 0))
            self.rlog.warning("delivery", "delivery failed for key %s: %s (kept: produced again once Kafka "
                              "accepts writes)", msg.key(), err)

    def kafka_accepts_writes(self) -> bool:
        """A delivery succeeded after the last failure (the backfill thread then produces undelivered ones again)."""
        return self.stats.delivered > self.delivered_at_failure

    def start_worker(self) -> None:
        """The backfill thread: REST gaps (v2, unless --no-backfill) and undelivered records (always)."""
        codecs = {c.user_pair: c for c in self.codecs.values()}
        self.worker = Backfiller(self.args, codecs, self.producer, self.stats, self.gaps, self.undelivered,
                                 self.kafka_accepts_writes, self.rlog)
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop.set()
            self.worker.join(max(5.0, self.args.rest_timeout + 1))

    def produce(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                gap_headers = self.gap_headers  # {key: headers} of pairs with open gaps (gaps.GAP_HEADER)
                headers = gap_headers.get(key) if gap_headers else None
                if headers is None:
                    self.producer.produce(self.topic, value, key)
                else:
                    self.producer.produce(self.topic, value, key, headers=headers)
                self.stats.produced += 1
                return
            except BufferError:  # local queue full (broker down for long): wait for room
                self.stats.queue_full += 1
                self.rlog.warning("queue", "producer queue full (%d messages); waiting", len(self.producer))
                self.producer.poll(0.1)
                if self.stop.is_set():
                    self.stats.failed += 1  # never queued: counts as undelivered
                    return

    # -- trades ----------------------------------------------------------------------------------

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

    def handle_v2_trades(self, records: list, snapshot: bool = False) -> None:
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

    def handle_v1_trades(self, records: list) -> None:
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

    # -- session ---------------------------------------------------------------------------------

    def run(self) -> int:
        attempt = 0
        self.start_worker()
        try:
            while not self.stop.is_set():
                try:
                    self.session()
                except Reconnect as exc:
                    log.log(logging.INFO if self.stop.is_set() else logging.WARNING, "connection lost: %s", exc)
                except PairRejected as exc:
                    log.error("%s", exc)
                    return EXIT_REJECTED
                finally:
                    self.close_ws()
                if self.stop.is_set():
                    break
                if self.subscribed_ok:
                    attempt = 0
                delay = backoff_delay(attempt, self.args.backoff_initial, self.args.backoff_max, self.rng)
                attempt += 1
                self.stats.reconnects += 1
                log.info("reconnecting in %.2fs (attempt %d)", delay, attempt)
                self.wait(delay)
            return EXIT_OK
        finally:
            if self.record:
                self.record.close()

    def wait(self, seconds: float) -> None:
        """Sleep while serving delivery reports; wakes up on stop."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.producer.poll(min(left, 0.2))
            self.maybe_stats(time.monotonic())

    def close_ws(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # closing a broken socket: nothing to save
                log.debug("close failed", exc_info=True)

    def session(self) -> None:
        self.subscribed_ok = False
        log.info("connecting to %s", self.url)
        try:
            self.ws = self.ws_connect(self.url, self.args.connect_timeout)
        except Exception as exc:
            raise Reconnect(f"connect to {self.url} failed: {exc}") from exc
        if self.stop.is_set():
            return
        self.ws.settimeout(min(1.0, self.args.watchdog / 4))  # wake-ups for watchdog, stats and delivery reports
        self.req_id += 1
        pending = set(self.codecs)
        self.ws.send(subscribe_request(self.api, list(self.codecs), self.req_id))
        ack_deadline = time.monotonic() + self.args.ack_timeout
        self.pump(pending, ack_deadline)

    def pump(self, pending: set, ack_deadline: float) -> None:
        """Receive loop of one connection (the hot path)."""
        import websocket  # websocket-client
        from confluent_kafka import KafkaException

        ws, stats, codecs, api, args = self.ws, self.stats, self.codecs, self.api, self.args
        poll = self.producer.poll
        last_frame = time.monotonic()
        pinged = False
        while not self.stop.is_set():
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                poll(0)
                self.maybe_stats(now)
                if pending and now > ack_deadline:
                    raise Reconnect(f"no subscription ack within {args.ack_timeout}s for {sorted(pending)}")
                if now - last_frame > args.watchdog:
                    raise Reconnect(f"watchdog: no frame for {now - last_frame:.1f}s")
                if not pinged and now - last_frame > args.watchdog / 2:
                    self.req_id += 1
                    pinged = True
                    self._send(ping_request(api, self.req_id))
                continue
            except (websocket.WebSocketException, OSError) as exc:
                raise Reconnect(f"{type(exc).__name__}: {exc or 'connection closed'}") from exc
            now_ns = time.time_ns()
            last_frame = time.monotonic()
            pinged = False
            if opcode == 1:
                stats.frames += 1
                try:
                    self.handle_text(frame.data, now_ns, pending)
                except (Reconnect, PairRejected, KafkaException):
                    raise
                except Exception:  # a bug, not bad input (that is counted as malformed): never stops the feed
                    stats.unexpected += 1
                    self.rlog.exception("unexpected", "unexpected error on frame %s (skipped, feed goes on)",
                                        short(frame.data, 300))
                if pending is not None and not pending and not self.subscribed_ok:
                    self.subscribed_ok = True
                    log.info("subscribed to %s on %s", ", ".join(c.user_pair for c in codecs.values()), self.url)
            elif opcode == 8:
                data = frame.data
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                raise Reconnect(f"server closed the connection: code={code} reason={data[2:].decode('utf-8', 'replace')!r}")
            elif opcode == 2:
                stats.frames += 1
                stats.malformed += 1
                self.rlog.warning("malformed", "malformed frame: binary frame of %d bytes", len(frame.data))
            poll(0)
            if last_frame >= self._next_stats:
                self.maybe_stats(last_frame)
            if pending and last_frame > ack_deadline:
                raise Reconnect(f"no subscription ack within {args.ack_timeout}s for {sorted(pending)}")

    def _send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except Exception as exc:
            raise Reconnect(f"send failed: {exc}") from exc

    def handle_text(self, data: bytes, now_ns: int, pending: set) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.record:
                self.write_record(now_ns, data.decode("utf-8", "surrogateescape"))
            self.stats.malformed += 1
            self.rlog.warning("malformed", "malformed frame (invalid UTF-8: %s): %r", exc, data[:200])
            return
        if self.record:
            self.write_record(now_ns, text)
        parsed = parse_frame(text, iso_now(now_ns), self.codecs, self.api)
        kind = parsed[0]
        if kind is TRADES:
            _, snapshot, records, bad = parsed
            if bad:
                self.stats.malformed += len(bad)
                self.rlog.warning("malformed", "%d malformed trade element(s) skipped, the rest of the frame "
                                  "produced: %s", len(bad), "; ".join(bad)[:600])
            self.stats.trades += len(records)
            if self.api == "v2":
                self.handle_v2_trades(records, snapshot)
            else:
                self.handle_v1_trades(records)
        elif kind is HEARTBEAT:
            self.stats.heartbeats += 1
        elif kind is ACK:
            self.handle_ack(parsed, pending)
        elif kind is STATUS:
            self.handle_status(parsed)
        elif kind is PONG:
            pass
        elif kind is ERROR:
            # {"Error":"Exceeded msg rate"}: Kraken throttled us; back off and try again.
            raise Reconnect(f"Kraken error: {parsed[1]}")
        elif kind is UNKNOWN:
            self.stats.unknown += 1
            self.rlog.warning("unknown", "unknown frame (%s): %.200s", parsed[1], text)
        else:
            self.stats.malformed += 1
            self.rlog.warning("malformed", "malformed frame (%s): %.200s", parsed[1], text)

    def handle_ack(self, parsed: tuple, pending: set) -> None:
        _, native, ok, error, method = parsed
        codec = self.codecs.get(native)
        if method == "unsubscribe":
            raise Reconnect(f"Kraken unsubscribed {native}")
        if ok:
            if codec is None:
                self.stats.unknown += 1
                self.rlog.warning("unknown", "ack for a pair we did not ask for: %r", native)
                return
            pending.discard(native)
            if self.api == "v1" and native in self.v1_last:
                tkey, rows = self.v1_last[native]
                self.v1_guard[native] = (tkey, list(rows))
            return
        if error and "rate" in error.lower():
            raise Reconnect(f"Kraken rate-limited the subscription: {error}")
        if error and "already subscribed" in error.lower() and codec is not None:
            pending.discard(native)
            return
        if not pending or (codec is not None and native not in pending):
            # not an answer to a subscribe request still open: an odd frame, never a reason to stop
            self.stats.unknown += 1
            self.rlog.warning("unknown", "error ack outside a subscription (ignored): %s %s", native, error)
            return
        if codec is None:
            raise PairRejected(f"Kraken rejected the subscribe request ({self.api}): {error}")
        raise PairRejected(
            f"Kraken rejected pair {codec.user_pair!r} (sent as {native!r} on {self.api}): {error}"
        )

    def handle_status(self, parsed: tuple) -> None:
        _, system, conn_id, version = parsed
        level = logging.INFO if system == "online" else logging.WARNING
        if system != self._system or level == logging.WARNING:
            log.log(level, "Kraken system status: %s (version %s, connection %s)", system, version, conn_id)
        self._system = system

    def write_record(self, now_ns: int, text: str) -> None:
        self.record.write(json.dumps({"t": now_ns / 1e9, "frame": text}) + "\n")

    def maybe_stats(self, now: float) -> None:
        """The stats line every --stats-interval, and the status file (make status, the page) every
        STATUS_INTERVAL_S; _next_stats is the sooner of the two, so the hot path checks one number."""
        if now < self._next_stats:
            return
        if now >= self._next_status:
            self.publish_status("running" if self.subscribed_ok else "connecting")
            self._next_status = now + STATUS_INTERVAL_S
        if now >= self._next_line:
            if self._next_line:
                log.info("stats %s", self.stats_line(len(self.producer)))
                if self.record:
                    self.record.flush()
            self._next_line = now + self.args.stats_interval
        self._next_stats = min(self._next_line, self._next_status)

    def publish_status(self, state: str, reason: Optional[str] = None) -> None:
        """The counters as data/status/producer.json (lakehouse.observe.status), with the trades/s since the last."""
        s, now = self.stats, time.monotonic()
        rate = (s.trades - self._status_at[1]) / (now - self._status_at[0]) if now > self._status_at[0] else None
        self._status_at = (now, s.trades)
        status_files.publish(
            "producer", state=state, reason=reason, pairs=[c.user_pair for c in self.codecs.values()],
            trades=s.trades, produced=s.produced, delivered=s.delivered, failed=s.failed, gaps=s.gaps,
            missing=s.missing, reconnects=s.reconnects, malformed=s.malformed, unknown=s.unknown,
            unexpected=s.unexpected, backfilled=s.backfilled, unfillable=s.unfillable,
            undelivered=len(self.undelivered), open_gaps=len(self.gaps), queue=len(self.producer),
            trades_per_s=round(rate, 3) if rate is not None else None)

    # -- shutdown -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop.set()
        ws = self.ws
        if ws is not None and ws.sock is not None:
            try:
                ws.sock.shutdown(socket.SHUT_RDWR)  # wakes up a blocked recv at once
            except OSError:
                pass

    def stats_line(self, queue: int) -> str:
        return self.stats.line(queue, len(self.gaps), len(self.undelivered))

    def finish(self, flush_timeout: float) -> int:
        """Flush, report, and return how many trades were not delivered (still queued, or failed and not produced
        again). Open gaps get up to `flush_timeout` to be filled; undelivered records one last chance when Kafka
        accepts writes again."""
        deadline = time.monotonic() + flush_timeout
        if len(self.gaps) and self.worker is not None and self.worker.is_alive():
            log.info("waiting up to %.0fs for the backfill of %d open gap(s)", flush_timeout, len(self.gaps))
            while len(self.gaps) and time.monotonic() < deadline and self.worker.is_alive():
                self.producer.poll(0.2)
        self.stop_worker()
        remaining = self.producer.flush(max(1.0, deadline - time.monotonic()))
        if len(self.undelivered) and self.worker is not None and self.kafka_accepts_writes():
            self.worker.refill()
            remaining = self.producer.flush(max(1.0, deadline - time.monotonic()))
        undelivered = remaining + len(self.undelivered)
        log.info("final stats %s", self.stats_line(remaining))
        self.publish_status("stopped", f"{undelivered} trade(s) not delivered" if undelivered else None)
        for pair, (n, missing) in self.gaps_by_pair.items():
            if n:
                log.warning("gaps on %s: %d gap(s), %d trade(s) missing", pair, n, missing)
        for pair, first, last in self.gaps.open_ranges():
            log.warning("gap on %s: trade_ids %d..%d (%d trades) still missing at shutdown (backfill not finished)",
                        pair, first, last, last - first + 1)
        if undelivered:
            log.error("%d message(s) NOT delivered (%d still queued after %.0fs flush, %d failed and not produced "
                      "again)", undelivered, remaining, flush_timeout, len(self.undelivered))
        else:
            log.info("all %d produced message(s) delivered", self.stats.produced + self.stats.backfilled)
        return undelivered


def _v1_time_key(ts: str) -> tuple:
    sec, _, frac = ts.partition(".")
    return (int(sec), (frac + "000000")[:6])


def connect_ws(url: str, timeout: float) -> Any:
    import websocket  # websocket-client (+ wsaccel when installed)

    # skip_utf8_validation: recv path decodes every text frame with strict UTF-8 itself (handle_text),
    # so the library's own per-frame validation would only do the same work twice.
    return websocket.create_connection(
        url, timeout=timeout, skip_utf8_validation=True, enable_multithread=True,
        sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )


def id_ranges(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids -> [(first, last)] of consecutive runs: [1, 2, 3, 7, 9, 10] -> [(1, 3), (7, 7), (9, 10)]."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out
