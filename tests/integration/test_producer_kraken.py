"""The Kraken producer run as a user runs it, against the fake Kraken (in this process) and the real broker.

Every test compares the topic with exactly what the fake sent: keys, per-pair order, decimal text, times, ids.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from lakehouse.fake_kraken.server import FakeKraken
from tests.helpers import run_script, wait_until
from tests.integration.producer_helpers import (
    RECOVERY_S, V1_PAIRS, V2_PAIRS, assert_topic_matches, start_producer, stats, stop_producer, total,
    wait_topic_count,
)

pytestmark = pytest.mark.integration

@pytest.mark.quick
@pytest.mark.parametrize("api,pairs,decimals", [("v2", V2_PAIRS, None), ("v1", V1_PAIRS, 17)])
def test_three_pairs_every_trade_once_in_order(tmp_path: Path, bootstrap: str, new_topic, api, pairs, decimals):
    topic = new_topic(3)
    with FakeKraken(pairs=list(pairs.values()), rate=2500, count=4000, seed=11, max_batch=8, history=50,
                    decimals=decimals, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url(api), bootstrap, topic, list(pairs), api)
        wait_until(lambda: server.generated >= 4000, 30, what="4000 trades generated")
        n = total(server, api)
        wait_topic_count(bootstrap, topic, n, 30)
        assert stop_producer(proc) == 0, log.read_text()
    got = assert_topic_matches(bootstrap, topic, server, api, pairs)
    assert sum(map(len, got.values())) == n >= 4000
    final = stats(log, final=True)
    assert final["produced"] == final["delivered"] == n and final["failed"] == 0 and final["malformed"] == 0
    if api == "v2":  # 50 snapshot trades of history per pair, then contiguous live trades
        for user, native in pairs.items():
            ids = [v["trade_id"] for v in got[user]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            assert ids[-1] == server.last_trade_id(native)
    else:
        assert all(v["trade_id"] is None for vs in got.values() for v in vs)
        assert any(len(v["price"].split(".")[1]) == 17 for v in got["BTC/USDT"])


@pytest.mark.quick
def test_v2_faults_mid_stream_every_trade_once_and_contiguous(tmp_path: Path, bootstrap: str, new_topic):
    """Abrupt drop, close 1001, silence, maintenance, rate-limit error, malformed frames — trades keep happening."""
    topic = new_topic(3)
    pairs = V2_PAIRS
    with FakeKraken(pairs=list(pairs.values()), rate=30, seed=5, max_batch=3, history=60,
                    heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(pairs), "v2")

        def progressed(conns: int) -> None:
            wait_until(lambda: server.connection_count() >= conns and server.active_connections() == 1, 15,
                       what=f"producer connection #{conns} subscribed")
            before = server.counters["trades_sent"]
            wait_until(lambda: server.counters["trades_sent"] >= before + 10, 10, what="trades flowing")

        progressed(1)
        server.drop_connections()                 # 1006 for the client
        progressed(2)
        server.close_connections(1001)            # "CloudFlare WebSocket proxy restarting"
        progressed(3)
        server.freeze_connections()               # silence: only the watchdog notices
        progressed(4)
        server.set_system("maintenance")          # no trades, heartbeats only: must not reconnect
        time.sleep(3.0)                           # longer than the watchdog: heartbeats keep the socket alive
        assert server.connection_count() == 4
        server.set_system("online")
        server.rate_limit_next(1)                 # next subscribe answered {"Error":"Exceeded msg rate"}
        server.drop_connections()
        progressed(6)
        assert server.counters["rate_limited"] == 1
        bad = ["not json at all", b"\xff\xfe not utf-8", '{"channel":"trade","type":"update","data":"x"}',
               '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USDT","price":"abc"}]}']
        server.inject(bad + ['{"channel":"book","type":"update","data":[]}'])
        progressed(6)
        server.halt_market()
        n = total(server, "v2")
        wait_topic_count(bootstrap, topic, n, 20)
        assert stop_producer(proc) == 0, log.read_text()
    got = assert_topic_matches(bootstrap, topic, server, "v2", pairs)
    for user, native in pairs.items():
        ids = [v["trade_id"] for v in got[user]]
        assert ids == list(range(ids[0], server.last_trade_id(native) + 1)), f"{user}: not contiguous"
    final = stats(log, final=True)
    assert final["gaps"] == 0 and final["missing"] == 0
    assert final["malformed"] == 4 and final["unknown"] == 1
    assert final["reconnects"] == 5 and final["dups"] > 0
    assert final["delivered"] == final["produced"] == n
    text = log.read_text()
    assert "code=1001" in text and "watchdog" in text and "Exceeded msg rate" in text and "maintenance" in text


def test_v2_gap_filled_by_snapshot_or_counted(tmp_path: Path, bootstrap: str, new_topic):
    """--no-backfill: a gap the snapshot cannot fill is only logged and counted (with backfill, see
    test_producer_backfill.py)."""
    topic = new_topic(3)
    pairs = {"XBT/USDT": "BTC/USDT", "ETH/USD": "ETH/USD"}
    with FakeKraken(pairs=list(pairs.values()), rate=0, seed=9, history=5, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(pairs), "v2", "--no-backfill")
        wait_until(lambda: server.active_connections() == 1, 15, what="subscribed")
        server.step(20)

        def outage(missed_per_pair: int, conns: int) -> None:
            wait_topic_count(bootstrap, topic, total(server, "v2"), 15)  # nothing in flight when the link dies
            server.set_hold(True)                 # handshakes refused (503) while trades happen
            server.drop_connections()
            wait_until(lambda: server.counters["refused"] >= 1, 10, what="a refused reconnect")
            server.step(missed_per_pair)
            server.counters["refused"] = 0
            server.set_hold(False)
            wait_until(lambda: server.connection_count() >= conns and server.active_connections() == 1, 15,
                       what="reconnected")

        outage(45, 2)   # fits in the 50-trade snapshot: filled, no gap
        server.step(3)
        outage(130, 3)  # 80 of 130 missed trades are beyond the snapshot: one gap per pair
        server.step(3)
        n = total(server, "v2")
        wait_topic_count(bootstrap, topic, n, 20)
        assert stop_producer(proc) == 0, log.read_text()
    got = assert_topic_matches(bootstrap, topic, server, "v2", pairs)
    market = server.market_trades("v2")
    text = log.read_text()
    for user, native in pairs.items():
        ids = [v["trade_id"] for v in got[user]]
        all_ids = [t["trade_id"] for t in market[native]]
        missing = sorted(set(all_ids) - set(ids))
        assert len(missing) == 80 and missing == list(range(missing[0], missing[0] + 80))
        assert ids == [i for i in all_ids if i not in set(missing)]  # everything else, once, in order
        assert f"gap on {user}: trade_ids {missing[0]}..{missing[-1]} missing (80 trades)" in text
        assert f"gaps on {user}: 1 gap(s), 80 trade(s) missing" in text
    final = stats(log, final=True)
    assert final["gaps"] == 2 and final["missing"] == 160


@pytest.mark.parametrize("api,pair,native,error", [
    ("v2", "FOO/USD", "FOO/USD", "Currency pair not supported FOO/USD"),
    ("v1", "BTC/FOO", "XBT/FOO", "Pair(s) not found"),
])
def test_rejected_pair_exits_3_naming_it(tmp_path: Path, bootstrap: str, new_topic, api, pair, native, error):
    topic = new_topic(3)
    with FakeKraken(pairs=["BTC/USDT"], rate=50, heartbeat_interval=0.5) as server:
        t0 = time.monotonic()
        result = run_script("ingestion/kraken_trades_ws.py", "--ws-url", server.url(api), "--api", api,
                            "--bootstrap", bootstrap, "--topic", topic, "--pair", "XBT/USDT", "--pair", pair,
                            timeout=60)
    assert result.returncode == 3, result.stderr
    assert f"Kraken rejected pair '{pair}' (sent as '{native}' on {api}): {error}" in result.stderr
    assert time.monotonic() - t0 < 30


def test_unreachable_broker_fails_fast(tmp_path: Path):
    t0 = time.monotonic()
    result = run_script("ingestion/kraken_trades_ws.py", "--bootstrap", "127.0.0.1:9", "--startup-timeout", "2",
                        "--ws-url", "ws://127.0.0.1:9/v2", timeout=30)
    assert result.returncode == 1
    assert "Kafka broker unreachable at 127.0.0.1:9" in result.stderr
    assert time.monotonic() - t0 < 15


def test_usage_errors_exit_2():
    result = run_script("ingestion/kraken_trades_ws.py", "--pair", "XBT/USDT", "--pair", "BTC/USDT", timeout=30)
    assert result.returncode == 2 and "same Kraken pair (BTC/USDT)" in result.stderr
    result = run_script("ingestion/kraken_trades_ws.py", "--pair", "XBT-USDT", timeout=30)
    assert result.returncode == 2 and "expected BASE/QUOTE" in result.stderr


def test_stopped_broker_comes_back_nothing_lost(tmp_path: Path, private_broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap, up, down = private_broker
    topic = f"t-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep a reference until the future resolves
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    pairs = V2_PAIRS
    with FakeKraken(pairs=list(pairs.values()), rate=300, seed=3, history=0, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(pairs), "v2")
        wait_until(lambda: stats(log).get("delivered", 0) >= 200, 20, what="deliveries before the outage")
        down()
        outage_start = server.counters["trades_sent"]
        wait_until(lambda: server.counters["trades_sent"] >= outage_start + 600, 20, what="trades during outage")
        assert proc.poll() is None, "producer must ride out the outage"
        up()
        server.halt_market()
        n = total(server, "v2")
        wait_topic_count(bootstrap, topic, n, RECOVERY_S)
        assert stop_producer(proc) == 0, log.read_text()
    assert_topic_matches(bootstrap, topic, server, "v2", pairs)
    final = stats(log, final=True)
    assert final["failed"] == 0 and final["delivered"] == final["produced"] == n


def test_topic_created_at_start_an_existing_one_left_alone(tmp_path: Path, bootstrap: str, new_topic):
    from confluent_kafka.admin import AdminClient

    from lakehouse.producer.kafka_sink import ensure_topic

    fresh = f"t-created-{uuid.uuid4().hex[:8]}"
    existing = new_topic(1)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        with FakeKraken(pairs=["BTC/USDT"], rate=0, heartbeat_interval=0.5) as server:
            for topic, extra in ((fresh, ["--partitions", "2"]), (existing, ["--partitions", "5"])):
                proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, ["XBT/USDT"], "v2", *extra)
                wait_until(lambda: server.active_connections() == 1, 15, what="subscribed")
                assert stop_producer(proc) == 0, log.read_text()
                assert ("created topic" in log.read_text()) == (topic == fresh)
        parts = {t: len(admin.list_topics(timeout=10).topics[t].partitions) for t in (fresh, existing)}
        assert parts == {fresh: 2, existing: 1}
        assert ensure_topic(bootstrap, fresh, 4) is None  # exists: nothing done
    finally:
        admin.delete_topics([fresh])


def test_kraken_unreachable_keeps_retrying_until_stopped(tmp_path: Path, bootstrap: str, new_topic):
    """`make run` without a route to Kraken: clear retry lines, never an exit, until Ctrl-C (exit 0)."""
    topic = new_topic(3)
    proc, log = start_producer(tmp_path, "ws://127.0.0.1:9/v2", bootstrap, topic, ["XBT/USDT"], "v2")
    wait_until(lambda: log.read_text().count("reconnecting in") >= 5, 30, what="five retries")
    assert proc.poll() is None
    text = log.read_text()
    assert "connection lost: connect to ws://127.0.0.1:9/v2 failed: [Errno 111] Connection refused" in text
    assert "Traceback" not in text
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text()
