"""The live records' way into Kafka: produce() hands one record to librdkafka (waiting while its queue is full), and
on_delivery() books what came back: delivered, or failed and kept for the backfill thread to produce again."""

from __future__ import annotations

import threading
from typing import Any

from lakehouse.producer.gaps import Failed, UndeliveredBook


class KafkaDelivery:
    """Counts produced/delivered/failed/queue_full in `stats`; `gap_headers` ({key: headers}, gaps.GapBook.headers)
    names the open gaps of a pair in each of its records; `stop` ends a wait for room in a full queue."""

    def __init__(self, topic: str, stats: Any, gap_headers: dict, undelivered: UndeliveredBook, rlog: Any,
                 stop: threading.Event) -> None:
        self.topic, self.stats, self.gap_headers, self.undelivered = topic, stats, gap_headers, undelivered
        self.rlog, self.stop = rlog, stop
        self.producer: Any = None  # confluent_kafka.Producer, set once built (its on_delivery is this object's)
        self.delivered_at_failure = -1  # stats.delivered when the last delivery failed (-1: none failed)

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

    def accepts_writes(self) -> bool:
        """A delivery succeeded after the last failure (the backfill thread then produces undelivered ones again)."""
        return self.stats.delivered > self.delivered_at_failure

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
