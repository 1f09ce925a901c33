"""Gaps filled from Kraken's REST trades (issue 13), against the fake Kraken (WebSocket + REST from one trade history)
and the real broker: after a disconnect, a kill -9 and REST faults the topic holds every trade_id of each pair
exactly once, contiguous, the backfilled ones with "source":"rest"; a gap older than REST's history is reported.
After the disconnect and the kill -9, Bronze and Silver (landed by the unchanged jobs) hold exactly what the topic
holds: each id once, with the same source.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lakehouse.fake_kraken.server import FakeKraken
from tests.helpers import wait_until
from tests.integration.producer_helpers import (
    RECOVERY_S, V2_PAIRS, assert_each_id_once, assert_values_match_market, high_watermarks, lake_trades,
    start_producer, stats, stop_producer, topic_trades, wait_topic_count,
)

# Over the default time limit (pyproject.toml): REST backfills at one call a second: up to 2.5 minutes per test loaded.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FAST_REST = ["--rest-interval", "0.2", "--rest-timeout", "2"]


def market_ids(server: FakeKraken, pairs: dict[str, str] = V2_PAIRS) -> dict[str, list[int]]:
    return {user: [t["trade_id"] for t in server.market_trades("v2")[native]] for user, native in pairs.items()}


def subscribed(server: FakeKraken, conns: int) -> None:
    wait_until(lambda: server.connection_count() >= conns and server.active_connections() == 1, 20,
               what=f"producer connection #{conns} subscribed")


def start(tmp_path: Path, server: FakeKraken, bootstrap: str, topic: str, conns: int, *extra: str):
    """Start the producer (fast REST pacing unless extra says otherwise) and wait for its subscription #conns."""
    proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(V2_PAIRS), "v2", *extra)
    subscribed(server, conns)
    return proc, log


def outage(server: FakeKraken, trades_per_pair: int) -> None:
    """Drop the producer's connection and refuse reconnects while the market makes `trades_per_pair` per pair."""
    server.set_hold(True)
    server.drop_connections()
    wait_until(lambda: server.counters["refused"] >= 1, 10, what="a refused reconnect")
    server.step(trades_per_pair)
    server.set_hold(False)


def settle(bootstrap: str, topic: str, server: FakeKraken, log: Path) -> dict:
    """Wait until the topic holds the whole market and no gap is open; the topic's trades per pair."""
    want = sum(map(len, market_ids(server).values()))
    wait_topic_count(bootstrap, topic, want, 60)
    wait_until(lambda: stats(log).get("open_gaps", 1) == 0 and stats(log).get("queue", 1) == 0, 30,
               what="no open gap in the stats line")
    return topic_trades(bootstrap, topic)


def test_disconnect_of_hundreds_of_trades_filled_from_rest(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=31, history=50, heartbeat_interval=0.5) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, 1)  # the default pacing: one REST call a second
        server.step(40)
        wait_topic_count(bootstrap, topic, 3 * 90, 20)
        outage(server, 400)                      # 350 per pair beyond the 50-trade snapshot
        subscribed(server, 2)
        server.step(30)                          # live trades keep flowing while the backfill runs
        got = settle(bootstrap, topic, server, log)
        assert stop_producer(proc) == 0, log.read_text()
    rest = assert_each_id_once(got, market_ids(server))
    text = log.read_text()
    for user, native in V2_PAIRS.items():
        ids = market_ids(server)[user]
        gap = ids[90:440]
        assert sorted(rest[user]) == gap, f"{user}: exactly the gap comes from REST"
        assert f"gap on {user}: trade_ids {gap[0]}..{gap[-1]} missing (350 trades): filling from REST" in text
        assert f"backfill {user}: trade_ids {gap[0]}..{gap[-1]} done, 350 trade(s) produced from REST" in text
    assert_values_match_market(bootstrap, topic, server, V2_PAIRS)
    assert lake_trades(bootstrap, topic, tmp_path) == (got, got)  # Bronze and Silver hold the same, once, sources kept
    final = stats(log, final=True)
    assert (final["gaps"], final["missing"], final["backfilled"], final["unfillable"]) == (3, 1050, 1050, 0)
    assert final["open_gaps"] == 0 and final["delivered"] == final["produced"] + final["backfilled"]


def test_kill_9_with_500_trades_made_while_down(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=32, history=50, heartbeat_interval=0.5) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, 1, *FAST_REST)
        server.step(60)
        wait_topic_count(bootstrap, topic, 3 * 110, 20)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        server.step(500)                          # while the producer is down: 450 per pair beyond the snapshot
        proc, log = start(tmp_path, server, bootstrap, topic, 2, *FAST_REST)
        server.step(20)
        got = settle(bootstrap, topic, server, log)
        assert stop_producer(proc) == 0, log.read_text()
    rest = assert_each_id_once(got, market_ids(server))
    for user in V2_PAIRS:
        assert len(rest[user]) == 450, user
    assert_values_match_market(bootstrap, topic, server, V2_PAIRS)
    assert lake_trades(bootstrap, topic, tmp_path) == (got, got)  # Bronze and Silver hold the same, once, sources kept
    final = stats(log, final=True)
    assert (final["backfilled"], final["unfillable"], final["open_gaps"]) == (1350, 0, 0)


def test_rest_faults_delay_but_lose_nothing(tmp_path: Path, bootstrap: str, new_topic):
    """Rate-limit errors, HTTP 5xx, an answer slower than --rest-timeout, then REST down for a while."""
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=33, history=50, heartbeat_interval=0.5) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, 1, *FAST_REST)
        server.step(20)
        server.add_rest_fault("ratelimit", n=2)
        server.add_rest_fault("error", status=502)
        server.add_rest_fault("slow", delay=3)
        outage(server, 200)
        subscribed(server, 2)
        wait_until(lambda: server.counters["rest_faults"] >= 4, 60, what="the four faults served")
        server.set_rest_down(True)
        server.step(200)                          # a second gap while REST is down: a reconnect to find it
        server.drop_connections()
        wait_until(lambda: server.counters["rest_refused"] >= 2, 60, what="REST calls refused while down")
        assert stats(log).get("open_gaps", 0) >= 1
        server.set_rest_down(False)
        got = settle(bootstrap, topic, server, log)
        assert stop_producer(proc) == 0, log.read_text()
    assert_each_id_once(got, market_ids(server))
    final = stats(log, final=True)
    assert final["rest_errors"] >= 6 and final["unfillable"] == 0 and final["open_gaps"] == 0
    text = log.read_text()
    assert "REST call failed (Kraken error: EAPI:Rate limit exceeded, rate limited)" in text
    assert "REST call failed (HTTP 502" in text and "timed out" in text


def test_gap_older_than_rest_history_is_reported(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=34, history=50, heartbeat_interval=0.5,
                    rest_depth=120) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, 1, *FAST_REST)
        server.step(10)
        wait_topic_count(bootstrap, topic, 3 * 60, 20)
        outage(server, 300)                       # REST keeps the newest 120: the 180 oldest of the gap are gone
        subscribed(server, 2)
        wait_until(lambda: stats(log).get("unfillable", 0) == 3 * 180 and stats(log)["open_gaps"] == 0, 30,
                   what="the unfillable part reported")
        assert stop_producer(proc) == 0, log.read_text()
    market = market_ids(server)
    text = log.read_text()
    lost = {}
    for user in V2_PAIRS:
        ids = market[user]
        lost[user] = ids[60:240]
        assert (f"backfill {user}: trade_ids {lost[user][0]}..{lost[user][-1]} (180 trades) cannot be filled: "
                f"older than REST's history") in text
    got = topic_trades(bootstrap, topic)
    assert_each_id_once(got, {u: [i for i in ids if i not in set(lost[u])] for u, ids in market.items()})
    final = stats(log, final=True)
    assert (final["unfillable"], final["backfilled"]) == (540, 3 * 70)


def test_broker_down_longer_than_delivery_timeout_every_id_once(tmp_path: Path, private_broker):
    """A private broker (ports 29192/29193, never the shared one) stopped for longer than --delivery-timeout while
    trades flow: deliveries fail, the producer keeps them, and once the broker is back it produces again exactly
    those the topic does not hold. The producer also creates the topic itself (3 partitions)."""
    from tests.integration.producer_helpers import total

    bootstrap, up, down = private_broker
    topic = f"t-outage-{os.getpid()}"
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=150, seed=35, history=0, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(V2_PAIRS), "v2",
                                   "--delivery-timeout", "3")
        wait_until(lambda: stats(log).get("delivered", 0) >= 200, 30, what="deliveries before the outage")
        assert f"created topic {topic} (3 partitions, replication factor 1)" in log.read_text()
        down()
        wait_until(lambda: stats(log).get("failed", 0) >= 300, 60, what="deliveries failing during the outage")
        assert proc.poll() is None, "the producer must ride out the outage"
        up()
        wait_until(lambda: stats(log).get("failed", 1) == stats(log).get("refilled", 0)
                   + stats(log).get("refill_found", 0) and stats(log).get("undelivered", 1) == 0, RECOVERY_S,
                   what="every failed delivery produced again or found in the topic")
        server.halt_market()
        n = wait_until(lambda: total(server, "v2"), 5, what="trades sent")
        wait_topic_count(bootstrap, topic, n, RECOVERY_S)
        assert stop_producer(proc) == 0, log.read_text()
    got = topic_trades(bootstrap, topic)
    assert_each_id_once(got, market_ids(server))
    final = stats(log, final=True)
    assert final["failed"] >= 300 and final["refilled"] > 0 and final["undelivered"] == 0
    assert high_watermarks(bootstrap, topic) == n


def test_trades_undelivered_at_shutdown_exit_1(tmp_path: Path, private_broker):
    """Stopped while the broker is down: what could not be delivered is counted in the last log line and the exit
    code is 1, so a supervisor (or a user) knows trades are missing from the topic."""
    bootstrap, up, down = private_broker
    topic = f"t-undelivered-{os.getpid()}"
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=100, seed=36, history=0, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(V2_PAIRS), "v2",
                                   "--delivery-timeout", "3", "--flush-timeout", "3")
        wait_until(lambda: stats(log).get("delivered", 0) >= 50, 30, what="deliveries before the outage")
        down()
        try:
            wait_until(lambda: stats(log).get("failed", 0) >= 50, 60, what="deliveries failing")
            code = stop_producer(proc, timeout=60)
        finally:
            up()
    text = log.read_text()
    assert code == 1, text[-3000:]
    final = stats(log, final=True)
    assert final["undelivered"] >= 50 and final["failed"] >= 50, final
    assert f"{final['undelivered']} message(s) NOT delivered" in text


def test_sigterm_during_a_backfill_waits_for_it(tmp_path: Path, bootstrap: str, new_topic):
    """Ctrl-C/SIGTERM while a gap is open: the producer lets the backfill finish (within --flush-timeout) first."""
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=36, history=50, heartbeat_interval=0.5) as server:
        proc, log = start(tmp_path, server, bootstrap, topic, 1, "--rest-interval", "0.2", "--rest-timeout", "10")
        server.step(10)
        wait_topic_count(bootstrap, topic, 3 * 60, 20)
        server.add_rest_fault("slow", n=3, delay=2)   # every pair's first REST call answers after 2 s
        outage(server, 200)
        subscribed(server, 2)
        wait_until(lambda: stats(log).get("open_gaps", 0) == 3, 20, what="three open gaps")
        assert stop_producer(proc, timeout=60) == 0, log.read_text()
    got = topic_trades(bootstrap, topic)
    assert_each_id_once(got, market_ids(server))
    text = log.read_text()
    assert "waiting up to 20s for the backfill of 3 open gap(s)" in text and "still missing at shutdown" not in text


def test_kill_9_in_the_middle_of_a_backfill_the_restart_finishes_it(tmp_path: Path, bootstrap: str, new_topic):
    """The records of a pair with open gaps name them in a header; the restart reads the newest one, checks which
    of those ids the topic holds, and fills the rest: every id once although the first run died mid-backfill."""
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=37, history=50, heartbeat_interval=0.5) as server:
        server.rest_page_size = 40                # 300-trade gaps take several one-second REST calls each
        proc, log = start(tmp_path, server, bootstrap, topic, 1)
        server.step(10)
        wait_topic_count(bootstrap, topic, 3 * 60, 20)
        outage(server, 350)
        subscribed(server, 2)
        wait_until(lambda: 40 <= stats(log).get("backfilled", 0) and stats(log)["open_gaps"] == 3, 30,
                   what="a backfill under way")
        wait_topic_count(bootstrap, topic, 3 * 110 + stats(log)["backfilled"], 20)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        server.rest_page_size = 1000
        proc, log = start(tmp_path, server, bootstrap, topic, 3, *FAST_REST)
        got = settle(bootstrap, topic, server, log)
        assert stop_producer(proc) == 0, log.read_text()
    assert_each_id_once(got, market_ids(server))
    text = log.read_text()
    for user in V2_PAIRS:
        assert f"resume: {user} had trade_ids " in text and "still to fill when the last run stopped" in text
