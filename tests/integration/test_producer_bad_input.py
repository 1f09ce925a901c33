"""Hostile frames sent by the fake Kraken between good ones to a running producer (issue 15): it keeps running, every
good trade lands in the topic exactly once (with the exact values the fake sent), and the stats line counts the bad
ones. The frames are the ones that used to end the producer (exit 1) plus out-of-range times and numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.fake_kraken.server import FakeKraken
from tests.helpers import wait_until
from tests.integration.producer_helpers import (
    V1_PAIRS, V2_PAIRS, assert_topic_matches, start_producer, stats, stop_producer, total, wait_topic_count,
)

pytestmark = pytest.mark.integration

GOOD_V2 = ('{"symbol":"BTC/USDT","side":"buy","price":83744.3,"qty":0.00044780,"ord_type":"limit","trade_id":7,'
           '"timestamp":"2026-09-25T17:48:26.844359Z"}')
BAD_V2_ELEMENTS = [
    GOOD_V2.replace('"BTC/USDT"', '["BTC/USDT"]'),                          # symbol a list: was TypeError, exit 1
    GOOD_V2.replace('"BTC/USDT"', '{"BTC/USDT":1}'),                        # symbol an object
    GOOD_V2.replace("2026-09-25T17:48:26.844359Z", "2026-02-30T25:61:61.000000Z"),  # not a real date/time
    GOOD_V2.replace("26.844359Z", "26.844359+99:99"),                       # offset beyond ±14:00
    GOOD_V2.replace("83744.3", "1e400"),                                    # 400 digits once expanded
    GOOD_V2.replace("83744.3", "1e999999999"),                              # a gigabyte once expanded
]
BAD_V2_FRAMES = [
    '{"method":"subscribe","result":{"channel":"trade","symbol":["BTC/USDT"]},"success":true}',  # was exit 1
    "42", "not json", '{"channel":"trade","type":"update","data":{"symbol":"BTC/USDT"}}',
]
GOOD_V1 = '["5541.20000","0.15850568","1618678142.557535","s","l",""]'
BAD_V1_ELEMENTS = [
    GOOD_V1.replace("1618678142.557535", "999999999999.5"),  # year 33658
    '"123bl"',                                              # a string where a trade list belongs
    GOOD_V1.replace('"s"', '["s"]'),
]
BAD_V1_FRAMES = [
    '[0,[],"trade",["XBT/USDT"]]',                                          # pair a list: was TypeError, exit 1
    '{"event":"subscriptionStatus","status":"subscribed","pair":["XBT/USDT"],"channelName":"trade"}',
    "[1,2,3,4,5", '{"event":"systemStatus","status":["online"]}',
]


def test_v2_hostile_frames_between_good_ones(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(V2_PAIRS.values()), rate=0, seed=15, history=10, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v2"), bootstrap, topic, list(V2_PAIRS), "v2")
        wait_until(lambda: server.active_connections() == 1, 15, what="subscribed")
        server.step(5)
        frames = ['{"channel":"trade","type":"update","data":[' + e + "]}" for e in BAD_V2_ELEMENTS] + BAD_V2_FRAMES
        server.inject(frames + ['{"channel":"book","type":"update","data":[]}'], api="v2")
        server.step(5)
        server.emit_mixed("ETH/USD", 4, BAD_V2_ELEMENTS[:3])  # good, bad, good, bad, good, bad, good in one frame
        server.step(5)
        n = wait_until(lambda: total(server, "v2") == 3 * 25 + 4 and total(server, "v2"), 10, what="all sent")
        wait_topic_count(bootstrap, topic, n, 20)
        wait_until(lambda: stats(log).get("frames", 0) and stats(log)["malformed"] == 13, 10,
                   what="the stats line counting the 13 malformed elements/frames")
        assert proc.poll() is None, "the producer must keep running"
        assert stop_producer(proc) == 0, log.read_text()
    assert_topic_matches(bootstrap, topic, server, "v2", V2_PAIRS)
    final = stats(log, final=True)
    assert final["produced"] == final["delivered"] == n == 3 * 25 + 4
    assert (final["malformed"], final["unknown"], final["unexpected"]) == (13, 1, 0)
    text = log.read_text()
    assert "Traceback" not in text
    assert "bad timestamp (not a real date and time): '2026-02-30T25:61:61.000000Z'" in text
    assert "trade for unsubscribed symbol ['BTC/USDT']" in text


def test_v1_hostile_frames_between_good_ones(tmp_path: Path, bootstrap: str, new_topic):
    topic = new_topic(3)
    with FakeKraken(pairs=list(V1_PAIRS.values()), rate=0, seed=16, heartbeat_interval=0.5) as server:
        proc, log = start_producer(tmp_path, server.url("v1"), bootstrap, topic, list(V1_PAIRS), "v1")
        wait_until(lambda: server.active_connections() == 1, 15, what="subscribed")
        # the first trade XBT/USDT ever sees has time "": it used to pass, then kill the producer
        server.inject(['[0,[["5541.20000","0.15850568","","s","l",""]],"trade","XBT/USDT"]'], api="v1")
        server.step(5)
        server.inject(['[0,[' + e + '],"trade","XBT/USDT"]' for e in BAD_V1_ELEMENTS] + BAD_V1_FRAMES, api="v1")
        server.emit_mixed("DOGE/USD", 3, BAD_V1_ELEMENTS, api="v1")
        server.step(5)
        n = wait_until(lambda: total(server, "v1") == 3 * 10 + 3 and total(server, "v1"), 10, what="all sent")
        wait_topic_count(bootstrap, topic, n, 20)
        wait_until(lambda: stats(log).get("malformed") == 11, 10, what="the stats line counting 11 malformed")
        assert proc.poll() is None, "the producer must keep running"
        assert stop_producer(proc) == 0, log.read_text()
    assert_topic_matches(bootstrap, topic, server, "v1", V1_PAIRS)
    final = stats(log, final=True)
    assert final["produced"] == final["delivered"] == n == 3 * 10 + 3
    assert (final["malformed"], final["unexpected"]) == (11, 0)
    assert "Traceback" not in log.read_text()
