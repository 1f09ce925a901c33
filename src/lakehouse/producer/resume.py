"""Resume after a restart (API v2): read the topic's tail back and find each pair's last produced trade_id.

A short-lived consumer with assign() (no group membership, no commits) reads each partition backwards in growing
chunks (scan_windows) until every pair is found or --resume-scan-limit records per partition were read.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any, Callable, Optional

from lakehouse.producer.config import ResumeConfig
from lakehouse.producer.gaps import GAP_HEADER, decode_gaps

log = logging.getLogger(__name__)

RESUME_FIRST_CHUNK = 2000  # records per partition read first; each further chunk reaches 10x further back
RESUME_GROWTH = 10


def scan_windows(low: int, high: int, limit: int, first: int = RESUME_FIRST_CHUNK,
                 growth: int = RESUME_GROWTH) -> list[tuple[int, int]]:
    """Offset ranges [start, end) to read a partition's tail backwards, newest first, at most `limit` records.

    low=0, high=50000, limit=200000 -> [(48000, 50000), (30000, 48000), (0, 30000)]: the first chunk holds the
    last `first` records, each next one reaches `growth` times further back, clipped at `low` and `high - limit`.
    """
    floor = max(low, high - limit)
    windows, end, reach = [], high, first
    while end > floor:
        start = max(floor, high - reach)
        windows.append((start, end))
        end, reach = start, reach * growth
    return windows


def latest_trade_ids(records: Any, keys: dict[bytes, str], into: Optional[dict[str, int]] = None,
                     times: Optional[dict[str, Any]] = None) -> dict[str, int]:
    """Highest v2 trade_id per pair among Kafka records (key bytes, value bytes), merged into `into`; `times`, if
    given, receives the ts_event of each pair's highest trade (the REST cursor of a gap found at start-up).

    Only records whose key is one of `keys` (key bytes -> pair) are decoded; a value counts when it is a JSON
    object with "api": "v2" and an integer trade_id. Anything else (v1 records, other pairs, junk) is ignored.
    """
    found = {} if into is None else into
    for key, value in records:
        pair = keys.get(key)
        if pair is None or value is None:
            continue
        try:
            v = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if type(v) is not dict or v.get("api") != "v2":
            continue
        tid = v.get("trade_id")
        if type(tid) is int and (pair not in found or tid > found[pair]):
            found[pair] = tid
            if times is not None:
                times[pair] = v.get("ts_event")
    return found


def read_resume_points(bootstrap: str, topic: str, pairs: list[str], limit: int, timeout: float,
                       times: Optional[dict[str, Any]] = None,
                       open_gaps: Optional[dict[str, list]] = None) -> dict[str, int]:
    """Highest v2 trade_id already in `topic` per pair (key = pair as typed), from each partition's tail.

    A short-lived consumer with assign() (no group membership, no commits) reads every partition backwards in
    chunks (scan_windows), all partitions chunk by chunk, until each pair is found or `limit` records per partition
    were read. Values are decoded only for records whose key is one of `pairs`. Gives up after `timeout` seconds
    with what it found so far (a chunk read only in part can only yield an older trade_id than the newest one in
    the topic: some snapshot trades are produced twice, none is lost). `times` receives each pair's last ts_event,
    `open_gaps` the gaps its newest record says were still being filled (gaps.GAP_HEADER), if any.
    """
    from confluent_kafka import KafkaError, TopicPartition

    t0 = time.monotonic()
    deadline = t0 + timeout
    keys = {p.encode("utf-8"): p for p in pairs}
    found: dict[str, int] = {}
    consumer = topic_reader(bootstrap, "resume")
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            log.info("resume: topic %s does not exist yet: nothing to resume from", topic)
            return found
        windows = {}
        for p in sorted(meta.partitions):
            left = max(0.1, deadline - time.monotonic())
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=left)
            windows[p] = scan_windows(low, high, limit)
        read, level = 0, 0
        while len(found) < len(keys) and any(level < len(w) for w in windows.values()):
            chunk = {p: w[level] for p, w in windows.items() if level < len(w)}
            unknown = {k: v for k, v in keys.items() if v not in found}
            level_found: dict[str, int] = {}
            newest_headers: dict[bytes, Any] = {}
            consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in chunk.items()])
            open_parts = set(chunk)
            while open_parts:
                if time.monotonic() > deadline:
                    found.update({p: t for p, t in level_found.items() if p not in found})
                    log.warning("resume: gave up reading %s after %.1fs (%d records read)", topic, timeout, read)
                    return found
                batch = []
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    part = msg.partition()
                    if part not in open_parts:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(part)
                            continue
                        raise RuntimeError(f"reading {topic} [{part}]: {err}")
                    offset, end = msg.offset(), chunk[part][1]
                    if offset >= end:
                        open_parts.discard(part)
                        continue
                    read += 1
                    key = msg.key()
                    if key in unknown:
                        batch.append((key, msg.value()))
                        newest_headers[key] = msg.headers()
                    if offset == end - 1:
                        open_parts.discard(part)
                latest_trade_ids(batch, unknown, level_found, times)
            consumer.unassign()
            found.update(level_found)
            if open_gaps is not None:
                for key, pair in unknown.items():
                    gaps = decode_gaps(dict(newest_headers.get(key) or []).get(GAP_HEADER))
                    if pair in level_found and gaps:
                        open_gaps[pair] = gaps
            level += 1
        log.info("resume: read %d record(s) of %s (%d partition(s), %d chunk(s) deep) in %.2fs",
                 read, topic, len(windows), level, time.monotonic() - t0)
        return found
    finally:
        consumer.close()


def resume_points(config: ResumeConfig, times: Optional[dict[str, Any]] = None,
                  open_gaps: Optional[dict[str, list]] = None) -> dict[str, int]:
    """--api v2: what the topic already holds per pair (logged pair by pair); {} for v1 or --no-resume."""
    if config.api != "v2":
        log.info("resume: not available with --api v1 (v1 trades have no trade_id); producing live trades only")
        return {}
    if not config.enabled:
        log.info("resume: disabled (--no-resume): the first snapshot is produced in full")
        return {}
    found = read_resume_points(config.bootstrap, config.topic, list(config.pairs), config.scan_limit, config.timeout,
                               times, open_gaps)
    for pair in config.pairs:
        if pair in found:
            log.info("resuming %s after trade_id %d", pair, found[pair])
        else:
            log.info("resume: no earlier v2 trade of %s in the last %d record(s) of each partition of %s: "
                     "starting without memory (the first snapshot is produced in full)",
                     pair, config.scan_limit, config.topic)
    return found


def topic_reader(bootstrap: str, purpose: str) -> Any:
    """A consumer that only reads (assign(), no group membership, no commits, end of partition reported)."""
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"kraken-trades-ws-{purpose}-{random.getrandbits(64):016x}",
        "client.id": f"kraken-trades-ws-{purpose}", "enable.auto.commit": False, "enable.auto.offset.store": False,
        "enable.partition.eof": True, "auto.offset.reset": "earliest", "allow.auto.create.topics": False,
        "fetch.wait.max.ms": 50,
    })


def read_since(bootstrap: str, topic: str, since_ms: dict[int, int], timeout: float,
               visit: Callable[[Any], None]) -> None:
    """Call visit(msg) for every record of each partition in `since_ms` (-1: every partition) from the first record
    with a timestamp >= since_ms[partition] to the partition's current end. Raises (KafkaException, RuntimeError,
    TimeoutError) when the broker cannot be read: try again later."""
    from confluent_kafka import KafkaError, TopicPartition

    deadline = time.monotonic() + timeout
    consumer = topic_reader(bootstrap, "read-back")
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            raise RuntimeError(f"topic {topic} is not readable: {meta.error if meta else 'missing'}")
        starts = {p: since_ms.get(p, since_ms.get(-1)) for p in meta.partitions if p in since_ms or -1 in since_ms}
        offsets = consumer.offsets_for_times([TopicPartition(topic, p, ts) for p, ts in starts.items()],
                                             timeout=timeout)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in starts}
        todo = {tp.partition: tp.offset for tp in offsets if 0 <= tp.offset < ends[tp.partition]}
        if not todo:
            return
        consumer.assign([TopicPartition(topic, p, off) for p, off in todo.items()])
        open_parts = set(todo)
        while open_parts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} back took more than {timeout:.0f}s")
            for msg in consumer.consume(num_messages=5000, timeout=0.2):
                err, part = msg.error(), msg.partition()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(part)
                        continue
                    raise RuntimeError(f"reading {topic} [{part}]: {err}")
                if part in open_parts and msg.offset() < ends[part]:
                    visit(msg)
                if msg.offset() >= ends[part] - 1:
                    open_parts.discard(part)
    finally:
        consumer.close()


def values_in_topic(bootstrap: str, topic: str, since_ms: dict[int, int], wanted: set[bytes],
                    timeout: float) -> set[bytes]:
    """Which of the record values `wanted` the topic holds since `since_ms` (read_since). Used before producing
    undelivered records again: a message whose delivery timed out may still have been written."""
    found: set[bytes] = set()

    def visit(msg: Any) -> None:
        if msg.value() in wanted:
            found.add(msg.value())

    read_since(bootstrap, topic, since_ms, timeout, visit)
    return found


def trade_ids_in_topic(bootstrap: str, topic: str, pair: str, since_ms: int, first: int, last: int,
                       timeout: float) -> set[int]:
    """The v2 trade_ids in first..last of `pair` (the key) the topic holds in records since `since_ms`."""
    key, found = pair.encode("utf-8"), set()

    def visit(msg: Any) -> None:
        if msg.key() == key:
            ids = latest_trade_ids([(key, msg.value())], {key: pair})
            if ids and first <= ids[pair] <= last:
                found.add(ids[pair])

    read_since(bootstrap, topic, {-1: since_ms}, timeout, visit)
    return found
