"""What the producer does with each text frame Kraken sends: decode it (protocol.py), write it to the --record file,
and act by its kind: trades to the ledger (ledger.py), acks checked against the subscriptions still pending, status
changes logged, the rest counted. A frame can ask the session for a reconnect (Reconnect) or end it (PairRejected).
The receive loop that reads the frames off the socket is session.py's."""

from __future__ import annotations

import json
import logging
from typing import IO, Any, Optional

from lakehouse.producer.ledger import TradeLedger
from lakehouse.producer.protocol import ACK, ERROR, HEARTBEAT, PONG, STATUS, TRADES, UNKNOWN, parse_frame
from lakehouse.producer.records import PairCodec, iso_now

log = logging.getLogger(__name__)


class Reconnect(Exception):
    """Drop this connection and reconnect (with backoff)."""


class PairRejected(Exception):
    """Kraken refused a subscription: fatal."""


class FrameHandler:
    """Handles the frames of one producer's sessions: `codecs` maps each native pair to its codec; counts go to
    `stats`, repeated warnings through `rlog`; `record` (an open file, or None) gets every text frame."""

    def __init__(self, api: str, codecs: dict[str, PairCodec], ledger: TradeLedger, stats: Any, rlog: Any,
                 record: Optional[IO[str]] = None) -> None:
        self.api, self.codecs, self.ledger, self.stats, self.rlog = api, codecs, ledger, stats, rlog
        self.record = record
        self._system: Optional[str] = None  # the last status Kraken sent

    def handle_text(self, data: bytes, now_ns: int, pending: set) -> None:
        """One text frame received at `now_ns`; `pending`: the native pairs whose subscription ack is still due."""
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
                self.ledger.v2_trades(records, snapshot)
            else:
                self.ledger.v1_trades(records)
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
        """A subscription's answer: a pair subscribed (no longer pending), or why not (a reconnect, or fatal)."""
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
            if self.api == "v1":
                self.ledger.v1_resubscribed(native)
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
        """Kraken's system status: logged when it changes, and every time it is not "online"."""
        _, system, conn_id, version = parsed
        level = logging.INFO if system == "online" else logging.WARNING
        if system != self._system or level == logging.WARNING:
            log.log(level, "Kraken system status: %s (version %s, connection %s)", system, version, conn_id)
        self._system = system

    def write_record(self, now_ns: int, text: str) -> None:
        self.record.write(json.dumps({"t": now_ns / 1e9, "frame": text}) + "\n")
