"""Unit tests of the producer's resume-from-the-topic logic: scan windows, picking the last trade_id, seeding."""

from __future__ import annotations

import json
import logging
import re
from typing import Optional

import pytest

from lakehouse.producer import cli, gaps, resume, session
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


def test_latest_trade_ids_read_past_records_they_ignore_and_keep_the_newest_time():
    keys = {b"XBT/USDT": "XBT/USDT"}
    newest = json.loads(value("XBT/USDT", 12))
    newest["ts_event"] = "2026-01-01T00:00:05.000000Z"
    for ignored in [(b"ETH/USD", value("ETH/USD", 99)), (b"XBT/USDT", None), (b"XBT/USDT", b"not json"),
                    (b"XBT/USDT", value("XBT/USDT", 50, "v1"))]:
        times: dict = {}
        records = [(b"XBT/USDT", value("XBT/USDT", 10)), ignored, (b"XBT/USDT", json.dumps(newest).encode()),
                   (b"XBT/USDT", value("XBT/USDT", 11))]
        assert resume.latest_trade_ids(records, keys, None, times) == {"XBT/USDT": 12}
        assert times == {"XBT/USDT": "2026-01-01T00:00:05.000000Z"}


def produced_ids(a: session.TradeProducer) -> list[int]:
    return [v["trade_id"] for _, v in a.producer.messages]


def test_resumed_snapshot_skips_what_the_topic_holds_and_fills_the_downtime():
    a = app("v2", ["XBT/USDT", "ETH/USD"])
    a.ledger.resume_from({"XBT/USDT": 100, "BTC/USDT": 5, "ETH/USD": 7})
    assert a.ledger.last_id == {"BTC/USDT": 100, "ETH/USD": 7}
    a.frames.handle_text(v2_frame("snapshot", list(range(61, 111))), 0, set())   # 30 trades happened while down
    a.frames.handle_text(v2_frame("update", [111, 112]), 0, set())
    assert produced_ids(a) == list(range(101, 113))
    assert (a.stats.dups, a.stats.gaps, a.stats.missing) == (40, 0, 0)


def test_resumed_downtime_longer_than_the_snapshot_is_a_gap():
    a = app("v2", ["XBT/USDT"])
    a.ledger.resume_from({"XBT/USDT": 100})
    a.frames.handle_text(v2_frame("snapshot", list(range(131, 181))), 0, set())
    assert produced_ids(a) == list(range(131, 181))
    assert (a.stats.gaps, a.stats.missing, a.ledger.gaps_by_pair) == (1, 30, {"XBT/USDT": [1, 30]})


def test_restart_with_no_trades_while_down_produces_nothing_twice():
    """Kraken's newest trade IS the resume point (nothing traded while the producer was down): the snapshot is all
    copies, nothing is produced until the next new trade."""
    a = app("v2", ["XBT/USDT"])
    a.ledger.resume_from({"XBT/USDT": 100})
    a.frames.handle_text(v2_frame("snapshot", list(range(51, 101))), 0, set())
    assert produced_ids(a) == [] and a.stats.dups == 50 and a.ledger.resumed == {}
    a.frames.handle_text(v2_frame("update", [101]), 0, set())
    assert produced_ids(a) == [101] and (a.stats.gaps, a.stats.missing) == (0, 0)


def test_resume_point_ahead_of_kraken_is_ignored(caplog):
    """The topic's ids came from another id sequence (e.g. a fake Kraken run): never skip the live market."""
    a = app("v2", ["XBT/USDT", "ETH/USD"])
    a.ledger.resume_from({"XBT/USDT": 5000, "ETH/USD": 5000})
    with caplog.at_level(logging.WARNING, logger="lakehouse.producer"):
        a.frames.handle_text(v2_frame("snapshot", list(range(1, 51))), 0, set())
        a.frames.handle_text(v2_frame("snapshot", list(range(4990, 5040)), "ETH/USD"), 0, set())
    assert produced_ids(a) == list(range(1, 51)) + list(range(5001, 5040))
    assert "resume point of XBT/USDT (trade_id 5000, read from the topic) is ahead of Kraken's newest trade_id 50" \
        in caplog.text
    assert "ETH/USD" not in caplog.text and a.ledger.resumed == {}
    a.frames.handle_text(v2_frame("snapshot", list(range(30, 80))), 0, set())   # a later reconnect: normal dedup again
    assert produced_ids(a)[-29:] == list(range(51, 80)) and a.stats.dups == 11 + 21


def test_resume_check_only_on_the_first_snapshot():
    a = app("v2", ["XBT/USDT"])
    a.ledger.resume_from({"XBT/USDT": 100})
    a.frames.handle_text(v2_frame("update", [101]), 0, set())        # an update first: no verdict yet
    assert a.ledger.resumed == {"BTC/USDT": 100}
    a.frames.handle_text(v2_frame("snapshot", []), 0, set())         # empty snapshot: nothing to compare
    assert a.ledger.resumed == {"BTC/USDT": 100}
    a.frames.handle_text(v2_frame("snapshot", list(range(60, 110))), 0, set())
    assert a.ledger.resumed == {} and produced_ids(a) == list(range(101, 110))


@pytest.mark.parametrize("argv,msg", [
    (["--api", "v1"], "resume: not available with --api v1 (v1 trades have no trade_id); producing live trades only"),
    (["--no-resume"], "resume: disabled (--no-resume): the first snapshot is produced in full"),
])
def test_no_resume_for_v1_or_when_disabled(argv, msg, caplog, monkeypatch):
    monkeypatch.setattr(resume, "read_resume_points", lambda *a: pytest.fail("must not read the topic"))
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        assert resume.resume_points(cli.parse_config(["--bootstrap", "127.0.0.1:9", *argv]).resume) == {}
    assert caplog.messages == [msg]


def test_resume_points_logs_found_and_missing(caplog, monkeypatch):
    calls = []
    monkeypatch.setattr(resume, "read_resume_points", lambda *a: calls.append(a) or {"XBT/USDT": 42})
    config = cli.parse_config(["--pair", "XBT/USDT", "--pair", "ETH/USD", "--topic", "t", "--resume-scan-limit", "300"])
    times, open_gaps = {}, {}
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        assert resume.resume_points(config.resume, times, open_gaps) == {"XBT/USDT": 42}
    assert calls == [("localhost:19092", "t", ["XBT/USDT", "ETH/USD"], 300, cli.DEFAULT_RESUME_TIMEOUT, times,
                      open_gaps)]
    assert calls[0][5] is times and calls[0][6] is open_gaps
    assert caplog.messages == [
        "resuming XBT/USDT after trade_id 42",
        "resume: no earlier v2 trade of ETH/USD in the last 300 record(s) of each partition of t: starting without "
        "memory (the first snapshot is produced in full)"]


def test_resume_flags(capsys):
    args = cli.parse_args([])
    assert (args.no_resume, args.resume_scan_limit, args.resume_timeout) == (False, 200_000, 15.0)
    for bad in (["--resume-scan-limit", "0"], ["--resume-timeout", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args(bad)
        assert exc.value.code == 2 and "must be > 0" in capsys.readouterr().err


class Record:
    """One Kafka record in a FakeTopic partition, or the end-of-partition event (`error` set)."""

    def __init__(self, part: int, offset: int, key=None, value=None, headers=None, ts_ms: int = 0, error=None):
        self._part, self._offset, self._key, self._value, self._headers = part, offset, key, value, headers
        self.ts_ms, self._error = ts_ms, error

    def partition(self):
        return self._part

    def offset(self):
        return self._offset

    def key(self):
        return self._key

    def value(self):
        return self._value

    def headers(self):
        return self._headers

    def error(self):
        return self._error


class KafkaErr:
    def __init__(self, code: int, text: str) -> None:
        self._code, self.text = code, text

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return self.text


class Clock:
    """time.monotonic for the code under test: each consume() call moves it 0.2 s on (its own timeout)."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class FakeTopic:
    """A topic's partitions in memory behind the consumer calls the readers make (list_topics, watermarks,
    offsets_for_times, assign, consume, unassign, close). consume() hands out `batch` records per assigned partition
    and call, partitions in descending order (a consumer keeps no order across partitions), and right after a
    partition's last record its end-of-partition event, as a consumer with enable.partition.eof does.
    A row None is a transaction marker (it takes an offset, it is never delivered); `high` puts a partition's end
    before its last rows (rows produced after the reader asked for the end); list_topics takes `metadata_s` on the
    clock; each timeout given is recorded."""

    def __init__(self, partitions: dict[int, list], low: int = 0, batch: int = 700, missing: bool = False,
                 fail_at: int = -1, high: Optional[dict[int, int]] = None, error: Optional[str] = None,
                 metadata_s: float = 0.0) -> None:
        from confluent_kafka import KafkaError
        self.eof = KafkaError._PARTITION_EOF
        self.records = {p: [Record(p, o, *r) if r is not None else None for o, r in enumerate(rows)]
                        for p, rows in partitions.items()}
        self.low, self.batch, self.missing, self.fail_at = low, batch, missing, fail_at
        self.high, self.error, self.metadata_s = high or {}, error, metadata_s
        self.clock, self.position, self.assigned, self.closed, self.read = Clock(), {}, [], False, 0
        self.opened, self.timeouts, self.polls = [], [], set()

    def open(self, bootstrap: str, purpose: str) -> "FakeTopic":
        self.opened.append((bootstrap, purpose))
        return self

    def list_topics(self, topic: str, timeout: float):
        self.timeouts.append(timeout)
        self.clock.now += self.metadata_s
        meta = type("Meta", (), {"partitions": dict.fromkeys(self.records), "error": self.error})()
        return type("Cluster", (), {"topics": {} if self.missing else {topic: meta}})()

    def get_watermark_offsets(self, tp, timeout: float):
        self.timeouts.append(timeout)
        return self.low, self.high.get(tp.partition, len(self.records[tp.partition]))

    def offsets_for_times(self, tps, timeout: float):
        from confluent_kafka import TopicPartition
        self.timeouts.append(timeout)
        return [TopicPartition(tp.topic, tp.partition, next(
            (r.offset() for r in self.records[tp.partition][self.low:] if r is not None and r.ts_ms >= tp.offset),
            -1)) for tp in tps]

    def assign(self, tps) -> None:
        self.assigned.append(sorted((tp.partition, tp.offset) for tp in tps))
        self.position = {tp.partition: tp.offset for tp in tps}

    def unassign(self) -> None:
        self.position = {}

    def consume(self, num_messages: int, timeout: float):
        self.polls.add((num_messages, timeout))
        self.clock.now += 0.2
        out = []
        for p, at in sorted(self.position.items(), reverse=True):
            if at is None:
                continue
            rows = self.records[p][at:at + self.batch]
            out += [r for r in rows if r is not None]
            self.position[p] = at + len(rows)
            if at + len(rows) == len(self.records[p]):
                out.append(Record(p, at, error=KafkaErr(self.eof, "end of partition")))
                self.position[p] = None
        self.read += len(out)
        if 0 <= self.fail_at < self.read:
            out.insert(0, Record(0, 0, error=KafkaErr(3, "Broker: Unknown topic or partition")))
        return out

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def topic(monkeypatch):
    made = []

    def install(partitions: dict[int, list], **kw) -> FakeTopic:
        fake = FakeTopic(partitions, **kw)
        made.append(fake)
        monkeypatch.setattr(resume, "topic_reader", fake.open)
        monkeypatch.setattr(resume, "time", fake.clock)
        return fake

    yield install
    assert all(fake.closed for fake in made)


def trade(pair: str, tid: int, ts: str = "2026-01-01T00:00:00.000000Z", headers=None) -> tuple:
    v = json.loads(value(pair, tid))
    v["ts_event"] = ts
    return pair.encode(), json.dumps(v).encode(), headers


OTHER = (b"SOL/USD", b"{}", None)  # a pair not asked for: never decoded


def test_read_resume_points_chunk_by_chunk_until_every_pair_is_found(topic, caplog):
    gap_header = [(gaps.GAP_HEADER, b"20-30@1700000000000000000@5")]
    part0 = [OTHER] * 3000
    part0[100] = trade("XBT/USDT", 3)                                  # older, in the second chunk: not read
    part0[2990] = trade("XBT/USDT", 9, "2026-01-01T00:00:09.000000Z", gap_header)
    part0[2985] = (b"XBT/USDT", b"not json", None)
    part1 = [OTHER] * 2500
    part1[400] = trade("ETH/USD", 41, "2026-01-01T00:00:41.000000Z")   # only in the second chunk
    part1[499] = None                                                  # a transaction marker ends that chunk
    part1[2499] = None                                                 # and the partition
    fake = topic({0: part0, 1: part1})
    times, open_gaps = {}, {}
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        found = resume.read_resume_points("b:9", "t", ["XBT/USDT", "ETH/USD", "DOGE/USD"], 3000, 5.0, times, open_gaps)
    assert found == {"XBT/USDT": 9, "ETH/USD": 41}
    assert times == {"XBT/USDT": "2026-01-01T00:00:09.000000Z", "ETH/USD": "2026-01-01T00:00:41.000000Z"}
    assert open_gaps == {"XBT/USDT": [(20, 30, 1700000000000000000, 5)]}
    assert fake.assigned == [[(0, 1000), (1, 500)], [(0, 0), (1, 0)]]
    assert (fake.opened, fake.timeouts, fake.polls) == ([("b:9", "resume")], [5.0, 5.0, 5.0], {(5000, 0.2)})
    assert caplog.messages == ["resume: read 5498 record(s) of t (2 partition(s), 2 chunk(s) deep) in 1.00s"]


def test_read_resume_points_stops_when_every_pair_is_found(topic, caplog):
    part0 = [OTHER] * 5000
    part0[4000] = trade("XBT/USDT", 9)
    part0[100] = trade("ETH/USD", 1)
    part0[4999] = None                                                 # a transaction marker ends the partition
    fake = topic({0: part0})
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        assert resume.read_resume_points("b:9", "t", ["XBT/USDT"], 200_000, 5.0) == {"XBT/USDT": 9}
    assert fake.assigned == [[(0, 3000)]]
    assert caplog.messages == ["resume: read 1999 record(s) of t (1 partition(s), 1 chunk(s) deep) in 0.60s"]


def test_read_resume_points_reads_at_most_the_limit(topic, caplog):
    part0 = [OTHER] * 5000
    part0[1000] = trade("XBT/USDT", 9)
    fake = topic({0: part0, 1: [OTHER] * 10})
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        assert resume.read_resume_points("b:9", "t", ["XBT/USDT"], 3500, 5.0) == {}
    assert fake.assigned == [[(0, 3000), (1, 0)], [(0, 1500)]]
    assert caplog.messages == ["resume: read 3510 record(s) of t (2 partition(s), 2 chunk(s) deep) in 1.20s"]


def test_read_resume_points_gives_up_after_the_timeout_with_what_it_found(topic, caplog):
    part0 = [OTHER] * 5000
    part0[3600] = trade("XBT/USDT", 9)
    part0[4600] = trade("XBT/USDT", 10)                                # not reached in time
    topic({0: part0}, batch=500)
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        assert resume.read_resume_points("b:9", "t", ["XBT/USDT", "ETH/USD"], 200_000, 0.5) == {"XBT/USDT": 9}
    assert caplog.messages == ["resume: gave up reading t after 0.5s (1500 records read)"]


def test_read_resume_points_asks_for_partition_ends_with_at_least_a_tenth_of_a_second(topic):
    fake = topic({0: [OTHER] * 10, 1: [OTHER] * 10}, metadata_s=0.45)
    assert resume.read_resume_points("b:9", "t", ["XBT/USDT"], 200_000, 0.5) == {}
    assert fake.timeouts == [0.5, 0.1, 0.1]


def test_read_resume_points_of_a_missing_topic(topic, caplog):
    with caplog.at_level(logging.INFO, logger="lakehouse.producer"):
        topic({0: []}, missing=True)
        assert resume.read_resume_points("b:9", "t", ["XBT/USDT"], 200_000, 5.0) == {}
        topic({0: [trade("XBT/USDT", 9)]}, error="Broker: Unknown topic or partition")
        assert resume.read_resume_points("b:9", "t", ["XBT/USDT"], 200_000, 5.0) == {}
    assert caplog.messages == ["resume: topic t does not exist yet: nothing to resume from"] * 2


def test_read_resume_points_and_read_since_raise_on_a_broker_error(topic):
    topic({0: [OTHER] * 10}, fail_at=0)
    with pytest.raises(RuntimeError, match=r"^reading t \[0\]: Broker: Unknown topic or partition$"):
        resume.read_resume_points("b:9", "t", ["XBT/USDT"], 200_000, 5.0)
    topic({0: [OTHER + (1,)] * 10}, fail_at=0)
    with pytest.raises(RuntimeError, match=r"^reading t \[0\]: Broker: Unknown topic or partition$"):
        resume.values_in_topic("b:9", "t", {-1: 0}, {b"{}"}, 5.0)


def stamped(rows: list[tuple], first_ms: int = 1000) -> list[tuple]:
    """Rows (key, value, headers) with timestamps first_ms, first_ms + 1000, ..."""
    return [row + (first_ms + 1000 * i,) for i, row in enumerate(rows)]


def test_read_since_visits_each_partition_from_its_time_to_its_end(topic):
    fake = topic({0: stamped([(b"k", b"a%d" % i, None) for i in range(10)]),
                  1: stamped([(b"k", b"b%d" % i, None) for i in range(10)]),
                  2: stamped([(b"k", b"c%d" % i, None) for i in range(10)])}, low=2, batch=3)
    seen = []
    resume.read_since("b:9", "t", {0: 8000, 1: 0, 5: 0}, 5.0, lambda msg: seen.append(msg.value()))
    assert fake.assigned == [[(0, 7), (1, 2)]]
    assert sorted(seen) == [b"a7", b"a8", b"a9"] + [b"b%d" % i for i in range(2, 10)]
    seen.clear()
    resume.read_since("b:9", "t", {-1: 8500, 1: 5000}, 5.0, lambda msg: seen.append(msg.value()))
    assert fake.assigned[1:] == [[(0, 8), (1, 4), (2, 8)]]
    assert sorted(seen) == [b"a8", b"a9"] + [b"b%d" % i for i in range(4, 10)] + [b"c8", b"c9"]
    assert (fake.opened, set(fake.timeouts), fake.polls) == ([("b:9", "read-back")] * 2, {5.0}, {(5000, 0.2)})


def test_read_since_reads_to_the_end_it_found_first(topic):
    """Records produced meanwhile are not waited for; a partition that ends on a transaction marker (never
    delivered) ends with its end-of-partition event."""
    busy = stamped([(b"k", b"a%d" % i, None) for i in range(5000)])
    marked = stamped([(b"k", b"b%d" % i, None) for i in range(9)]) + [None]
    produced_meanwhile = stamped([(b"k", b"c%d" % i, None) for i in range(9)]) + [None] + stamped([OTHER] * 50)
    topic({0: busy, 1: marked, 2: produced_meanwhile}, high={0: 10, 2: 10}, batch=3)
    seen = []
    resume.read_since("b:9", "t", {-1: 0}, 5.0, lambda msg: seen.append(msg.value()))
    assert sorted(seen) == sorted([b"a%d" % i for i in range(10)] + [b"b%d" % i for i in range(9)]
                                  + [b"c%d" % i for i in range(9)])


def test_read_since_with_nothing_to_read(topic):
    fake = topic({0: stamped([OTHER] * 5), 1: []})
    resume.read_since("b:9", "t", {-1: 6000}, 5.0, lambda msg: pytest.fail("nothing to visit"))
    assert fake.assigned == []


def test_read_since_refuses_a_missing_topic_and_times_out(topic):
    topic({0: []}, missing=True)
    with pytest.raises(RuntimeError, match="^topic t is not readable: missing$"):
        resume.read_since("b:9", "t", {-1: 0}, 5.0, print)
    topic({0: []}, error="Broker: Topic authorization failed")
    with pytest.raises(RuntimeError, match="^topic t is not readable: Broker: Topic authorization failed$"):
        resume.read_since("b:9", "t", {-1: 0}, 5.0, print)
    topic({0: stamped([OTHER] * 5000)}, batch=100)
    with pytest.raises(TimeoutError, match="^reading t back took more than 2s$"):
        resume.read_since("b:9", "t", {-1: 0}, 2.0, lambda msg: None)


def test_values_and_trade_ids_in_topic(topic):
    rows = stamped([trade("XBT/USDT", 5), trade("XBT/USDT", 6), trade("ETH/USD", 7), (b"XBT/USDT", b"junk", None),
                    trade("XBT/USDT", 8), trade("XBT/USDT", 20)])
    fake = topic({0: rows, 1: stamped([trade("XBT/USDT", 9)], 5000)})
    assert resume.values_in_topic("b:9", "t", {-1: 0}, {rows[1][1], rows[2][1], b"absent"}, 5.0) == {rows[1][1],
                                                                                                   rows[2][1]}
    assert resume.trade_ids_in_topic("b:9", "t", "XBT/USDT", 2000, 6, 9, 5.0) == {6, 8, 9}
    assert fake.opened == [("b:9", "read-back")] * 2


def test_topic_reader_only_reads(monkeypatch):
    import confluent_kafka
    monkeypatch.setattr(confluent_kafka, "Consumer", lambda config: config)
    groups = {resume.topic_reader("b:9", "resume")["group.id"] for _ in range(20)}
    assert len(groups) == 20 and all(re.fullmatch("kraken-trades-ws-resume-[0-9a-f]{16}", g) for g in groups)
    config = resume.topic_reader("b:9", "resume")
    del config["group.id"]
    assert config == {"bootstrap.servers": "b:9", "client.id": "kraken-trades-ws-resume", "enable.auto.commit": False,
                      "enable.auto.offset.store": False, "enable.partition.eof": True,
                      "auto.offset.reset": "earliest", "allow.auto.create.topics": False, "fetch.wait.max.ms": 50}
