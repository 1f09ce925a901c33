"""Unit tests of the producer's resume-from-the-topic logic: scan windows, picking the last trade_id, seeding."""

from __future__ import annotations

import json
import logging

import pytest

from kraken_feed import resume, session
import kraken_trades_ws as cli
from tests.unit.test_kraken_producer import app, v2_frame


@pytest.mark.parametrize("low,high,limit,windows", [
    (0, 50_000, 200_000, [(48_000, 50_000), (30_000, 48_000), (0, 30_000)]),
    (0, 1_000_000, 200_000, [(998_000, 1_000_000), (980_000, 998_000), (800_000, 980_000)]),
    (0, 3_000_000, 2_000_000, [(2_998_000, 3_000_000), (2_980_000, 2_998_000), (2_800_000, 2_980_000),
                               (1_000_000, 2_800_000)]),
    (45_000, 50_000, 200_000, [(48_000, 50_000), (45_000, 48_000)]),   # retention: nothing below the low watermark
    (100, 1_500, 200_000, [(100, 1_500)]),
    (0, 10_000, 500, [(9_500, 10_000)]),                                # the cap is smaller than the first chunk
    (0, 0, 200_000, []),                                                # empty partition
    (7, 7, 200_000, []),                                                # emptied by retention
])
def test_scan_windows_newest_first_contiguous_and_capped(low, high, limit, windows):
    got = resume.scan_windows(low, high, limit)
    assert got == windows
    assert sum(e - s for s, e in got) == min(limit, high - low)
    assert all(got[i][0] == got[i + 1][1] for i in range(len(got) - 1))  # no hole, no overlap


def value(pair: str, tid, api: str = "v2") -> bytes:
    return json.dumps({"symbol": pair, "price": "1.5", "size": "0.1", "side": "buy", "ord_type": "limit",
                       "trade_id": tid, "ts_event": "2026-01-01T00:00:00.000000Z",
                       "ts_ingest": "2026-01-01T00:00:00.000001Z", "api": api, "pair_native": pair}).encode()


def test_latest_trade_ids_only_matching_keys_and_v2_ids():
    keys = {b"XBT/USDT": "XBT/USDT", b"ETH/USD": "ETH/USD"}
    records = [
        (b"XBT/USDT", value("XBT/USDT", 10)),
        (b"XBT/USDT", value("XBT/USDT", 12)),
        (b"XBT/USDT", value("XBT/USDT", 11)),           # max, not last
        (b"BTC/USDT", value("BTC/USDT", 99)),           # same Kraken pair typed differently: another key
        (b"ETH/USD", value("ETH/USD", None, "v1")),     # v1 record: no id
        (b"ETH/USD", value("ETH/USD", 500, "v1")),      # api v1 even with an id: not ours
        (b"ETH/USD", b"not json"),
        (b"ETH/USD", b"\xff\xfe"),
        (b"ETH/USD", None),                             # tombstone
        (b"ETH/USD", b"[1, 2]"),
        (b"ETH/USD", value("ETH/USD", True)),           # bool is not an id
        (b"ETH/USD", value("ETH/USD", "7")),            # nor is text
        (None, value("XBT/USDT", 1000)),                # no key
    ]
    assert resume.latest_trade_ids(records, keys) == {"XBT/USDT": 12}
    acc = {"ETH/USD": 40, "XBT/USDT": 20}
    assert resume.latest_trade_ids([(b"ETH/USD", value("ETH/USD", 41)), (b"XBT/USDT", value("XBT/USDT", 19))], keys,
                              acc) is acc
    assert acc == {"ETH/USD": 41, "XBT/USDT": 20}


def produced_ids(a: session.TradeProducer) -> list[int]:
    return [v["trade_id"] for _, v in a.producer.messages]


def test_resumed_snapshot_skips_what_the_topic_holds_and_fills_the_downtime():
    a = app("v2", ["XBT/USDT", "ETH/USD"])
    a.resume_from({"XBT/USDT": 100, "BTC/USDT": 5, "ETH/USD": 7})
    assert a.last_id == {"BTC/USDT": 100, "ETH/USD": 7}
    a.handle_text(v2_frame("snapshot", list(range(61, 111))), 0, set())   # 30 trades happened while down
    a.handle_text(v2_frame("update", [111, 112]), 0, set())
    assert produced_ids(a) == list(range(101, 113))
    assert (a.stats.dups, a.stats.gaps, a.stats.missing) == (40, 0, 0)


def test_resumed_downtime_longer_than_the_snapshot_is_a_gap():
    a = app("v2", ["XBT/USDT"])
    a.resume_from({"XBT/USDT": 100})
    a.handle_text(v2_frame("snapshot", list(range(131, 181))), 0, set())
    assert produced_ids(a) == list(range(131, 181))
    assert (a.stats.gaps, a.stats.missing, a.gaps_by_pair) == (1, 30, {"XBT/USDT": [1, 30]})


def test_restart_with_no_trades_while_down_produces_nothing_twice():
    """Kraken's newest trade IS the resume point (nothing traded while the producer was down): the snapshot is all
    copies, nothing is produced until the next new trade."""
    a = app("v2", ["XBT/USDT"])
    a.resume_from({"XBT/USDT": 100})
    a.handle_text(v2_frame("snapshot", list(range(51, 101))), 0, set())
    assert produced_ids(a) == [] and a.stats.dups == 50 and a.resumed == {}
    a.handle_text(v2_frame("update", [101]), 0, set())
    assert produced_ids(a) == [101] and (a.stats.gaps, a.stats.missing) == (0, 0)


def test_resume_point_ahead_of_kraken_is_ignored(caplog):
    """The topic's ids came from another id sequence (e.g. a fake Kraken run): never skip the live market."""
    a = app("v2", ["XBT/USDT", "ETH/USD"])
    a.resume_from({"XBT/USDT": 5000, "ETH/USD": 5000})
    with caplog.at_level(logging.WARNING, logger="kraken_feed"):
        a.handle_text(v2_frame("snapshot", list(range(1, 51))), 0, set())
        a.handle_text(v2_frame("snapshot", list(range(4990, 5040)), "ETH/USD"), 0, set())
    assert produced_ids(a) == list(range(1, 51)) + list(range(5001, 5040))
    assert "resume point of XBT/USDT (trade_id 5000, read from the topic) is ahead of Kraken's newest trade_id 50" \
        in caplog.text
    assert "ETH/USD" not in caplog.text and a.resumed == {}
    a.handle_text(v2_frame("snapshot", list(range(30, 80))), 0, set())   # a later reconnect: normal dedup again
    assert produced_ids(a)[-29:] == list(range(51, 80)) and a.stats.dups == 11 + 21


def test_resume_check_only_on_the_first_snapshot():
    a = app("v2", ["XBT/USDT"])
    a.resume_from({"XBT/USDT": 100})
    a.handle_text(v2_frame("update", [101]), 0, set())        # an update first: no verdict yet
    assert a.resumed == {"BTC/USDT": 100}
    a.handle_text(v2_frame("snapshot", []), 0, set())         # empty snapshot: nothing to compare
    assert a.resumed == {"BTC/USDT": 100}
    a.handle_text(v2_frame("snapshot", list(range(60, 110))), 0, set())
    assert a.resumed == {} and produced_ids(a) == list(range(101, 110))


@pytest.mark.parametrize("argv,msg", [
    (["--api", "v1"], "not available with --api v1"),
    (["--no-resume"], "disabled (--no-resume)"),
])
def test_no_resume_for_v1_or_when_disabled(argv, msg, caplog, monkeypatch):
    monkeypatch.setattr(resume, "read_resume_points", lambda *a: pytest.fail("must not read the topic"))
    with caplog.at_level(logging.INFO, logger="kraken_feed"):
        assert resume.resume_points(cli.parse_args(["--bootstrap", "127.0.0.1:9", *argv])) == {}
    assert msg in caplog.text


def test_resume_points_logs_found_and_missing(caplog, monkeypatch):
    calls = []
    monkeypatch.setattr(resume, "read_resume_points", lambda *a: calls.append(a) or {"XBT/USDT": 42})
    args = cli.parse_args(["--pair", "XBT/USDT", "--pair", "ETH/USD", "--topic", "t", "--resume-scan-limit", "300"])
    with caplog.at_level(logging.INFO, logger="kraken_feed"):
        assert resume.resume_points(args) == {"XBT/USDT": 42}
    assert calls == [("localhost:19092", "t", ["XBT/USDT", "ETH/USD"], 300, cli.DEFAULT_RESUME_TIMEOUT, None,
                      None)]
    assert "resuming XBT/USDT after trade_id 42" in caplog.text
    assert "no earlier v2 trade of ETH/USD in the last 300 record(s) of each partition of t" in caplog.text


def test_resume_flags(capsys):
    args = cli.parse_args([])
    assert (args.no_resume, args.resume_scan_limit, args.resume_timeout) == (False, 200_000, 15.0)
    for bad in (["--resume-scan-limit", "0"], ["--resume-timeout", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args(bad)
        assert exc.value.code == 2 and "must be > 0" in capsys.readouterr().err
