"""Benchmark 2, Bronze catch-up: how fast the Bronze job lands a backlog, against a plain confluent-kafka consumer
reading the same backlog in the same run, as a median of several repetitions.

The backlog: N records in a new 3-partition topic (spread evenly), each value the producer's exact JSON for a trade
the fake Kraken's generator made (unique trade_id per record), key the pair. Then, per repetition:

  plain consumer  confluent-kafka, partitions assigned from the beginning, consume() in batches of 10,000, touching
                  every value, until every partition's end offset; rate = N / elapsed.
  Bronze job      spark/jobs/kafka_to_bronze_trades.py --available-now as a subprocess (local[2]), into a new folder;
                  rows/s = rows / sum of its batches' durations (the job's own progress lines), and also
                  N / wall time of the whole process (JVM and Spark start-up included); files = Parquet files listed
                  in _spark_metadata.
  16 MB fetches   both again with max.partition.fetch.bytes=16 MB (Kafka's default, 1 MB, bounds both at this
                  size), the Bronze job through its --kafka-properties file.

Usage:
    python bench/bronze_catchup.py             # 1,000,000 records; consumer x3, Bronze x3
    python bench/bronze_catchup.py --quick     # 200,000 records; consumer x3, Bronze x2
    python bench/bronze_catchup.py --quick --master spark://127.0.0.1:7077   # the Bronze job on `make cluster-up`'s
                                               # Spark (its brokers answer on localhost:19092 too)
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import bench_common as bc
from bench_stats import median, ratio, table, verdict

NAME = "bronze_catchup"
PARTITIONS = 3
# Kafka's default is 1 MB per partition per fetch (both clients); this variant lets each fetch carry 16 MB
BIG_FETCH = {"max.partition.fetch.bytes": "16777216", "fetch.max.bytes": "104857600"}

log = logging.getLogger(NAME)


def backlog_values(n: int, pool: int = 20_000) -> tuple[list[bytes], list[bytes]]:
    """n producer-shaped (key, value) pairs: a pool of real producer values, each copy with its own trade_id."""
    base = bc.producer_values(bc.v2_trade_frames(pool))
    parts = []
    for key, value in base:
        head, _, rest = value.partition(b'"trade_id":')
        parts.append((key, head + b'"trade_id":', rest[rest.index(b","):]))
    keys, values = [], []
    for i in range(n):
        key, head, tail = parts[i % len(parts)]
        keys.append(key)
        values.append(head + str(100_000_000 + i).encode() + tail)
    return keys, values


def produce_backlog(topic: str, keys: list[bytes], values: list[bytes]) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bc.BOOTSTRAP, "acks": "all", "compression.type": "lz4", "linger.ms": 20,
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000})
    t0 = time.time()
    for i, (key, value) in enumerate(zip(keys, values)):
        while True:
            try:
                p.produce(topic, value, key, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError("backlog not fully delivered")
    return time.time() - t0


def run_consumer(topic: str, n: int, fetch: Optional[dict[str, str]] = None) -> dict[str, Any]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bc.BOOTSTRAP, "group.id": f"bench-plain-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **(fetch or {})})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    t0 = time.time()
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    count, nbytes, done = 0, 0, set()
    while len(done) < PARTITIONS:
        for msg in c.consume(10_000, 1.0):
            if msg.error():
                continue
            count += 1
            nbytes += len(msg.value())
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
    wall = time.time() - t0
    c.close()
    return {"rate": count / wall, "wall_s": wall, "records": count, "mb": nbytes / 1e6}


def run_bronze(topic: str, n: int, workdir: Path, rep: str, fetch: Optional[dict[str, str]] = None,
               master: str = "local[2]") -> dict[str, Any]:
    out, ckpt, log_path = workdir / f"bronze-{rep}", workdir / f"ckpt-{rep}", workdir / f"bronze-{rep}.log"
    extra = []
    if fetch:  # the job's --kafka-properties file carries Kafka client settings to Spark's consumer
        props = workdir / "fetch.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in fetch.items()))
        extra = ["--kafka-properties", str(props)]
    t0 = time.time()
    proc = bc.start_script(bc.BRONZE_JOB, ["--bootstrap", bc.BOOTSTRAP, "--topic", topic, "--out", str(out),
                                           "--checkpoint", str(ckpt), "--startingOffsets", "earliest",
                                           "--available-now", *extra], log_path, SPARK_MASTER=master)
    rc = proc.wait(1800)
    wall = time.time() - t0
    text = log_path.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"Bronze job exited {rc}: {text[-3000:]}")
    batches = bc.progress_lines(text)
    rows = sum(b["rows"] for b in batches)
    busy_s = sum(b["duration_ms"] for b in batches) / 1000
    files = [f for b in bc.sink_batches(out) for f in b["files"]]
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"rows": rows, "batches": len(batches), "busy_s": busy_s, "rate": rows / busy_s if busy_s else None,
            "wall_s": wall, "wall_rate": rows / wall, "files": len(files),
            "mb_written": sum(size for _, size in files) / 1e6}


def summarize(consumer: list[dict], bronze: list[dict], n: int, consumer_big: list[dict],
              bronze_big: list[dict], master: str = "local[2]") -> dict[str, Any]:
    c_rate = median([r["rate"] for r in consumer])
    b_rate = median([r["rate"] for r in bronze])
    b_wall = median([r["wall_rate"] for r in bronze])
    r = b_rate / c_rate if c_rate else None
    return {
        "records": n, "consumer_rate": c_rate, "bronze_rate": b_rate, "bronze_wall_rate": b_wall,
        "ratio_to_consumer": r, "ratio_wall_to_consumer": b_wall / c_rate if c_rate else None,
        "files": median([x["files"] for x in bronze]), "mb_written": median([x["mb_written"] for x in bronze]),
        "bronze_wall_s": median([x["wall_s"] for x in bronze]), "bronze_busy_s": median([x["busy_s"] for x in bronze]),
        "target": verdict(r, 1.0),
        "fetch_16mb": {"consumer_rate": median([x["rate"] for x in consumer_big]),
                       "bronze_rate": median([x["rate"] for x in bronze_big])},
        "master": master,
        "bound": f"Spark on {master}: 3 Kafka partitions = 3 tasks on 2 cores, each fetching (Kafka's default "
                 "1 MB per partition per fetch), converting to rows and writing Parquet (snappy); the plain consumer "
                 "only fetches (same 1 MB default)",
    }


def summary_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        bc.summary_row("2 Bronze catch-up", "rows/s (batch time)", s["bronze_rate"], "plain consumer",
                       s["consumer_rate"], s["ratio_to_consumer"], ">= 1.0 of plain consumer", s["target"], s["bound"]),
        bc.summary_row("2 Bronze catch-up", "rows/s (wall, incl. JVM start)", s["bronze_wall_rate"], "plain consumer",
                       s["consumer_rate"], s["ratio_wall_to_consumer"], "", "", ""),
        bc.summary_row("2 Bronze catch-up", "files written; MB", f"{s['files']:.0f}; {s['mb_written']:.1f}", "", None,
                       None, "", "", ""),
        bc.summary_row("2 Bronze catch-up", "rows/s, both with 16 MB fetches", s["fetch_16mb"]["bronze_rate"],
                       "plain consumer, 16 MB fetches", s["fetch_16mb"]["consumer_rate"],
                       ratio(s["fetch_16mb"]["bronze_rate"], s["fetch_16mb"]["consumer_rate"]), "", "", ""),
    ]


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small: 200,000 records, Bronze job twice")
    p.add_argument("--records", type=int, help="backlog size (default 1,000,000; quick 200,000)")
    p.add_argument("--reps", type=int, help="Bronze job runs (default 3; quick 2); the consumer runs 3 times")
    p.add_argument("--fetch-reps", type=int, help="runs of both with 16 MB fetches (default 2; quick 1)")
    p.add_argument("--master", default="local[2]",
                   help="where the Bronze job runs (default local[2]; e.g. spark://127.0.0.1:7077 for make cluster-up)")
    args = p.parse_args(argv)
    args.records = args.records or (200_000 if args.quick else 1_000_000)
    args.reps = args.reps or (2 if args.quick else 3)
    args.fetch_reps = args.fetch_reps if args.fetch_reps is not None else (1 if args.quick else 2)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    load_before = bc.load_average()
    keys, values = backlog_values(args.records)
    topic = bc.create_topic("catchup", PARTITIONS)
    consumer, bronze, consumer_big, bronze_big = [], [], [], []
    try:
        produce_s = produce_backlog(topic, keys, values)
        mb = sum(map(len, values)) / 1e6
        del keys, values
        log.info("backlog: %d records (%.0f MB of values) in %s, produced in %.1fs", args.records, mb, topic, produce_s)
        with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp:
            for i in range(max(3, args.reps)):  # interleaved, so both see the same machine load
                consumer.append(run_consumer(topic, args.records))
                log.info("consumer %d: %.0f rows/s", i, consumer[-1]["rate"])
                if i < args.reps:
                    bronze.append(run_bronze(topic, args.records, Path(tmp), str(i), master=args.master))
                    log.info("bronze %d: %.0f rows/s in batches, %.0f rows/s wall, %d files", i, bronze[-1]["rate"],
                             bronze[-1]["wall_rate"], bronze[-1]["files"])
                if i < args.fetch_reps:
                    consumer_big.append(run_consumer(topic, args.records, BIG_FETCH))
                    bronze_big.append(run_bronze(topic, args.records, Path(tmp), f"big-{i}", BIG_FETCH, args.master))
                    log.info("16 MB fetches %d: consumer %.0f rows/s, bronze %.0f rows/s in batches", i,
                             consumer_big[-1]["rate"], bronze_big[-1]["rate"])
    finally:
        bc.delete_topics([topic])
    s = summarize(consumer, bronze, args.records, consumer_big, bronze_big, args.master)
    rows = summary_rows(s)
    payload = {"name": NAME, "quick": args.quick, "params": vars(args), "load_before": load_before,
               "load_after": bc.load_average(), "machine": bc.machine_info(), "summary": s,
               "consumer_reps": consumer, "bronze_reps": bronze, "consumer_16mb_reps": consumer_big,
               "bronze_16mb_reps": bronze_big, "rows": rows}
    path = bc.write_results(NAME, payload)
    print(table([[r["figure"], r["value"], r["ceiling_name"], r["ceiling"], r["ratio"], r["target"], r["status"]]
                 for r in rows], ["figure", "value", "ceiling", "ceiling value", "ratio", "target", "status"]))
    print(f"bound by: {s['bound']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
