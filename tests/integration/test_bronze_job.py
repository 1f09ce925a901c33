"""The Kafka -> Bronze job against the real broker and real Spark, run as a user runs it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.helpers import (PYTHON, REPO_ROOT, planned_not_committed, run_script, script_env, start_script,
                           wait_until)

# Over the default time limit (pyproject.toml): each test starts the job's JVM, some several times (kill -9: about 3 minutes loaded).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

JOB = "spark/jobs/kafka_to_bronze_trades.py"
EXPECTED_SCHEMA = [("topic", "string"), ("partition", "int"), ("offset", "bigint"), ("ts_kafka", "timestamp"),
                   ("ts_type", "int"), ("key", "string"), ("value_raw", "string")]

# Keys and values that a lossy landing would alter: empty and absent keys, non-ASCII text, bytes that are not UTF-8.
ODD_RECORDS = [
    (None, b'{"symbol":"XBT/USDT","price":"1"}'),
    (b"", b""),
    ("ÉTH/€".encode(), "{\"note\": \"naïve café ✓ 💱\"}".encode()),
    (b"XBT/USDT", b"\xff\xfe\x00 not utf-8 \xc3("),
    (b"\xc3\x28", b"key is not utf-8"),
]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], partitions: int = 3,
            first_index: int = 0) -> dict[tuple[str, int, int], tuple[bytes | None, bytes]]:
    """Produce records round-robin over partitions; return {(topic, partition, offset): (key, value)} as acked."""
    landed: dict[tuple[str, int, int], tuple[bytes | None, bytes]] = {}
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err:
            errors.append(str(err))
        else:
            landed[(msg.topic(), msg.partition(), msg.offset())] = (msg.key(), msg.value())

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i, (key, value) in enumerate(records, start=first_index):
        producer.produce(topic, key=key, value=value, partition=i % partitions, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0 and not errors, errors
    return landed


def numbered_records(start: int, count: int) -> list[tuple[bytes, bytes]]:
    return [(f"PAIR{i % 4}/USD".encode(), f'{{"n": {i}, "price": "{i}.{i:08d}"}}'.encode())
            for i in range(start, start + count)]


def bronze_rows(spark, out: Path) -> list[tuple]:
    """(topic, partition, offset, key bytes, value bytes) for every row a Spark reader sees."""
    df = spark.read.parquet(str(out))
    rows = df.selectExpr("topic", "partition", "offset", "CAST(key AS BINARY) AS k", "CAST(value_raw AS BINARY) AS v")
    return [(r.topic, r.partition, r.offset, None if r.k is None else bytes(r.k), bytes(r.v)) for r in rows.collect()]


def land(bootstrap: str, topic: str, tmp_path: Path, *extra: str):
    result = run_script(JOB, "--bootstrap", bootstrap, "--topic", topic, "--out", str(tmp_path / "bronze"),
                        "--checkpoint", str(tmp_path / "checkpoint"), "--available-now", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_exactly(spark, out: Path, expected: dict) -> None:
    rows = bronze_rows(spark, out)
    coordinates = [r[:3] for r in rows]
    assert len(coordinates) == len(set(coordinates)), "a record landed twice"
    assert set(coordinates) == set(expected), (
        f"missing {sorted(set(expected) - set(coordinates))[:10]}, extra {sorted(set(coordinates) - set(expected))[:10]}")
    for topic, partition, offset, key, value in rows:
        assert (key, value) == expected[(topic, partition, offset)], (topic, partition, offset)


@pytest.mark.quick
def test_every_record_lands_once_with_bytes_unchanged(spark, bootstrap, new_topic, tmp_path) -> None:
    topic = new_topic(partitions=3)
    expected = produce(bootstrap, topic, ODD_RECORDS + numbered_records(0, 120))

    result = land(bootstrap, topic, tmp_path)

    df = spark.read.parquet(str(tmp_path / "bronze"))
    assert df.dtypes == EXPECTED_SCHEMA
    assert_exactly(spark, tmp_path / "bronze", expected)
    assert df.where("ts_kafka IS NULL OR ts_type != 0").count() == 0  # producer CreateTime on every record
    assert (tmp_path / "bronze" / "_spark_metadata" / "0").exists()
    assert f"end[{topic}]=" in result.stderr  # the one-line progress log names the end offsets

    # A second run from the same checkpoint lands only what was produced since.
    expected |= produce(bootstrap, topic, numbered_records(1000, 45), first_index=1)
    land(bootstrap, topic, tmp_path)
    assert_exactly(spark, tmp_path / "bronze", expected)


def test_kill_9_mid_stream_loses_and_doubles_nothing(spark, bootstrap, new_topic, tmp_path) -> None:
    """Three kill -9s of the job (driver and JVM) while records flow: the first two while a batch is planned but not
    committed (its files may be half written), the third at a random moment; then one more run catches up. Bronze
    holds every record once."""
    topic = new_topic(partitions=3)
    expected: dict = {}
    stop_producing = threading.Event()
    producer_errors: list[BaseException] = []

    def keep_producing() -> None:
        start = 0
        try:
            while not stop_producing.is_set():
                expected.update(produce(bootstrap, topic, numbered_records(start, 40), first_index=start))
                start += 40
                time.sleep(0.05)
        except BaseException as exc:  # seen by the test, not swallowed by the thread
            producer_errors.append(exc)

    producer_thread = threading.Thread(target=keep_producing, daemon=True)
    producer_thread.start()
    out, checkpoint = tmp_path / "bronze", tmp_path / "checkpoint"
    rng = random.Random(7)
    in_flight = []
    try:
        for round_number in range(3):
            job = start_script(JOB, "--bootstrap", bootstrap, "--topic", topic, "--out", str(out),
                               "--checkpoint", str(checkpoint), "--trigger", "300 milliseconds",
                               log_path=tmp_path / f"job-{round_number}.log")
            commits = checkpoint / "commits"
            before = len(list(commits.glob("[0-9]*"))) if commits.exists() else 0
            wait_until(lambda: commits.exists() and len(list(commits.glob("[0-9]*"))) > before, timeout=90,
                       what=f"a committed batch in round {round_number}")
            if round_number < 2:
                wait_until(lambda: planned_not_committed(checkpoint), 90, 0.01, "a batch in flight")
            else:
                time.sleep(rng.uniform(0.1, 1.2))
            in_flight.append(planned_not_committed(checkpoint))
            os.killpg(job.pid, signal.SIGKILL)  # the Python driver and its JVM, like a machine crash
            job.wait(30)
    finally:
        stop_producing.set()
        producer_thread.join(30)
    assert not producer_errors, producer_errors
    assert in_flight[:2] == [True, True], in_flight

    land(bootstrap, topic, tmp_path)  # restart once more and catch up on everything
    assert len(expected) > 200
    assert_exactly(spark, out, expected)


def test_sigterm_stops_cleanly_and_restart_resumes(spark, bootstrap, new_topic, tmp_path) -> None:
    topic = new_topic(partitions=3)
    expected = produce(bootstrap, topic, numbered_records(0, 60))
    job = start_script(JOB, "--bootstrap", bootstrap, "--topic", topic, "--out", str(tmp_path / "bronze"),
                       "--checkpoint", str(tmp_path / "checkpoint"), "--trigger", "500 milliseconds",
                       log_path=tmp_path / "job.log")
    wait_until(lambda: (tmp_path / "checkpoint" / "commits" / "0").exists(), timeout=90, what="first batch")
    job.send_signal(signal.SIGTERM)
    assert job.wait(60) == 0
    log = (tmp_path / "job.log").read_text()
    assert "SIGTERM received" in log and "Bronze is at" in log

    expected |= produce(bootstrap, topic, numbered_records(60, 30), first_index=60)
    land(bootstrap, topic, tmp_path)
    assert_exactly(spark, tmp_path / "bronze", expected)


def test_started_before_its_topic_exists_then_drains_on_sigterm(spark, bootstrap, tmp_path) -> None:
    """A job started on a topic that does not exist yet waits for it with one clear line (no stack trace) and lands
    what is produced once the topic is there; with --drain-on-stop, SIGTERM lands everything the topic holds before
    it exits 0 (the trigger is 30 s: the last records can only land through the drain)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"later-{uuid.uuid4().hex[:12]}"
    out, checkpoint, log_path = tmp_path / "bronze", tmp_path / "checkpoint", tmp_path / "job.log"
    job = start_script(JOB, "--bootstrap", bootstrap, "--topic", topic, "--out", str(out), "--checkpoint",
                       str(checkpoint), "--trigger", "30 seconds", "--drain-on-stop", log_path=log_path)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        wait_until(lambda: "does not exist yet" in log_path.read_text(), timeout=120, what="the waiting line")
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
        expected = produce(bootstrap, topic, numbered_records(0, 50))
        wait_until(lambda: (checkpoint / "commits" / "0").exists(), timeout=240, what="the first batch")
        expected |= produce(bootstrap, topic, numbered_records(50, 30), first_index=50)
        job.send_signal(signal.SIGTERM)
        assert job.wait(240) == 0, log_path.read_text()[-3000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        admin.delete_topics([topic])
    text = log_path.read_text()
    assert f"topic {topic} does not exist yet at {bootstrap}: waiting for it" in text
    assert "Traceback" not in text and "UnknownTopicOrPartition" not in text
    assert "kafka_to_bronze_trades: caught up with its input" in text
    assert_exactly(spark, out, expected)


@pytest.mark.parametrize("args, message", [
    (["--trigger", "soon"], "argument --trigger: 'soon' is not an interval"),
    (["--startingOffsets", "beginning"], "argument --startingOffsets: 'beginning'"),
    (["--maxOffsetsPerTrigger", "0"], "argument --maxOffsetsPerTrigger"),
    (["--failOnDataLoss", "maybe"], "argument --failOnDataLoss"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_exit_2_naming_the_flag(args: list[str], message: str) -> None:
    result = run_script(JOB, *args, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr


def test_unreachable_broker_is_a_clear_error_within_seconds(tmp_path) -> None:
    started = time.monotonic()
    result = run_script(JOB, "--bootstrap", "127.0.0.1:1", "--out", str(tmp_path / "b"),
                        "--checkpoint", str(tmp_path / "c"), timeout=60)
    assert result.returncode == 2
    assert "cannot reach the Kafka broker at --bootstrap 127.0.0.1:1" in result.stderr
    assert time.monotonic() - started < 30


def test_an_old_output_with_a_new_checkpoint_is_refused(spark, bootstrap, new_topic, tmp_path) -> None:
    """Spark would silently skip the new checkpoint's batches 0..N that the old output's log already lists."""
    topic = new_topic(partitions=3)
    expected = produce(bootstrap, topic, numbered_records(0, 30))
    land(bootstrap, topic, tmp_path)
    result = run_script(JOB, "--bootstrap", bootstrap, "--topic", topic, "--out", str(tmp_path / "bronze"),
                        "--checkpoint", str(tmp_path / "another-checkpoint"), "--available-now", timeout=120)
    assert result.returncode == 2
    assert "already holds batches 0..0 written with another checkpoint" in result.stderr
    assert_exactly(spark, tmp_path / "bronze", expected)  # untouched


def test_spark_that_cannot_start_is_one_clear_error(bootstrap, new_topic, tmp_path) -> None:
    """(On a topic that exists: the job waits for a missing topic before it starts Spark.)"""
    result = subprocess.run([PYTHON, str(REPO_ROOT / JOB), "--bootstrap", bootstrap, "--topic", new_topic(1),
                             "--out", str(tmp_path / "b"), "--checkpoint", str(tmp_path / "c")], cwd=REPO_ROOT,
                            capture_output=True, text=True,
                            timeout=120, env=script_env(JAVA_HOME=str(tmp_path / "no-java")))
    assert result.returncode == 1
    assert "error: Spark could not start" in result.stderr and "Java 17" in result.stderr
    assert "Traceback" not in result.stderr
