"""Benchmark 3, end-to-end latency: a steady 1,000 trades/s through fake Kraken -> producer -> broker -> Bronze job,
once per trigger setting (the seed's 2 seconds and a fast 200 milliseconds by default).

Two latencies per trade, from the trades that landed in Bronze (a warm-up at the start is left out):

  e2e       (time the trade becomes readable in Bronze) - ts_event. "Readable" = the time its batch was committed
            to the sink log: the mtime of <out>/_spark_metadata/<batch> (a reader going through _spark_metadata, e.g.
            spark.read.parquet(out), sees the batch from then on). ts_event is when the fake Kraken made the trade
            (it sends it at once), so this spans WebSocket, producer, broker, trigger wait and the Spark batch.
  producer  (broker acknowledgement) - ts_ingest. The benchmark's topic has message.timestamp.type=LogAppendTime,
            so each record's Kafka timestamp (Bronze's ts_kafka, ms precision) is the time the broker appended it,
            which with one broker and acks=all is when it acknowledges it (the ack's trip back over loopback is left
            out). ts_ingest is when the producer received the frame, so this spans parse, produce(), linger.ms (5 ms)
            and the broker's append. A record's CreateTime would not do: librdkafka sets it at produce().

Figures against references measured in the same run: the e2e floor of a micro-batch engine (trigger + p99 batch
duration from the job's own progress lines) and, for the producer side, a bare confluent-kafka producer with the
same config at the same rate (produce() -> delivery report), run alongside. Percentiles are the median over
consecutive 15-second slices of the window (the "repetitions"); the overall percentiles are in the JSON.

Usage:
    python bench/e2e_latency.py                # 60 s per trigger
    python bench/e2e_latency.py --quick        # 15 s per trigger
    python bench/e2e_latency.py --trigger "2 seconds" --trigger "100 milliseconds"
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import bench_common as bc
from bench_stats import latency_summary, median, percentile, table, verdict
from stream_rig import Job, batch_rows, run_stream

NAME = "e2e_latency"
DEFAULT_TRIGGERS = ["2 seconds", "200 milliseconds"]
RATE = 1000.0
SLICE_S = 15.0
TARGET_PRODUCER_P99_MS = 20.0

log = logging.getLogger(NAME)


def epoch_s(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def trigger_ms(trigger: str) -> int:
    from lakehouse.spark.flags import parse_trigger

    return int(parse_trigger(trigger).split()[0])


def trade_latencies(job: Job, t_from: float, t_to: float) -> list[tuple[float, float, float]]:
    """(ts_event, e2e ms, producer ms) of every Bronze row whose ts_event is in [t_from, t_to)."""
    import pyarrow as pa

    out = []
    for b in batch_rows(job, ["ts_kafka", "ts_type", "value_raw"]):
        for t in b["tables"]:
            ts_kafka = t.column("ts_kafka").cast(pa.int64()).to_pylist()  # microseconds
            ts_type = t.column("ts_type").to_pylist()
            for raw, kafka_us, kind in zip(t.column("value_raw").to_pylist(), ts_kafka, ts_type):
                v = json.loads(raw)
                event = epoch_s(v["ts_event"])
                if not t_from <= event < t_to:
                    continue
                if kind != 1:
                    raise RuntimeError("topic is not LogAppendTime: producer-side latency would be meaningless")
                producer_ms = kafka_us / 1000 - epoch_s(v["ts_ingest"]) * 1000
                out.append((event, (b["committed_at"] - event) * 1000, producer_ms))
    return out


def sliced(values: list[tuple[float, float, float]], t_from: float, index: int) -> dict[str, Any]:
    """Percentiles per consecutive SLICE_S slice of ts_event; the median over slices; and over all."""
    slices: dict[int, list[float]] = {}
    for row in values:
        slices.setdefault(int((row[0] - t_from) // SLICE_S), []).append(row[index])
    per_slice = [latency_summary(v) for _, v in sorted(slices.items()) if len(v) >= 100]
    return {
        "p50": median([s["p50"] for s in per_slice]), "p95": median([s["p95"] for s in per_slice]),
        "p99": median([s["p99"] for s in per_slice]), "slices": per_slice,
        "all": latency_summary([row[index] for row in values]),
    }


def run_one(trigger: str, duration: float, warmup: float, workdir: Path) -> dict[str, Any]:
    job = Job(trigger, ["--trigger", trigger])
    side_log = workdir / "kafka-latency.out"

    def start_side(_topic: str) -> subprocess.Popen:
        ceiling_topic = bc.create_topic("latency-ceiling", 3)
        return subprocess.Popen([bc.PYTHON, str(bc.REPO_ROOT / "bench" / "ceiling_workers.py"), "kafka-latency",
                                 "--topic", ceiling_topic, "--rate", str(RATE), "--duration", str(duration)],
                                stdout=open(side_log, "w"), stderr=subprocess.DEVNULL, cwd=bc.REPO_ROOT,
                                env=bc.script_env()), ceiling_topic

    run = run_stream(RATE, duration, [job], workdir, drain=True,
                     topic_config={"message.timestamp.type": "LogAppendTime"}, on_start=start_side)
    side, ceiling_topic = run["side"]
    side.wait(120)
    bc.delete_topics([ceiling_topic])
    ceiling = json.loads(side_log.read_text().strip().splitlines()[-1])
    t_from, t_to = run["t_start"] + warmup, run["t_stop"]
    rows = trade_latencies(job, t_from, t_to)
    commits = [b for b in bc.sink_batches(job.out) if t_from <= b["committed_at"] <= t_to + 5]
    batch_ids = {b["batch"] for b in commits}
    durations = [p["duration_ms"] for p in bc.progress_lines(job.log_text()) if p["batch"] in batch_ids]
    floor_p99 = trigger_ms(trigger) + (percentile(durations, 99) or 0)
    e2e, prod = sliced(rows, t_from, 1), sliced(rows, t_from, 2)
    ceiling_lat = latency_summary(ceiling["latencies_ms"])
    target_e2e = trigger_ms(trigger) + 1000
    return {
        "trigger": trigger, "trades_in_window": len(rows), "records": run["records"],
        "window_s": t_to - t_from, "batches_in_window": len(commits),
        "batch_duration_ms": latency_summary(durations), "floor_p99_ms": floor_p99,
        "e2e_ms": e2e, "producer_ms": prod, "ceiling_produce_ack_ms": ceiling_lat,
        "e2e_target_ms": target_e2e, "e2e_target": verdict(e2e["p99"], target_e2e, higher_is_better=False),
        "producer_target": verdict(prod["p99"], TARGET_PRODUCER_P99_MS, higher_is_better=False),
        "producer_exit": run["producer_exit"], "bronze_exit": job.exit_code,
    }


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        e2e, prod = r["e2e_ms"], r["producer_ms"]
        rows.append(bc.summary_row(
            f"3 e2e latency @{r['trigger']}", "e2e p50/p95/p99 ms",
            f"{e2e['p50']:.0f}/{e2e['p95']:.0f}/{e2e['p99']:.0f}", "floor: trigger + p99 batch",
            r["floor_p99_ms"], e2e["p99"] / r["floor_p99_ms"], f"p99 <= {r['e2e_target_ms']} ms", r["e2e_target"],
            "trigger wait + Spark batch duration (median %.0f ms)" % (r["batch_duration_ms"]["p50"] or 0)))
        c = r["ceiling_produce_ack_ms"]
        rows.append(bc.summary_row(
            f"3 e2e latency @{r['trigger']}", "producer p50/p95/p99 ms",
            f"{prod['p50']:.1f}/{prod['p95']:.1f}/{prod['p99']:.1f}", "bare produce->ack p99", c["p99"],
            prod["p99"] / c["p99"] if c["p99"] else None, f"p99 < {TARGET_PRODUCER_P99_MS:.0f} ms",
            r["producer_target"], "linger.ms=5 + broker append; CPU scheduling on the shared 2 cores"))
    return rows


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="15 s per trigger instead of 60 s")
    p.add_argument("--trigger", action="append", help=f"trigger setting; repeatable (default {DEFAULT_TRIGGERS})")
    p.add_argument("--duration", type=float, help="seconds of steady traffic per trigger (default 60; quick 15)")
    p.add_argument("--warmup", type=float, help="seconds left out at the start (default 5; quick 3)")
    args = p.parse_args(argv)
    args.trigger = args.trigger or DEFAULT_TRIGGERS
    args.duration = args.duration or (15.0 if args.quick else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (3.0 if args.quick else 5.0)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    load_before = bc.load_average()
    results = []
    for trigger in args.trigger:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            results.append(run_one(trigger, args.duration, args.warmup, Path(tmp)))
        r = results[-1]
        log.info("trigger %s: e2e p99 %.0f ms, producer p99 %.1f ms (%d trades)", trigger, r["e2e_ms"]["p99"],
                 r["producer_ms"]["p99"], r["trades_in_window"])
    rows = summary_rows(results)
    payload = {"name": NAME, "quick": args.quick, "params": vars(args), "load_before": load_before,
               "load_after": bc.load_average(), "machine": bc.machine_info(), "results": results, "rows": rows}
    path = bc.write_results(NAME, payload)
    print(table([[r["benchmark"], r["figure"], r["value"], r["ceiling_name"], r["ceiling"], r["ratio"], r["target"],
                  r["status"]] for r in rows],
                ["benchmark", "figure", "value", "reference", "ref value", "ratio", "target", "status"]))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
