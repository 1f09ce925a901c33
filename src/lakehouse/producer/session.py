"""The running producer: one WebSocket session after another (reconnect with backoff), the receive loop, stats, and
shutdown. What a received frame does is the frame handler's (frames.py), what it does with the trades the ledger's
(ledger.py: dedup and gaps by trade_id), their way into Kafka the delivery's (delivery.py), and gap filling the
backfill thread's (backfill.py)."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from typing import Any, Callable, Optional

from lakehouse.observe import status as status_files
from lakehouse.producer.backfill import Backfiller, backoff_delay
from lakehouse.producer.config import BackfillConfig, SessionConfig
from lakehouse.producer.delivery import KafkaDelivery
from lakehouse.producer.gaps import GapBook, UndeliveredBook
from lakehouse.producer.ledger import TradeLedger
from lakehouse.producer.frames import FrameHandler, PairRejected, Reconnect
from lakehouse.producer.protocol import ping_request, subscribe_request
from lakehouse.producer.ratelimit import RateLimitedLog
from lakehouse.producer.records import PairCodec, native_pair, short

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
STATUS_INTERVAL_S = 2.0  # how often the counters are published for make status and the page


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
    """WebSocket session loop + Kafka producer; `run()` returns the exit code. `producer` (the Kafka producer) may
    be given later, as delivery.producer: its on_delivery callback is this object's delivery.on_delivery."""

    def __init__(self, config: SessionConfig, backfill: BackfillConfig, producer: Any,
                 ws_connect: Callable[..., Any]) -> None:
        self.config, self.backfill_config = config, backfill
        self.api = config.api
        self.url = config.url
        self.ws_connect = ws_connect
        self.codecs = {native_pair(p, self.api): PairCodec(p, native_pair(p, self.api), self.api) for p in config.pairs}
        self.stats = Stats()
        self.stop = threading.Event()
        self.ws: Any = None
        self.rlog = RateLimitedLog(interval=max(config.stats_interval, 1.0), logger=log)
        self.rng = random.Random()
        self.req_id = 0
        self.record = open(config.record, "a", encoding="utf-8") if config.record else None
        self._next_stats = 0.0  # the sooner of the next stats line and the next status file
        self._next_line = 0.0
        self._next_status = 0.0
        self._status_at = (time.monotonic(), 0)  # (when, trades) at the last status file: the trades/s
        self.subscribed_ok = False
        self.gaps = GapBook()
        self.undelivered = UndeliveredBook()
        self.delivery = KafkaDelivery(config.topic, self.stats, self.gaps.headers, self.undelivered, self.rlog,
                                      self.stop)
        self.delivery.producer = producer
        self.ledger = TradeLedger(self.codecs, self.delivery.produce, self.stats, self.gaps, backfill.enabled)
        self.frames = FrameHandler(self.api, self.codecs, self.ledger, self.stats, self.rlog, self.record)
        self.worker: Optional[Backfiller] = None

    @property
    def producer(self) -> Any:
        """The Kafka producer (delivery.producer)."""
        return self.delivery.producer

    def start_worker(self) -> None:
        """The backfill thread: REST gaps (v2, unless --no-backfill) and undelivered records (always)."""
        codecs = {c.user_pair: c for c in self.codecs.values()}
        self.worker = Backfiller(self.backfill_config, codecs, self.producer, self.stats, self.gaps,
                                 self.undelivered, self.delivery.accepts_writes, self.rlog)
        self.worker.start()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop.set()
            self.worker.join(max(5.0, self.backfill_config.rest_timeout + 1))

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
                delay = backoff_delay(attempt, self.config.backoff_initial, self.config.backoff_max, self.rng)
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
            self.ws = self.ws_connect(self.url, self.config.connect_timeout)
        except Exception as exc:
            raise Reconnect(f"connect to {self.url} failed: {exc}") from exc
        if self.stop.is_set():
            return
        self.ws.settimeout(min(1.0, self.config.watchdog / 4))  # wake-ups for watchdog, stats and delivery reports
        self.req_id += 1
        pending = set(self.codecs)
        self.ws.send(subscribe_request(self.api, list(self.codecs), self.req_id))
        ack_deadline = time.monotonic() + self.config.ack_timeout
        self.pump(pending, ack_deadline)

    def pump(self, pending: set, ack_deadline: float) -> None:
        """Receive loop of one connection (the hot path)."""
        import websocket  # websocket-client
        from confluent_kafka import KafkaException

        ws, stats, codecs, api, config = self.ws, self.stats, self.codecs, self.api, self.config
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
                    raise Reconnect(f"no subscription ack within {config.ack_timeout}s for {sorted(pending)}")
                if now - last_frame > config.watchdog:
                    raise Reconnect(f"watchdog: no frame for {now - last_frame:.1f}s")
                if not pinged and now - last_frame > config.watchdog / 2:
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
                    self.frames.handle_text(frame.data, now_ns, pending)
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
                raise Reconnect(f"no subscription ack within {config.ack_timeout}s for {sorted(pending)}")

    def _send(self, text: str) -> None:
        try:
            self.ws.send(text)
        except Exception as exc:
            raise Reconnect(f"send failed: {exc}") from exc

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
            self._next_line = now + self.config.stats_interval
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
        if len(self.undelivered) and self.worker is not None and self.delivery.accepts_writes():
            self.worker.refill()
            remaining = self.producer.flush(max(1.0, deadline - time.monotonic()))
        undelivered = remaining + len(self.undelivered)
        log.info("final stats %s", self.stats_line(remaining))
        self.publish_status("stopped", f"{undelivered} trade(s) not delivered" if undelivered else None)
        for pair, (n, missing) in self.ledger.gaps_by_pair.items():
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


def connect_ws(url: str, timeout: float) -> Any:
    import websocket  # websocket-client (+ wsaccel when installed)

    # skip_utf8_validation: recv path decodes every text frame with strict UTF-8 itself (FrameHandler.handle_text),
    # so the library's own per-frame validation would only do the same work twice.
    return websocket.create_connection(
        url, timeout=timeout, skip_utf8_validation=True, enable_multithread=True,
        sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )
