"""Kafka -> Bronze: append every raw record of the trades topic, with its Kafka metadata, to checkpointed Parquet.

Bronze is the audit trail: nothing is parsed, filtered or deduplicated here. Each Kafka record becomes one row:

    topic (string), partition (int), offset (long), ts_kafka (timestamp), ts_type (int), key (string), value_raw (string)

Exactly once: Spark writes a batch's files, lists them in <out>/_spark_metadata, then commits the batch's offsets in
the checkpoint. After any stop (Ctrl-C, SIGTERM, kill -9, a crash) a restart redoes an unfinished batch with the same
offsets, and readers that go through _spark_metadata (spark.read.parquet(<out>)) see each record once.

Bytes are kept as they are: key and value_raw hold the record's bytes unchanged, even when they are not valid UTF-8
(Spark does not validate or replace bytes when it casts binary to string). `CAST(value_raw AS BINARY)` gives back the
exact bytes Kafka held; a reader that decodes to text (e.g. .collect() in Python) shows U+FFFD for invalid bytes.

Usage (examples in the entry point's docstring, spark/jobs/kafka_to_bronze_trades.py):
    python spark/jobs/kafka_to_bronze_trades.py --help

Exit codes: 0 stopped on request (Ctrl-C, SIGTERM) or finished (--available-now); 1 the query failed;
2 a bad flag, an unreachable broker, or an output folder and a checkpoint that do not belong together.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

from lakehouse.common.logs import configure_logging
from lakehouse.defaults import BOOTSTRAP, BRONZE_CHECKPOINT, BRONZE_PATH, TOPIC
from lakehouse.spark.flags import add_drain_arguments, add_master_argument, parse_bool, parse_trigger, positive_int
from lakehouse.spark.lifecycle import StopRequest, drain_restart, run_query, wait_until_ready
from lakehouse.spark.session import build_spark
from lakehouse.spark.sinks import sink_pairing_problem, start_parquet_sink

QUERY_NAME = "kafka_to_bronze_trades"
BRONZE_COLUMNS = ["topic", "partition", "offset", "ts_kafka", "ts_type", "key", "value_raw"]
BROKER_CHECK_TIMEOUT_S = 10.0
# Records per micro-batch, all partitions together: a catch-up (a new checkpoint on a long topic, a Bronze stopped for
# days) lands in batches of at most this many, so each Bronze file holds at most this many rows, and Silver, which
# reads a bounded number of Bronze files per batch, is bounded in rows too (silver/job.py). Live running lands far
# fewer per trigger (50 trades/s x 20 s = 1,000).
DEFAULT_MAX_OFFSETS_PER_TRIGGER = 50_000
# One Parquet file per micro-batch, whatever the topic's partition count (Spark writes one per Kafka partition with
# records). Bronze's _spark_metadata lists every file Bronze ever wrote, and Silver's stream reads that whole list at
# every trigger: after 2 simulated days it took 234 ms of a Silver batch (28 fresh) at 2 files a batch
# (bench/long_run.py; BENCHMARKS.md "A week of running"); one file a batch halves what grows. A batch is bounded
# (DEFAULT_MAX_OFFSETS_PER_TRIGGER), so one task writes it.
FILES_PER_BATCH = 1
# Kafka client settings a user may not pass through --kafka-properties: Spark's source manages them itself.
SPARK_MANAGED_KAFKA_KEYS = {"bootstrap.servers", "group.id", "auto.offset.reset", "enable.auto.commit",
                            "key.deserializer", "value.deserializer", "interceptor.classes"}

log = logging.getLogger("kafka_to_bronze_trades")


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions


def parse_starting_offsets(text: str) -> str:
    """'earliest', 'latest', or Spark's JSON form {"topic": {"0": 23, "1": -2}} (-2 earliest, -1 latest)."""
    if text in ("earliest", "latest"):
        return text
    try:
        spec = json.loads(text)
    except ValueError:
        spec = None
    valid = isinstance(spec, dict) and spec and all(
        isinstance(parts, dict) and parts and all(k.isdigit() and isinstance(v, int) and v >= -2
                                                  for k, v in parts.items())
        for parts in spec.values())
    if not valid:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use earliest, latest, or JSON like '{{\"crypto.trades\": {{\"0\": 42, \"1\": -2}}}}' "
            f"(-2 = earliest, -1 = latest)")
    return text


def read_kafka_properties(path: Path) -> dict[str, str]:
    """A Java-style .properties file of Kafka client settings (security.protocol, sasl.*, ssl.*), one key=value
    a line; # and ! start comments. Settings Spark's source manages itself are refused."""
    props: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{number}: expected key=value")
        key = key.strip()
        if key in SPARK_MANAGED_KAFKA_KEYS:
            raise ValueError(f"{path}:{number}: {key} is managed by the job (use the flags) and may not be set here")
        props[key] = value.strip()
    return props


def kafka_source_options(args: argparse.Namespace, client_props: dict[str, str]) -> dict[str, str]:
    """The Spark Kafka source's options for these flags."""
    options = {
        "kafka.bootstrap.servers": args.bootstrap,
        "subscribe": args.topic,
        "startingOffsets": args.startingOffsets,
        "failOnDataLoss": str(args.failOnDataLoss).lower(),
    }
    if args.maxOffsetsPerTrigger:
        options["maxOffsetsPerTrigger"] = str(args.maxOffsetsPerTrigger)
    if args.minOffsetsPerTrigger:
        options["minOffsetsPerTrigger"] = str(args.minOffsetsPerTrigger)
        options["maxTriggerDelay"] = args.maxTriggerDelay
    options.update({f"kafka.{key}": value for key, value in client_props.items()})
    return options


def to_bronze(kafka_df):
    """Project the Kafka source's rows to Bronze's columns, bytes unchanged."""
    from pyspark.sql import functions as F

    return kafka_df.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("ts_kafka"),
        F.col("timestampType").alias("ts_type"),
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value_raw"),
    )


def unreachable_brokers(bootstrap: str, timeout_s: float = BROKER_CHECK_TIMEOUT_S) -> str | None:
    """None when at least one bootstrap server accepts a TCP connection; else a message saying what failed."""
    errors = []
    for server in filter(None, (s.strip() for s in bootstrap.split(","))):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            return f"--bootstrap {server!r} is not host:port"
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return None
        except OSError as exc:
            errors.append(f"{server}: {exc.strerror or exc}")
    return "; ".join(errors) or "--bootstrap is empty"


def broker_unreachable_error(bootstrap: str) -> str | None:
    """None when the broker answers; else the error a user sees (what failed, and how to start a broker)."""
    problem = unreachable_brokers(bootstrap)
    if problem is None:
        return None
    return (f"cannot reach the Kafka broker at --bootstrap {bootstrap} ({problem}). "
            f"Is it running? `make broker-up` (or `docker compose -f infra/docker-compose.yml up -d`)")


def topic_partitions(bootstrap: str, topic: str, client_props: dict[str, str], timeout_s: float = 10.0) -> int | None:
    """How many partitions `topic` has (0: it does not exist), or None when this check cannot tell: the cluster did
    not answer, or it needs security settings (--kafka-properties are Java client settings, which this check's client,
    librdkafka, does not take). Then Spark's own client decides."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    if client_props:
        return None
    try:  # all topics: asking for this one by name would let a broker with auto-create make it, with its defaults
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout_s)
    except KafkaException:
        return None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return 0
    return len(found.partitions)


def wait_for_topic(bootstrap: str, topic: str, client_props: dict[str, str], stop: StopRequest) -> bool:
    """Block until `topic` exists (the producer creates it at start), saying so in one line; False when a stop was
    requested first."""
    return wait_until_ready(lambda: topic_partitions(bootstrap, topic, client_props) != 0, stop,
                            f"topic {topic} does not exist yet at {bootstrap}: waiting for it (the producer creates "
                            f"it at start)")


def start_query(spark, args: argparse.Namespace, query_name: str = QUERY_NAME):
    """Start the Kafka -> Bronze query; returns the StreamingQuery."""
    kafka_df = spark.readStream.format("kafka").options(**kafka_source_options(args, args.client_props)).load()
    return start_parquet_sink(to_bronze(kafka_df).coalesce(FILES_PER_BATCH), path=args.out, checkpoint=args.checkpoint,
                              trigger=args.trigger, available_now=args.available_now, name=query_name)


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    """--bootstrap and --topic: the topic to land (this job's, and the one-application pipeline's)."""
    parser.add_argument("--bootstrap", default=BOOTSTRAP,
                        help="Kafka bootstrap servers (default %(default)s; env KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic", default=TOPIC, help="topic to land (default %(default)s)")


def add_kafka_properties_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka-properties", type=Path, default=os.environ.get("KAFKA_CLIENT_PROPERTIES"),
                        help="file of Kafka client settings for a secured cluster (security.protocol, sasl.*, ssl.*), "
                             "so secrets stay off the command line (env KAFKA_CLIENT_PROPERTIES)")


def load_kafka_properties(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Read --kafka-properties into args.client_props ({} without the flag); a bad file is a usage error."""
    args.client_props = {}
    if args.kafka_properties is not None:
        try:
            args.client_props = read_kafka_properties(args.kafka_properties)
        except (OSError, ValueError) as exc:
            parser.error(f"--kafka-properties: {exc}")


# ---------------------------------------------------------------------------------------------------------------------
# The job


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_master_argument(parser)
    add_topic_arguments(parser)
    parser.add_argument("--out", default=BRONZE_PATH, help="Bronze Parquet folder, any Hadoop path (default %(default)s)")
    parser.add_argument("--checkpoint", default=BRONZE_CHECKPOINT,
                        help="checkpoint folder; one per --out, never shared (default %(default)s)")
    parser.add_argument("--startingOffsets", default="earliest", type=parse_starting_offsets,
                        help="where a NEW query starts: earliest, latest or JSON; ignored once a checkpoint exists "
                             "(default %(default)s)")
    parser.add_argument("--trigger", default="2 seconds", type=parse_trigger,
                        help='micro-batch interval, e.g. "2 seconds", "500 milliseconds" (default "2 seconds")')
    parser.add_argument("--available-now", action="store_true",
                        help="land everything the topic holds now, in as many batches as needed, then exit")
    parser.add_argument("--maxOffsetsPerTrigger", type=positive_int, default=DEFAULT_MAX_OFFSETS_PER_TRIGGER,
                        help="cap on records per micro-batch, all partitions together, so a catch-up runs in "
                             "bounded batches and each Bronze file holds at most this many rows (default "
                             "%(default)s)")
    parser.add_argument("--minOffsetsPerTrigger", type=positive_int,
                        help="wait for at least this many new records before a batch (fewer, larger files), "
                             "up to --maxTriggerDelay")
    parser.add_argument("--maxTriggerDelay", default="15m",
                        help="longest wait for --minOffsetsPerTrigger records (default %(default)s)")
    parser.add_argument("--failOnDataLoss", type=parse_bool, default=True,
                        help="fail when offsets are gone from Kafka (retention, deleted topic) instead of skipping "
                             "them (default %(default)s; keep true for an audit trail)")
    add_kafka_properties_argument(parser)
    add_drain_arguments(parser)
    args = parser.parse_args(argv)
    load_kafka_properties(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    unreachable = broker_unreachable_error(args.bootstrap)
    if unreachable:
        print(f"error: {unreachable}", file=sys.stderr)
        return 2
    mismatch = sink_pairing_problem(args.out, args.checkpoint)
    if mismatch:
        print(f"error: {mismatch}", file=sys.stderr)
        return 2
    stop = StopRequest().install()
    if not wait_for_topic(args.bootstrap, args.topic, args.client_props, stop):
        return 0
    spark = build_spark(QUERY_NAME, kafka=True, master=args.master)
    query = start_query(spark, args)
    log.info("landing topic %s from %s into %s (checkpoint %s, %s)", args.topic, args.bootstrap, args.out,
             args.checkpoint, "available-now" if args.available_now else f"trigger every {args.trigger}")
    drain = drain_restart(start_query, spark, args) if args.drain_on_stop else None
    code = run_query(query, stop, drain=drain, drain_timeout=args.drain_timeout)
    log.info("stopped; Bronze is at %s", args.out)
    spark.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
