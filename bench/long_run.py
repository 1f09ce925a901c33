"""Benchmark: does a live micro-batch after a week of running cost what it cost on fresh state? And what does a week
leave on disk?

Two states under one folder, each with its own topic: "fresh" (new tables and checkpoints) and "week" (the metadata a
week of 20-s batches leaves, built in minutes by bench/week_state.py: Bronze's _spark_metadata, the queries'
checkpoints, Silver's and Gold's Delta logs and checkpoints; what is real and what reproduced is said there and in
BENCHMARKS.md). Then rounds of live batches, alternating fresh / week in one Spark application (an equally warm JVM):
each round starts the layers' own queries as `make run` runs them (Bronze: Kafka -> Parquet; Silver: Bronze's files ->
MERGE, with Gold folded into the same pass through Silver's change feed), sends `--trades` trades (20 s at 50 trades/s
by default) per batch, waits for each layer's batch, and stops them. The first round of each state is a warm-up,
and the first batch of every round (the one after a start) is not counted.

Printed: per layer, the mean and median batch time (Spark's triggerExecution; Gold: its follow() inside Silver's
batch; Silver without it) on each state and the ratio week / fresh (target <= 1.2; the mean counts the compaction
batches every 10th batch); the process CPU per batch cycle; the disk of each category per day.

Needs a Kafka broker at KAFKA_BOOTSTRAP (default localhost:19092). To leave a shared broker alone, run it with a
private one in its own network namespace:

    unshare -n bash -c 'ip link set lo up; python3 infra/kafka/broker.py up --data-dir /tmp/lr-broker && \\
        nice -n 10 python bench/long_run.py; python3 infra/kafka/broker.py down --data-dir /tmp/lr-broker'

Usage:
    python bench/long_run.py            # 7 simulated days, 6 measured rounds of 5 batches per state; about 40 minutes
    python bench/long_run.py --quick    # 2 days, 2 rounds of 4 batches; 11 minutes measured
    python bench/long_run.py --days 3 --rounds 4 --keep /tmp/lr
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bench_common as bc
import week_state as ws
from bench_stats import table, verdict
from footprint import children_of, tree_cpu_s

NAME = "long_run"
UTC = timezone.utc
TARGET_RATIO = 1.2
PAIRS = ["XBT/USDT", "ETH/USD", "XDG/USD"]
PRICES = {"XBT/USDT": "83744.3", "ETH/USD": "2011.37", "XDG/USD": "0.1234567"}
LAYERS = ("bronze", "silver", "gold")
LIVE_ID_BASE = 10 ** 10  # live trade ids: above every simulated or staged one
WAIT_S = 300
# Gold's fold, step by step (GoldWriter.last): summing the change feed into partial bars, reading bars from Gold, MERGE
GOLD_STEPS = (("change feed to partial bars", "changes_ms"), ("reading bars", "read_ms"), ("MERGE", "merge_ms"))

log = logging.getLogger(NAME)


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers


def trade_records(first_id: int, count: int, now: datetime) -> list[tuple[bytes, bytes]]:
    """`count` v2 trades over three pairs as the producer writes them (key: the pair), ids from first_id."""
    out = []
    for i in range(count):
        trade_id = first_id + i
        symbol = PAIRS[trade_id % 3]
        ts = (now + timedelta(microseconds=i * 997)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        value = {"symbol": symbol, "price": PRICES[symbol], "size": f"0.{trade_id % 9973 + 1:08d}",
                 "side": "buy" if i % 2 else "sell", "ord_type": "limit", "trade_id": trade_id, "ts_event": ts,
                 "ts_ingest": ts, "api": "v2", "pair_native": symbol, "source": "ws"}
        out.append((symbol.encode(), json.dumps(value, separators=(",", ":")).encode()))
    return out


def summarize(batches: list[float]) -> dict[str, float | None]:
    if not batches:
        return {"n": 0, "mean": None, "median": None, "max": None}
    return {"n": len(batches), "mean": round(statistics.fmean(batches), 1),
            "median": round(statistics.median(batches), 1), "max": round(max(batches), 1)}


def ratios(fresh: dict[str, Any], week: dict[str, Any]) -> dict[str, float | None]:
    return {k: (round(week[k] / fresh[k], 2) if fresh.get(k) and week.get(k) is not None else None)
            for k in ("mean", "median")}


def per_day(total: float, days: float) -> float:
    return total / days if days > 0 else float("nan")


def records(adds: list[dict]) -> int:
    return sum(json.loads(a.get("stats") or "{}").get("numRecords", 0) for a in adds)


def data_per_day(bronze_batch_bytes: float, batches_per_day: float, silver_adds: list[dict], gold_adds: list[dict],
                 rate: float) -> dict[str, float]:
    """Data bytes a day of `rate` trades a second writes: Bronze from live batches' files, Silver and Gold from the
    real compacted files of today (bytes per trade, per bar; a day has 1,440 bars per pair, 3 pairs)."""
    silver_bytes, gold_bytes = sum(a["size"] for a in silver_adds), sum(a["size"] for a in gold_adds)
    return {"bronze": bronze_batch_bytes * batches_per_day,
            "silver": silver_bytes / max(1, records(silver_adds)) * rate * 86_400,
            "gold": gold_bytes / max(1, records(gold_adds)) * 1_440 * len(PAIRS)}


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---------------------------------------------------------------------------------------------------------------------
# Live batches


def produce(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bc.BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    if producer.flush(60) != 0:
        raise RuntimeError("undelivered records")


class State:
    """One state's folders, topic, queries and measured batches."""

    def __init__(self, name: str, root: Path) -> None:
        from lakehouse.pipeline.layers import layer_paths

        self.name, self.root = name, root
        self.paths = layer_paths(str(root))
        self.topic = bc.create_topic(f"longrun-{name}", partitions=3)
        self.batches: dict[str, list[float]] = {layer: [] for layer in LAYERS}
        self.listing: list[float] = []  # Silver's latestOffset (reading Bronze's sink log)
        self.cycle_cpu: list[float] = []
        self.gold_ms: list[float] = []
        # where Silver's batch goes (ms per measured batch): Spark's phases of its trigger (durationMs) and, inside its
        # addBatch, its MERGEs (with their metrics) and the metrics read alone
        self.phases: dict[str, list[float]] = {}

    def add_phases(self, figures: dict[str, float]) -> None:
        for name, ms in figures.items():
            self.phases.setdefault(name, []).append(ms)

    def path(self, key: str) -> Path:
        return Path(self.paths[key])

    def args(self, trades: int):
        from lakehouse.bronze import job as bronze_job
        from lakehouse.gold import job as gold_job
        from lakehouse.pipeline.layers import layer_argv
        from lakehouse.silver import job as silver_job

        argv = layer_argv(str(self.root), bc.BOOTSTRAP, self.topic,
                          {"bronze": "1 second", "silver": "4 seconds", "gold": "4 seconds"})
        return (bronze_job.parse_args(argv["bronze"] + ["--maxOffsetsPerTrigger", str(trades)]),
                silver_job.parse_args(argv["silver"]), gold_job.parse_args(argv["gold"]))


def wait_batch(query, after: int, rows: int) -> dict:
    """The progress of the query's next batch with input after batch id `after` (waits for `rows` input rows in all:
    records for Bronze, Bronze files for Silver)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if query.exception() is not None:
            raise RuntimeError(f"{query.name}: {query.exception()}")
        done = [p for p in query.recentProgress if p["batchId"] > after and p["numInputRows"] > 0]
        if sum(p["numInputRows"] for p in done) >= rows:
            return done[-1] | {"all": done}
        time.sleep(0.05)
    raise TimeoutError(f"{query.name}: no batch of {rows} rows within {WAIT_S} s")


def last_batch_id(query) -> int:
    """The newest batch that had input (idle triggers report the next batch's id without running it)."""
    return max([p["batchId"] for p in query.recentProgress if p["numInputRows"] > 0], default=-1)


def live_round(spark, state: State, first_id: int, trades: int, batches: int, measured: bool) -> None:
    """Start the state's queries, run `batches` batches of `trades` trades through all three layers, stop them."""
    from lakehouse.gold.table import GoldWriter
    from lakehouse.pipeline.all_layers import start_silver_and_gold
    from lakehouse.bronze import job as bronze_job

    from lakehouse.silver import job as silver_job

    bronze_args, silver_args, gold_args = state.args(trades)
    gold = GoldWriter(gold_args.out, gold_args.silver)
    silver_steps: dict[str, list[float]] = {"merges (with metrics)": [], "merge metrics": []}
    originals = {"insert_new": silver_job.insert_new, "inserted_rows": silver_job.inserted_rows}
    silver_job.insert_new = timed_step(originals["insert_new"], silver_steps["merges (with metrics)"])
    silver_job.inserted_rows = timed_step(originals["inserted_rows"], silver_steps["merge metrics"])
    follow, gold_times, gold_steps = gold.follow, [], []  # per follow(): ms; per write: the writer's own steps

    def timed_follow(session, through=None):
        started, last = time.monotonic(), gold.last
        follow(session, through=through)
        gold_times.append((time.monotonic() - started) * 1000)
        if gold.last is not last:
            gold_steps.append(gold.last)
    gold.follow = timed_follow
    bronze_q = bronze_job.start_query(spark, bronze_args)
    silver_q = start_silver_and_gold(spark, silver_args, gold_args, gold)
    try:
        time.sleep(2)
        for i in range(batches):
            b_after, s_after, g_before = last_batch_id(bronze_q), last_batch_id(silver_q), len(gold_times)
            g_steps_before = len(gold_steps)
            steps_before = {name: len(times) for name, times in silver_steps.items()}
            cpu0 = tree_cpu_s(os.getpid(), children_of())
            produce(state.topic, trade_records(first_id + i * trades, trades, datetime.now(UTC)))
            bronze_p = wait_batch(bronze_q, b_after, trades)
            silver_p = wait_batch(silver_q, s_after, len(bronze_p["all"]))  # its input: Bronze's files, one a batch
            cpu = tree_cpu_s(os.getpid(), children_of()) - cpu0
            gold_ms = sum(gold_times[g_before:])
            silver_ms = sum(p["durationMs"]["triggerExecution"] for p in silver_p["all"])
            bronze_ms = sum(p["durationMs"]["triggerExecution"] for p in bronze_p["all"])
            log.info("%s batch %d: bronze %d ms (id %d), silver %d ms, gold %d ms, cycle CPU %.2f s", state.name, i,
                     bronze_ms, bronze_p["batchId"], silver_ms - gold_ms, gold_ms, cpu)
            if measured and i > 0:  # the first batch after a start is not a steady one (Gold reads its open bars)
                state.batches["bronze"].append(bronze_ms)
                state.batches["silver"].append(silver_ms - gold_ms)
                state.batches["gold"].append(gold_ms)
                state.listing.append(sum(p["durationMs"].get("latestOffset", 0) for p in silver_p["all"]))
                state.cycle_cpu.append(cpu)
                phases = {f"spark {key}": sum(p["durationMs"].get(key, 0) for p in silver_p["all"])
                          for key in silver_p["durationMs"] if key != "triggerExecution"}
                writes = gold_steps[g_steps_before:]
                state.add_phases({**phases, "gold fold": gold_ms,
                                  **{f"gold: {name}": sum(w.get(key) or 0 for w in writes) for name, key in GOLD_STEPS},
                                  **{name: sum(times[steps_before[name]:]) for name, times in silver_steps.items()}})
    finally:
        for q in (bronze_q, silver_q):
            q.stop()
        silver_job.insert_new, silver_job.inserted_rows = originals["insert_new"], originals["inserted_rows"]


def timed_step(step, times: list[float]):
    """`step`, appending each call's milliseconds to `times`."""
    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return step(*args, **kwargs)
        finally:
            times.append((time.monotonic() - started) * 1000)
    return timed


def merge_rows_copied(table: Path, newest: int) -> list[int]:
    """numTargetRowsCopied of the table's `newest` MERGE commits (rows of the files a MERGE rewrote that it did not
    change: what copy-on-write costs it)."""
    copied = []
    for commit in sorted((table / "_delta_log").glob("*.json"), reverse=True):
        info = json.loads(commit.read_text().splitlines()[0]).get("commitInfo", {})
        if info.get("operation") == "MERGE":
            copied.append(int(info["operationMetrics"]["numTargetRowsCopied"]))
            if len(copied) == newest:
                break
    return copied[::-1]


def snapshot_costs(spark, state: State, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Where a Delta snapshot refresh goes, per table (median ms): one Hadoop listStatus of the whole _delta_log
    (what Delta's own log store does at each refresh), the session's log store asked for the files from the last
    checkpoint on (what a refresh asks it), and loading the newest snapshot from scratch (the last checkpoint and the
    commits after it, replayed: what a new version costs a writer that must know the table's files)."""
    jvm = spark.sparkContext._jvm
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    out = {}
    for layer in ("silver", "gold"):
        log_dir = state.path(layer) / "_delta_log"
        path = jvm.org.apache.hadoop.fs.Path(str(log_dir))
        fs = path.getFileSystem(conf)
        checkpoint = json.loads((log_dir / "_last_checkpoint").read_text())["version"]
        start = jvm.org.apache.hadoop.fs.Path(f"file:{log_dir}/{checkpoint:020d}")
        store = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, str(state.path(layer))).store()
        listing, store_listing, loading = [], [], []
        for _ in range(repeats):
            t = time.monotonic()
            files = len(fs.listStatus(path))
            listing.append((time.monotonic() - t) * 1000)
            t = time.monotonic()
            store.listFrom(start, conf).size()
            store_listing.append((time.monotonic() - t) * 1000)
            jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
            t = time.monotonic()
            spark.read.format("delta").load(str(state.path(layer))).inputFiles()
            loading.append((time.monotonic() - t) * 1000)
        out[layer] = {"log_files": files, "list_ms": round(statistics.median(listing), 1),
                      "log_store_list_ms": round(statistics.median(store_listing), 1),
                      "load_snapshot_ms": round(statistics.median(loading), 1)}
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The simulated week


def stage_today(spark, root: Path, now_ms: int, rate: float, hours: float) -> tuple[Path, Path, int]:
    """Today's real data so far: `rate` trades a second over the last `hours` (within today), in a staging Silver
    (one file, as OPTIMIZE leaves it) and Gold's bars of them by Gold's own writer (its rebuild), laid out by Gold's
    maintenance (the state right after an hourly round)."""
    from pyspark.sql import functions as F

    from lakehouse.lake.delta import compact_and_vacuum

    from lakehouse.gold.job import ensure_gold
    from lakehouse.gold.table import GoldWriter
    from lakehouse.silver.job import ensure_silver

    silver, gold = root / "silver", root / "gold"
    ensure_silver(spark, str(silver))
    midnight = now_ms - now_ms % ws.DAY_MS
    start = max(midnight, now_ms - int(hours * ws.HOUR_MS))
    rows = int(rate * (now_ms - 120_000 - start) / 1000)
    step_us = max(1, (now_ms - 120_000 - start) * 1000 // max(rows, 1))
    symbols = F.array(*[F.lit(s) for s in PAIRS])
    df = (spark.range(rows, numPartitions=2)
          .withColumn("ts_event", F.timestamp_micros(F.lit(start * 1000) + F.col("id") * step_us))
          .select(symbols[(F.col("id") % 3).cast("int")].alias("symbol"),
                  (F.lit(100) + (F.col("id") % 997) / 10).cast("decimal(38,18)").alias("price"),
                  ((F.col("id") % 1000) / 1000 + 0.001).cast("decimal(38,18)").alias("size"),
                  F.lit("buy").alias("side"), F.lit("limit").alias("ord_type"),
                  (F.col("id") + 1).alias("trade_id"), F.lit(None).cast("int").alias("v1_ordinal"),
                  "ts_event", F.col("ts_event").alias("ts_ingest"), F.lit("ws").alias("source"),
                  F.lit("week").alias("topic"), (F.col("id") % 3).cast("int").alias("partition"),
                  (F.col("id") / 3).cast("long").alias("offset"), F.col("ts_event").alias("ts_kafka"),
                  F.to_date("ts_event").alias("trade_date")))
    df.coalesce(1).write.format("delta").mode("append").save(str(silver))
    ensure_gold(spark, str(gold))
    GoldWriter(str(gold), str(silver)).rebuild(spark)
    compact_and_vacuum(spark, str(gold))  # as the hourly maintenance leaves it: today ZORDERed into small files
    return silver, gold, rows


def closed_bars_file(spark, gold: Path, out: Path) -> tuple[Path, dict]:
    """One real Parquet file of Gold's columns holding closed bars (today's, is_open false): what a past day's Gold
    file is, copied under each past day (the open-bar lookup of a restarted Gold writer opens every Gold file)."""
    from pyspark.sql import functions as F

    (spark.read.format("delta").load(str(gold)).withColumn("is_open", F.lit(False)).drop("bar_date").coalesce(1)
     .write.format("delta").save(str(out)))
    add = ws.table_files(out)[0]
    return out / add["path"], add


def build_week(spark, week: State, fresh: State, days: float, batch_seconds: int, now_ms: int, rate: float,
               today_hours: float) -> dict[str, Any]:
    """The week state, with the fresh state's live files as templates."""
    from lakehouse.gold.job import ensure_gold
    from lakehouse.gold.table import THROUGH_KEY
    from lakehouse.lake.delta import table_version
    from lakehouse.silver.job import ensure_quarantine, ensure_silver

    t0 = time.monotonic()
    built: dict[str, Any] = {}
    batch_ms = batch_seconds * 1000
    batches = ws.batch_count(days, batch_seconds)
    start_ms = now_ms - batches * batch_ms
    last = batches - 1
    at = lambda b: start_ms + b * batch_ms  # noqa: E731
    # Bronze's sink log: files per batch as a live batch writes them
    sink = fresh.path("bronze") / "_spark_metadata"
    fresh_batches = [[json.loads(line) for line in f.read_text().splitlines()[1:]]
                     for f in sink.iterdir() if f.name.isdigit()]
    entries = max(fresh_batches, key=len)  # a live batch: one file per Kafka partition that got trades
    bronze_bytes = [e["size"] for batch in fresh_batches if len(batch) == len(entries) for e in batch]
    bronze = week.path("bronze")
    bronze.mkdir(parents=True, exist_ok=True)

    def bronze_entries(b: int) -> list[dict]:
        return [dict(e, path=(bronze / f"part-{p:05d}-{ws.uuid.UUID(int=b * 16 + p)}-c000.snappy.parquet").as_uri(),
                     modificationTime=at(b) + 400 + p) for p, e in enumerate(entries)]
    built["bronze_files_per_batch"] = len(entries)
    built["sink_compact_bytes"] = ws.write_compactible_log(bronze / "_spark_metadata", last, bronze_entries,
                                                           lambda b: at(b) + 900)
    # Bronze's checkpoint: Kafka offsets (the week topic from 0: a new topic), the last 20 batches
    fresh_ck, ck = fresh.path("bronze_checkpoint"), week.path("bronze_checkpoint")
    head = (fresh_ck / "offsets" / "0").read_text().splitlines()[:2]
    ck.mkdir(parents=True)
    ws.write_file(ck / "metadata", json.dumps({"id": str(ws.uuid.uuid4())}).encode(), start_ms)
    (ck / "sources" / "0").mkdir(parents=True)
    kafka_offsets = json.dumps({week.topic: {str(p): 0 for p in range(3)}}, separators=(",", ":"))
    ws.write_file(ck / "sources" / "0" / "0", b"\x00v1\n" + kafka_offsets.encode(), start_ms)
    ws.write_batch_logs(ck, last, lambda b: "\n".join([head[0], head[1], kafka_offsets]).encode(),
                        b'v1\n{"nextBatchWatermarkMs":0}', at)
    # Silver's checkpoint: its Bronze reader (SinkFilesSource) has read every Bronze file (one Silver batch per Bronze
    # batch); its offset is the position of the next file, and it keeps no log of its own
    fresh_ck, ck = fresh.path("silver_checkpoint"), week.path("silver_checkpoint")
    head = (fresh_ck / "offsets" / "0").read_text().splitlines()[:2]
    ck.mkdir(parents=True)
    ws.write_file(ck / "metadata", json.dumps({"id": str(ws.uuid.uuid4())}).encode(), start_ms)
    ws.write_batch_logs(ck, last, lambda b: "\n".join(
        [head[0], head[1], json.dumps({"files": (b + 1) * len(entries)})]).encode(),
        b'v1\n{"nextBatchWatermarkMs":0}', lambda b: at(b) + 1500)
    built["bronze_s"] = round(time.monotonic() - t0, 1)
    # Today's real data
    t1 = time.monotonic()
    staged_silver, staged_gold, built["today_trades"] = stage_today(spark, week.root / "staging", now_ms, rate,
                                                                    today_hours)
    built["staging_s"] = round(time.monotonic() - t1, 1)
    built["data_per_day"] = data_per_day(statistics.fmean(bronze_bytes) * len(entries), batches / days,
                                          ws.table_files(staged_silver), ws.table_files(staged_gold), rate)
    # Silver and Gold: the tables created by the jobs' own code, then a week of commits
    t2 = time.monotonic()
    ensure_silver(spark, week.paths["silver"])
    ensure_quarantine(spark, week.paths["quarantine"])
    ensure_gold(spark, week.paths["gold"])
    for name, fresh_table, staged in (("silver", fresh.path("silver"), staged_silver),
                                      ("gold", fresh.path("gold"), staged_gold)):
        template = ws.Template.of(fresh_table)
        column = "trade_date" if name == "silver" else "bar_date"
        staged_adds = ws.table_files(staged)
        ratio = 1.0
        if name == "silver":  # bytes per trade of a real compacted file over those of a live batch's file
            ratio = min(1.0, (sum(a["size"] for a in staged_adds) / max(1, records(staged_adds)))
                        / (sum(a["size"] for a in template.adds) / max(1, records(template.adds))))
        sim = ws.DeltaWeek(column, len(template.adds), template.removes, template.adds[0]["size"], ratio,
                           auto_compact=name == "silver")
        sim.run(start_ms, batches, batch_ms)
        metadata, past = None, None
        if name == "gold":
            metadata = json.dumps({THROUGH_KEY: table_version(spark, week.paths["silver"])}, sort_keys=True)
            past = closed_bars_file(spark, staged, week.root / "staging" / "closed")
        built[name] = ws.write_delta_week(spark, week.path(name), sim, template, staged_adds, staged,
                                          now_ms, metadata, past_file=past, log=log.info)
        built[name]["compaction_ratio"] = round(ratio, 3)
        built[name]["removed_bytes_kept"] = ws.kept_removed_bytes(sim.removed, now_ms, 3 * ws.DAY_MS)
        built[name]["removed_bytes_total"] = sum(size for _, size in sim.removed)
        log.info("week %s: %s", name, built[name])
    built["delta_s"] = round(time.monotonic() - t2, 1)
    shutil.rmtree(week.root / "staging")
    built["seconds"] = round(time.monotonic() - t0, 1)
    return built


# ---------------------------------------------------------------------------------------------------------------------
# The run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 simulated days, 2 measured rounds of 4 batches")
    p.add_argument("--days", type=float, default=7.0, help="simulated days (default %(default)s)")
    p.add_argument("--batch-seconds", type=int, default=20, help="a batch every N s during the week (default 20)")
    p.add_argument("--rate", type=float, default=50.0, help="trades a second (default %(default)s)")
    p.add_argument("--trades", type=int, default=1000, help="trades per live batch (default: 20 s at 50/s)")
    p.add_argument("--rounds", type=int, default=6, help="measured rounds per state (default %(default)s)")
    p.add_argument("--batches", type=int, default=5, help="batches per round (default %(default)s)")
    p.add_argument("--today-hours", type=float, default=24.0,
                   help="real trades staged in today's partition: at most this many hours (default: since 00:00)")
    p.add_argument("--keep", type=Path, help="build the states here and keep them")
    args = p.parse_args(argv)
    if args.quick:
        args.days, args.rounds, args.batches, args.today_hours = 2.0, 2, 4, 2.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    from lakehouse.lake.delta import WRITER_SESSION_CONF
    from lakehouse.spark.session import build_spark

    started, load_before = time.monotonic(), bc.load_average()
    root = args.keep or Path(tempfile.mkdtemp(prefix="long_run-"))
    root.mkdir(parents=True, exist_ok=True)
    spark = build_spark(NAME, kafka=True, delta=True, master="local[2]", conf=WRITER_SESSION_CONF)
    ws.HADOOP_CHECKSUMS["on"] = ws.hadoop_checksums(spark)
    fresh, week = State("fresh", root / "fresh"), State("week", root / "week")
    next_id = LIVE_ID_BASE
    try:
        live_round(spark, fresh, next_id, args.trades, args.batches, measured=False)  # warm-up, and the templates
        next_id += args.trades * args.batches
        now_ms = int(time.time() * 1000)
        built = build_week(spark, week, fresh, args.days, args.batch_seconds, now_ms, args.rate, args.today_hours)
        live_round(spark, week, next_id, args.trades, args.batches, measured=False)  # warm-up
        next_id += args.trades * args.batches
        for rnd in range(args.rounds):
            for state in ((week, fresh) if rnd % 2 else (fresh, week)):
                live_round(spark, state, next_id, args.trades, args.batches, measured=True)
                next_id += args.trades * args.batches
        try:
            snapshots = {s.name: snapshot_costs(spark, s) for s in (fresh, week)}
        except Exception as exc:  # a breakdown only: the batches above are the figures
            log.warning("snapshot costs not measured: %s", exc)
            snapshots = {}
        disk = {s.name: ws.disk_usage(s.root) for s in (fresh, week)}
        delta_logs = {s.name: {t: sum(1 for _ in (s.path(t) / "_delta_log").iterdir()) for t in ("silver", "gold")}
                      for s in (fresh, week)}
        copied = {s.name: merge_rows_copied(s.path("gold"), args.rounds * args.batches) for s in (fresh, week)}
    finally:
        bc.delete_topics([fresh.topic, week.topic])
        spark.stop()
    load_after = bc.load_average()
    # Report
    rows, figures = [], {}
    for layer in LAYERS:
        f, w = summarize(fresh.batches[layer]), summarize(week.batches[layer])
        r = ratios(f, w)
        figures[layer] = {"fresh": f, "week": w, "ratio": r}
        rows.append([layer, f["mean"], w["mean"], r["mean"], f["median"], w["median"], r["median"], f["n"],
                     verdict(r["mean"], TARGET_RATIO, higher_is_better=False) if r["mean"] else "?"])
    cpu = {s.name: summarize([c * 1000 for c in s.cycle_cpu]) for s in (fresh, week)}
    listing = {s.name: summarize(s.listing) for s in (fresh, week)}
    print(f"\n=== long_run: {args.days:g} simulated days of {args.batch_seconds}-s batches, {args.trades} trades per "
          f"live batch, {args.rounds} rounds x {args.batches} batches per state; load {load_before} -> "
          f"{load_after} ===")
    print(table(rows, ["layer", "fresh mean ms", "week mean ms", "x (mean)", "fresh median", "week median",
                       "x (median)", "batches", f"<= {TARGET_RATIO}"]))
    print(f"Silver's listing of Bronze (latestOffset, ms, mean): fresh {listing['fresh']['mean']}, week "
          f"{listing['week']['mean']}")
    phase_rows = [[name, summarize(fresh.phases.get(name, []))["mean"], summarize(week.phases.get(name, []))["mean"]]
                  for name in sorted(set(fresh.phases) | set(week.phases))]
    print(table(phase_rows, ["Silver's pass (and Gold's fold), per batch", "fresh mean ms", "week mean ms"]))
    print(f"Gold's MERGE, rows copied a batch (median, max): fresh {statistics.median(copied['fresh'] or [0])}, "
          f"{max(copied['fresh'], default=0)}; week {statistics.median(copied['week'] or [0])}, "
          f"{max(copied['week'], default=0)}")
    print(f"process CPU per batch cycle (ms, mean): fresh {cpu['fresh']['mean']}, week {cpu['week']['mean']} "
          f"(x {ratios(cpu['fresh'], cpu['week'])['mean']})")
    days = args.days
    disk_rows = []
    for kind in ws.DISK_KINDS:
        u = disk["week"][kind]
        disk_rows.append([kind, human(u["bytes"]), u["files"], human(per_day(u["bytes"], days))])
    print(table(disk_rows, ["week state", "bytes", "files", "per simulated day"]))
    rewritten = {t: built[t]["removed_bytes_total"] / days for t in ("silver", "gold")}
    print(table([[layer, human(b), human(rewritten.get(layer, 0))] for layer, b in built["data_per_day"].items()],
                ["data a day", f"written ({args.rate:g} trades/s)", "removed by compaction (kept 3 days)"]))
    print(table([[s, t, c["log_files"], c["list_ms"], c["log_store_list_ms"], c["load_snapshot_ms"]]
                 for s, by in snapshots.items() for t, c in by.items()],
                ["state", "table", "_delta_log files", "list folder ms", "log store lists ms", "snapshot load ms"]))
    print(f"built in {built['seconds']} s: {json.dumps(built)}")
    summary = [bc.summary_row(NAME, f"{layer} batch after a week / fresh (mean ms)", figures[layer]["week"]["mean"],
                              "fresh", figures[layer]["fresh"]["mean"], figures[layer]["ratio"]["mean"],
                              f"<= {TARGET_RATIO}",
                              verdict(figures[layer]["ratio"]["mean"], TARGET_RATIO, higher_is_better=False)
                              if figures[layer]["ratio"]["mean"] else "?", "")
               for layer in LAYERS]
    path = bc.write_results(NAME, {"machine": bc.machine_info(), "load_before": load_before, "load_after": load_after,
                                   "args": {k: str(v) for k, v in vars(args).items()},
                                   "seconds": round(time.monotonic() - started, 1), "built": built,
                                   "figures": figures, "cycle_cpu_ms": cpu, "silver_listing_ms": listing,
                                   "silver_phases": {st.name: st.phases for st in (fresh, week)},
                                   "disk": disk, "delta_log_files": delta_logs, "gold_rows_copied": copied, "snapshots": snapshots,
                                   "raw": {s.name: {"batches": s.batches, "cpu": s.cycle_cpu, "listing": s.listing}
                                           for s in (fresh, week)}, "rows": summary})
    print(f"results: {path}  ({time.monotonic() - started:.0f} s)")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
