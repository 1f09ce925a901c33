"""Print records of the trades topic, like `rpk topic consume crypto.trades -n 5`, on any Kafka-API broker.

The seed's quick check uses rpk inside the Redpanda container; this works without Docker too (and with Redpanda).
Each record is printed as one JSON line, as rpk prints it: topic, key, value, timestamp (ms), partition, offset.

Usage (examples in the entry point's docstring, ingestion/consume_trades.py):
    python ingestion/consume_trades.py --help

Exit codes: 0 ok (also when the topic is empty), 2 a bad flag, an unknown topic or an unreachable broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from typing import Any, Iterable, Optional

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from lakehouse.defaults import LOCAL_BOOTSTRAP, TOPIC

TIMEOUT_S = 10.0
# librdkafka logs every failed connection attempt; the one error message below says it once.
QUIET = logging.getLogger("consume_trades.librdkafka")
QUIET.disabled = True


def plan_reads(watermarks: dict[int, tuple[int, int]], n: int, from_start: bool) -> dict[int, tuple[int, int]]:
    """{partition: (first offset, end offset)} to read so that the first or last n records of each partition are
    covered (the overall first/last n are then picked by timestamp)."""
    plan = {}
    for partition, (low, high) in watermarks.items():
        if high <= low:
            continue
        plan[partition] = (low, min(high, low + n)) if from_start else (max(low, high - n), high)
    return plan


def pick(records: list[dict], n: int, from_start: bool) -> list[dict]:
    """The first or last n records across partitions, oldest first (timestamp, then partition and offset)."""
    ordered = sorted(records, key=lambda r: (r["timestamp"], r["partition"], r["offset"]))
    return ordered[:n] if from_start else ordered[-n:]


def record_json(msg) -> dict:
    key, value = msg.key(), msg.value()
    return {
        "topic": msg.topic(),
        "key": None if key is None else key.decode("utf-8", errors="backslashreplace"),
        "value": None if value is None else value.decode("utf-8", errors="backslashreplace"),
        "timestamp": msg.timestamp()[1],
        "partition": msg.partition(),
        "offset": msg.offset(),
    }


def read_ranges(consumer: Consumer, topic: str, plan: dict[int, tuple[int, int]]) -> Iterable[dict]:
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in plan.items()])
    remaining = {p: end for p, (_, end) in plan.items()}
    while remaining:
        msg = consumer.poll(TIMEOUT_S)
        if msg is None:
            raise KafkaException(f"no record arrived within {TIMEOUT_S:.0f}s from partitions {sorted(remaining)}")
        if msg.error():
            raise KafkaException(msg.error())
        end = remaining.get(msg.partition())
        if end is None:
            continue
        if msg.offset() < end:
            yield record_json(msg)
        if msg.offset() >= end - 1:
            del remaining[msg.partition()]


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60.0,
                config: Optional[dict[str, Any]] = None) -> list[Message]:
    """Every record `topic` holds when called (each partition from its start to its high watermark), as confluent_kafka
    Messages ordered by partition and offset: what tests and benchmarks compare the lake against. A partition is read
    when the consumer's position reaches its end (a transaction marker at the end has no message). Raises
    KafkaException when the topic does not exist, on a fatal error, or when the end is not reached within timeout_s
    (a record that cannot be read stops it there, rather than returning part of the topic)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-to-end-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, **(config or {})})
    try:
        meta = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaException(f"topic {topic!r} does not exist on {bootstrap}")
        ends = {}
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s

        def at_end() -> bool:
            return all(tp.offset >= ends[tp.partition]
                       for tp in consumer.position([TopicPartition(topic, p) for p in ends]))

        while not at_end():
            if time.monotonic() >= deadline:
                raise KafkaException(f"could not read {topic!r} to its end offsets {ends} within {timeout_s:.0f} s")
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().fatal():
                        raise KafkaException(msg.error())
                    continue  # e.g. a broker of a cluster going away: the deadline bounds the wait
                if msg.offset() < ends[msg.partition()]:
                    messages.append(msg)
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num", type=int, default=5, help="how many records (default %(default)s)")
    parser.add_argument("--topic", default=TOPIC, help="topic (default %(default)s)")
    parser.add_argument("--bootstrap", default=LOCAL_BOOTSTRAP, help="Kafka bootstrap servers (default %(default)s)")
    parser.add_argument("--from-start", action="store_true", help="the first records instead of the last")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error("argument -n/--num: must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "consume-trades-cli",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "socket.connection.setup.timeout.ms": 5000, "logger": QUIET})
    try:
        topics = consumer.list_topics(args.topic, timeout=TIMEOUT_S).topics
        meta = topics.get(args.topic)
        if meta is None or meta.error is not None:
            print(f"error: topic {args.topic!r} does not exist on {args.bootstrap}", file=sys.stderr)
            return 2
        watermarks = {p: consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=TIMEOUT_S)
                      for p in meta.partitions}
        records = list(read_ranges(consumer, args.topic, plan_reads(watermarks, args.num, args.from_start)))
    except KafkaException as exc:
        print(f"error: cannot read {args.topic!r} from {args.bootstrap}: {exc}. Is the broker up? `make broker-up`",
              file=sys.stderr)
        return 2
    finally:
        consumer.close()
    for record in pick(records, args.num, args.from_start):
        print(json.dumps(record, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
