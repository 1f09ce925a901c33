"""Helpers for the Kraken producer integration tests: run the producer as a user does, read the topic back exactly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from fake_kraken import FakeKraken
from tests.helpers import start_script, wait_until

PRODUCER = "ingestion/kraken_trades_ws.py"
V2_PAIRS = {"XBT/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "DOGE/USD": "DOGE/USD"}  # user spelling -> fake's pair
V1_PAIRS = {"BTC/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "XDG/USD": "DOGE/USD"}
ISO_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
# fast reconnects for tests: the watchdog stays above the fake's 0.5 s heartbeat interval
FAST_FLAGS = ["--watchdog", "2.5", "--backoff-initial", "0.1", "--backoff-max", "0.5", "--stats-interval", "1",
              "--ack-timeout", "5", "--linger-ms", "2", "--flush-timeout", "20"]


def start_producer(tmp_path: Path, url: str, bootstrap: str, topic: str, pairs: list[str], api: str,
                   *extra: str) -> tuple[subprocess.Popen, Path]:
    log_path = tmp_path / f"producer-{uuid.uuid4().hex[:6]}.log"
    args = ["--ws-url", url, "--bootstrap", bootstrap, "--topic", topic, "--api", api, *FAST_FLAGS, *extra]
    for p in pairs:
        args += ["--pair", p]
    return start_script(PRODUCER, *args, log_path=log_path), log_path


def stop_producer(proc: subprocess.Popen, timeout: float = 30) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def stats(log_path: Path, final: bool = False) -> dict[str, int]:
    """The last `stats`/`final stats` line of the producer's log as a dict (empty before the first one)."""
    marker = "final stats " if final else "stats "
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if marker in ln]
    if not lines:
        return {}
    return {k: int(v) for k, v in (kv.split("=") for kv in lines[-1].split(marker, 1)[1].split())}


def high_watermarks(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{uuid.uuid4().hex}"})
    try:
        md = c.list_topics(topic, timeout=10)
        total = 0
        for p in md.topics[topic].partitions:
            total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


def wait_topic_count(bootstrap: str, topic: str, n: int, timeout: float) -> None:
    wait_until(lambda: high_watermarks(bootstrap, topic) >= n, timeout, interval=0.3,
               message=f"{n} messages in {topic}")


def consume_all(bootstrap: str, topic: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Every message up to the current end of every partition, as dicts (key, value, partition, offset)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[dict[str, Any]] = []
        pos = {p: 0 for p in parts}

        def done() -> bool:
            while True:
                msg = c.poll(0.2)
                if msg is None:
                    return all(pos[p] >= ends[p] for p in parts)
                assert msg.error() is None, msg.error()
                pos[msg.partition()] = msg.offset() + 1
                if msg.offset() < ends[msg.partition()]:
                    out.append({"key": msg.key().decode("utf-8"), "value": json.loads(msg.value().decode("utf-8")),
                                "partition": msg.partition(), "offset": msg.offset()})
                if all(pos[p] >= ends[p] for p in parts):
                    return True

        wait_until(done, timeout, interval=0.05, message=f"reading {topic} to its end")
        return sorted(out, key=lambda m: (m["partition"], m["offset"]))
    finally:
        c.close()


def by_key(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Values per key, in offset order; asserts each key lives in a single partition."""
    out: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, set[int]] = {}
    for m in messages:
        out.setdefault(m["key"], []).append(m["value"])
        parts.setdefault(m["key"], set()).add(m["partition"])
    for key, ps in parts.items():
        assert len(ps) == 1, f"key {key} spread over partitions {ps}"
    return out


def strip_ingest(values: list[dict[str, Any]], api: str) -> list[dict[str, Any]]:
    """Check the fields the fake cannot know (ts_ingest, symbol, api), return the rest for an exact comparison."""
    rows = []
    for v in values:
        assert set(v) == {"symbol", "price", "size", "side", "ord_type", "trade_id", "ts_event", "ts_ingest", "api",
                          "pair_native"}, sorted(v)
        assert ISO_US.match(v["ts_ingest"]) and ISO_US.match(v["ts_event"]), v
        assert v["api"] == api
        rows.append({k: v[k] for k in ("pair_native", "price", "size", "side", "ord_type", "trade_id", "ts_event")})
    return rows


def expected(server: FakeKraken, api: str, pairs: dict[str, str]) -> dict[str, list[dict]]:
    sent = server.sent_trades(api)
    return {user: sent[native] for user, native in pairs.items()}


def assert_topic_matches(bootstrap: str, topic: str, server: FakeKraken, api: str, pairs: dict[str, str]) -> dict:
    want = expected(server, api, pairs)
    got = by_key(consume_all(bootstrap, topic))
    assert sorted(got) == sorted(k for k, v in want.items() if v)
    for user, rows in want.items():
        values = got.get(user, [])
        assert all(v["symbol"] == user for v in values)
        assert strip_ingest(values, api) == rows, f"{user}: topic differs from what the fake sent"
    return got


def total(server: FakeKraken, api: str) -> int:
    return sum(len(v) for v in server.sent_trades(api).values())
