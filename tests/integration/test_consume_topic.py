"""Reading the trades topic without Spark, against the real broker: lakehouse.broker.consume.read_to_end (what the
tests and benchmarks compare the lake against) and the rpk-like CLI, ingestion/consume_trades.py (`make consume`)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaException, Producer

from lakehouse.broker.consume import read_to_end
from tests.helpers import run_script


def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes | None, int]]) -> None:
    """(partition, key, value, timestamp ms) records, in this order, acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for partition, key, value, ts_ms in records:
        producer.produce(topic, value=value, key=key, partition=partition, timestamp=ts_ms)
    assert producer.flush(30) == 0


RECORDS = [(0, b"XBT/USDT", b'{"n": 1}', 1_000), (2, b"ETH/USD", b'{"n": 2}', 2_000),
           (0, b"XBT/USDT", b'{"n": 3}', 3_000), (2, b"ETH/USD", None, 4_000), (0, b"XBT/USDT", b"\xff", 5_000)]


def test_read_to_end_returns_every_record_once_by_partition_and_offset(bootstrap, new_topic) -> None:
    topic = new_topic(partitions=3)  # partition 1 stays empty
    produce(bootstrap, topic, RECORDS)
    got = [(m.partition(), m.offset(), m.key(), m.value()) for m in read_to_end(bootstrap, topic)]
    assert got == [(0, 0, b"XBT/USDT", b'{"n": 1}'), (0, 1, b"XBT/USDT", b'{"n": 3}'), (0, 2, b"XBT/USDT", b"\xff"),
                   (2, 0, b"ETH/USD", b'{"n": 2}'), (2, 1, b"ETH/USD", None)]
    # a record produced since: the next read has it, in its partition's place
    produce(bootstrap, topic, [(1, b"SOL/USD", b'{"n": 6}', 6_000)])
    assert [(m.partition(), m.offset()) for m in read_to_end(bootstrap, topic)] == [(0, 0), (0, 1), (0, 2), (1, 0),
                                                                                    (2, 0), (2, 1)]
    assert read_to_end(bootstrap, new_topic(partitions=2)) == []  # an empty topic: nothing, at once


def test_read_to_end_of_an_unknown_topic_says_so(bootstrap) -> None:
    with pytest.raises(KafkaException, match=r"topic 'no-such-topic-7f3a' does not exist on "):
        read_to_end(bootstrap, "no-such-topic-7f3a")


def test_the_cli_prints_the_last_or_first_records_as_rpk_does(bootstrap, new_topic) -> None:
    topic = new_topic(partitions=3)
    produce(bootstrap, topic, RECORDS)
    last = run_script("ingestion/consume_trades.py", "--topic", topic, "--bootstrap", bootstrap, "-n", "2")
    assert last.returncode == 0, last.stderr
    assert [json.loads(line) for line in last.stdout.splitlines()] == [
        {"topic": topic, "key": "ETH/USD", "value": None, "timestamp": 4_000, "partition": 2, "offset": 1},
        {"topic": topic, "key": "XBT/USDT", "value": "\\xff", "timestamp": 5_000, "partition": 0, "offset": 2}]
    first = run_script("ingestion/consume_trades.py", "--topic", topic, "--bootstrap", bootstrap, "-n", "1",
                       "--from-start")
    assert [json.loads(line)["value"] for line in first.stdout.splitlines()] == ['{"n": 1}']


def test_the_cli_refuses_an_unknown_topic_and_a_bad_count(bootstrap) -> None:
    unknown = run_script("ingestion/consume_trades.py", "--topic", "no-such-topic-7f3a", "--bootstrap", bootstrap)
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == f"error: topic 'no-such-topic-7f3a' does not exist on {bootstrap}\n"
    bad = run_script("ingestion/consume_trades.py", "-n", "0")
    assert bad.returncode == 2 and "argument -n/--num: must be >= 1" in bad.stderr
