"""The topic's tail, read into the live book: a thread with a Kafka consumer (confluent-kafka) that starts each
partition `lookback` seconds back (by Kafka's record timestamps), parses each record (trades.parse_trade: Silver's
rules) and folds the valid trades into the LiveBook. A record that is not a trade is skipped and counted by reason,
never a crash. The topic may not exist yet (make run starts the page with the producer): the thread waits for it.

Nothing is committed to Kafka (no consumer group offsets): each start reads the lookback again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import Counter
from typing import Callable

from lakehouse.page.live import LiveBook
from lakehouse.page.trades import parse_trade

TOPIC_WAIT_S = 2.0
BATCH = 500

log = logging.getLogger(__name__)


class TailReader(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, book: LiveBook, lock: threading.Lock, lookback_s: float,
                 on_trade: Callable[[float], None] | None = None) -> None:
        super().__init__(daemon=True, name="topic-tail")
        self.bootstrap, self.topic, self.book, self.lock = bootstrap, topic, book, lock
        self.lookback_s, self.on_trade = lookback_s, on_trade
        self.stop_event = threading.Event()
        self.records = 0
        self.bad: Counter[str] = Counter()
        self.state = "waiting for the topic"
        self.error: str | None = None

    def consumer(self):
        from confluent_kafka import Consumer

        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"lakehouse-page-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                         "enable.partition.eof": False, "logger": logging.getLogger("confluent_kafka")})

    def assign(self, consumer) -> bool:
        """Start every partition lookback_s back; False while the topic does not exist."""
        from confluent_kafka import TopicPartition

        metadata = consumer.list_topics(timeout=5)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        since_ms = int((time.time() - self.lookback_s) * 1000)
        wanted = [TopicPartition(self.topic, p, since_ms) for p in sorted(topic.partitions)]
        starts = consumer.offsets_for_times(wanted, timeout=10)
        assignment = []
        for tp in starts:
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, tp.partition), timeout=10)
            offset = tp.offset if tp.offset >= 0 else high  # no record since then: from the end
            if offset <= low:
                offset = low
                self.book.reading_from_start(tp.partition)
            assignment.append(TopicPartition(self.topic, tp.partition, offset))
        consumer.assign(assignment)
        log.info("reading %s from %s", self.topic, ", ".join(f"{tp.partition}:{tp.offset}" for tp in assignment))
        return True

    def run(self) -> None:
        try:
            consumer = self.consumer()
        except Exception as exc:  # noqa: BLE001 - a bad --bootstrap: shown in the status, the server stays up
            self.state, self.error = "failed", f"cannot create a Kafka consumer: {exc}"
            log.error("%s", self.error)
            return
        try:
            while not self.stop_event.is_set():
                try:
                    if self.assign(consumer):
                        break
                except Exception as exc:  # noqa: BLE001 - broker not reachable yet: try again
                    self.error = f"{type(exc).__name__}: {exc}"
                self.stop_event.wait(TOPIC_WAIT_S)
            self.state, self.error = "reading", None
            while not self.stop_event.is_set():
                messages = consumer.consume(BATCH, timeout=0.5)
                if messages:
                    self.fold(messages)
        finally:
            consumer.close()

    def fold(self, messages: list) -> None:
        trades = []
        for message in messages:
            if message.error() is not None:
                continue  # partition EOF and transient errors: librdkafka retries
            self.records += 1
            _, kafka_ms = message.timestamp()
            trade, reason = parse_trade(message.value(), message.partition(), message.offset(),
                                        kafka_ms * 1000 if kafka_ms and kafka_ms > 0 else None)
            if trade is None:
                self.bad[re.sub(r"'[^']*'", "...", reason)[:80]] += 1
                continue
            trades.append(trade)
        with self.lock:
            results = [self.book.add(trade) for trade in trades]
        now = time.time()
        if self.on_trade is not None:
            for trade, result in zip(trades, results):
                if result == "added":
                    self.on_trade(now - trade.ts_ingest_us / 1e6)

    def stop(self) -> None:
        self.stop_event.set()
