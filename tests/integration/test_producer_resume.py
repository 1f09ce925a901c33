"""Producer restarts (Ctrl-C, kill -9) with API v2: resumed from the topic, every trade lands exactly once.

The producer runs as a subprocess as a user runs it, against the fake Kraken (in this process) and the real broker.
While it is down the market keeps trading a little (fewer than the snapshot's 50 trades per pair), so the restart
must fill the downtime from the snapshot and skip what the topic already holds. --no-resume shows the duplicates
the feature removes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from lakehouse.fake_kraken.server import FakeKraken
from tests.helpers import wait_until
from tests.integration.producer_helpers import (
    by_key, consume_all, high_watermarks, start_producer, stats, strip_ingest, wait_topic_count,
)

pytestmark = pytest.mark.integration

PAIRS = {"XBT/USDT": "BTC/USDT", "ETH/USD": "ETH/USD", "XDG/USD": "DOGE/USD"}  # user spelling -> fake's pair
DOWNTIME_TRADES = 20  # per pair while the producer is down: fits in the 50-trade snapshot


class Market(threading.Thread):
    """Trades on every pair from a thread: `run_fast()` while the producer is up, `trickle(n)` while it is down
    (one trade per pair every 0.05 s, at most n per pair, counted in `trickled`)."""

    def __init__(self, server: FakeKraken) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.mode, self.budget, self.trickled = "idle", 0, 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05 if self.mode == "trickle" else 0.02):
            with self.lock:
                if self.mode == "fast":
                    self.server.step(1)            # ~50 trades/s per pair, in batches
                elif self.mode == "trickle" and self.trickled < self.budget:
                    self.server.step(1)
                    self.trickled += 1

    def run_fast(self) -> None:
        with self.lock:
            self.mode = "fast"

    def trickle(self, n: int) -> None:
        with self.lock:
            self.mode, self.budget, self.trickled = "trickle", n, 0

    def halt(self) -> int:
        """Stop trading; returns how many trades were trickled per pair since the last trickle()."""
        with self.lock:
            self.mode = "idle"
            return self.trickled

    def __enter__(self) -> "Market":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.join(5)


def start(tmp_path: Path, server: FakeKraken, bootstrap: str, topic: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Start the producer and wait until its (new) connection is subscribed on the fake."""
    conns = server.connection_count()
    proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(PAIRS), "v2", *extra)
    wait_until(lambda: server.connection_count() > conns and server.active_connections() == 1, 20,
               what="the producer subscribed")
    return proc, log


def sigint(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text()


def last_ids(bootstrap: str, topic: str) -> dict[str, int]:
    return {user: vs[-1]["trade_id"] for user, vs in by_key(consume_all(bootstrap, topic)).items()}


def market_ids(server: FakeKraken) -> dict[str, list[int]]:
    return {user: [t["trade_id"] for t in server.market_trades("v2")[native]] for user, native in PAIRS.items()}


def assert_every_trade_once(bootstrap: str, topic: str, server: FakeKraken) -> None:
    """The topic holds the whole market (history included), each trade once, per pair in trade_id order, with the
    exact values the fake sent."""
    market = market_ids(server)
    wait_topic_count(bootstrap, topic, sum(map(len, market.values())), 20)
    got = by_key(consume_all(bootstrap, topic))
    sent = server.sent_trades("v2")
    assert sorted(got) == sorted(PAIRS)
    for user, native in PAIRS.items():
        ids = [v["trade_id"] for v in got[user]]
        assert ids == market[user], f"{user}: not every trade exactly once, contiguous"
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert strip_ingest(got[user], "v2") == sent[native], f"{user}: values differ from what the fake sent"


@pytest.mark.quick
def test_sigint_restart_resumes_from_the_topic(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(PAIRS.values()), rate=0, seed=21, max_batch=4, history=50,
                    heartbeat_interval=0.5) as server, Market(server) as market:
        proc, log = start(tmp_path, server, bootstrap, topic)
        market.run_fast()
        wait_topic_count(bootstrap, topic, 600, 20)  # hundreds of trades over three pairs
        market.trickle(DOWNTIME_TRADES)
        sigint(proc, log)
        before = last_ids(bootstrap, topic)
        proc, log = start(tmp_path, server, bootstrap, topic)
        down = market.halt()
        market.run_fast()
        wait_topic_count(bootstrap, topic, high_watermarks(bootstrap, topic) + 150, 20)
        market.halt()
        assert_every_trade_once(bootstrap, topic, server)
        sigint(proc, log)
    assert 0 < down <= DOWNTIME_TRADES
    text = log.read_text()
    for user in PAIRS:
        assert f"resuming {user} after trade_id {before[user]}" in text
    final = stats(log, final=True)
    # the snapshot re-sent the trades already in the topic (at least 50 - down per pair): skipped, not produced again;
    # the downtime's trades it held were produced (a trickled trade may also come after the snapshot, as an update)
    assert 3 * (50 - down) <= final["dups"] < 3 * 50
    assert final["gaps"] == 0 and final["missing"] == 0
    assert final["produced"] == final["delivered"]


def test_kill_9_three_times_every_trade_once(tmp_path: Path, bootstrap: str, new_topic):
    """kill -9 mid-stream: trades the fake already sent but the producer had not yet delivered (in its socket or
    librdkafka's queue) die with it; the topic has no trace of them, so the resume point is before them and the
    snapshot produces them again (how many there are at each kill is up to timing: 0 to a few per run here)."""
    topic = new_topic(3)
    with FakeKraken(pairs=list(PAIRS.values()), rate=0, seed=22, max_batch=4, history=50,
                    heartbeat_interval=0.5) as server, Market(server) as market:
        proc, log = start(tmp_path, server, bootstrap, topic)
        market.run_fast()
        for _ in range(3):
            wait_topic_count(bootstrap, topic, high_watermarks(bootstrap, topic) + 150, 20)
            os.killpg(proc.pid, signal.SIGKILL)   # trades keep coming in until the very end
            assert proc.wait(10) == -signal.SIGKILL
            market.trickle(DOWNTIME_TRADES)
            proc, log = start(tmp_path, server, bootstrap, topic)
            assert 0 < market.halt() <= DOWNTIME_TRADES
            text = log.read_text()
            assert all(f"resuming {user} after trade_id " in text for user in PAIRS), text
            market.run_fast()
        wait_topic_count(bootstrap, topic, high_watermarks(bootstrap, topic) + 150, 20)
        market.halt()
        assert_every_trade_once(bootstrap, topic, server)
        sigint(proc, log)
    final = stats(log, final=True)
    assert final["gaps"] == 0 and final["missing"] == 0 and final["produced"] == final["delivered"]


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "no-resume"])
def test_restart_without_resume_doubles_the_snapshot(tmp_path: Path, bootstrap: str, new_topic, resume: bool):
    """Deterministic market: 100 trades per pair, stop, 10 more while down, restart, 5 more. Without resume the
    restart's snapshot re-produces the 40 trades per pair the topic already holds; with it, none."""
    topic = new_topic(3)
    extra = [] if resume else ["--no-resume"]
    with FakeKraken(pairs=list(PAIRS.values()), rate=0, seed=23, max_batch=4, history=50,
                    heartbeat_interval=0.5) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, *extra)
        server.step(100)
        wait_topic_count(bootstrap, topic, 3 * 150, 20)
        sigint(proc, log)
        first_run = market_ids(server)
        server.step(10)                             # while down
        proc, log = start(tmp_path, server, bootstrap, topic, *extra)
        server.step(5)
        doubled = 40 if not resume else 0
        wait_topic_count(bootstrap, topic, 3 * (150 + 15 + doubled), 20)
        sigint(proc, log)
        market = market_ids(server)
    got = by_key(consume_all(bootstrap, topic))
    for user in PAIRS:
        ids = [v["trade_id"] for v in got[user]]
        redone = first_run[user][len(first_run[user]) - doubled:]
        assert ids == first_run[user] + redone + market[user][150:]
        assert len(ids) - len(set(ids)) == doubled
    text = log.read_text()
    final = stats(log, final=True)
    if resume:
        assert all(f"resuming {user} after trade_id {first_run[user][-1]}" in text for user in PAIRS)
        assert final["dups"] == 3 * 40 and final["produced"] == 3 * 15
    else:
        assert "resume: disabled (--no-resume)" in text and "resuming" not in text
        assert final["dups"] == 0 and final["produced"] == 3 * 55


def resume_value(pair: str, tid: int | None, api: str = "v2", ts: str = "2026-01-01T00:00:00.000000Z") -> bytes:
    import json

    return json.dumps({"symbol": pair, "price": "1.5", "size": "0.1", "side": "buy", "ord_type": "limit",
                       "trade_id": tid, "ts_event": ts, "ts_ingest": ts, "api": api, "pair_native": pair}).encode()


def test_resume_scan_reads_back_through_several_chunks(bootstrap: str, new_topic, caplog):
    """The real backwards scan on a topic whose newest trade of a pair lies 25,000 records back: chunks of 2,000,
    then 20,000, then the rest are read until it is found; a newer v1 record of the pair (no id) is not a resume
    point; a pair the topic never held is not found; --resume-scan-limit stops the scan; a missing topic is {}."""
    import logging

    from confluent_kafka import Producer

    from lakehouse.producer.resume import read_resume_points

    topic = new_topic(2)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for tid in range(1, 6):
        producer.produce(topic, resume_value("XBT/USDT", tid, ts=f"2026-01-01T00:00:0{tid}.000000Z"),
                         b"XBT/USDT", partition=0)
    producer.produce(topic, resume_value("XBT/USDT", None, api="v1"), b"XBT/USDT", partition=0)
    for n in range(25_000):
        producer.produce(topic, b'{"filler": %d}' % n, b"OTHER/KEY", partition=0)
        if n % 5000 == 0:
            producer.poll(0)
    for tid in (10, 12, 11):
        producer.produce(topic, resume_value("ETH/USD", tid), b"ETH/USD", partition=1)
    assert producer.flush(60) == 0
    times: dict = {}
    with caplog.at_level(logging.INFO, logger="lakehouse.producer.resume"):
        found = read_resume_points(bootstrap, topic, ["XBT/USDT", "ETH/USD", "DOGE/USD"], 200_000, 60, times)
    assert found == {"XBT/USDT": 5, "ETH/USD": 12}
    assert times == {"XBT/USDT": "2026-01-01T00:00:05.000000Z", "ETH/USD": "2026-01-01T00:00:00.000000Z"}
    assert f"resume: read 25009 record(s) of {topic} (2 partition(s), 3 chunk(s) deep)" in caplog.text
    assert read_resume_points(bootstrap, topic, ["XBT/USDT", "ETH/USD"], 20_000, 60) == {"ETH/USD": 12}
    assert read_resume_points(bootstrap, f"{topic}-missing", ["XBT/USDT"], 200_000, 10) == {}
