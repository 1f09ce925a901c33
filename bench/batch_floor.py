"""Benchmark: what one Silver + Gold micro-batch costs, against a bare Delta commit measured in the same run.

On one quiet Spark (local[2], the jobs' own settings and writers), measured as wall seconds and CPU seconds of the
whole process (the Python driver and its JVM), interleaved so that every kind is measured on an equally warm JVM:

  spark job           a Spark job that does nothing (spark.range(1).collect()): what any step of a batch costs at least
  delta commit        a Delta append of 15 rows with a transaction id (txnAppId/txnVersion): the reference the
                      target is set against
  delta commit no txn the same append without a transaction id
  silver + gold batch the one-application pipeline's SilverWriter with its GoldWriter on a live-sized Bronze batch
                      (--trades, default 100 = 50 trades/s for 2 s, plus 10 copies to skip): parse, dedup,
                      insert-only MERGE into Silver, the new trades folded into Gold

and, inside the Silver + Gold batch, each step's own CPU (by timing the writers' step functions while it runs): Silver's
MERGEs (lakehouse.silver.job.insert_new: the trades, and the quarantine when a batch has bad records), Gold's change
read and fold (GoldWriter.fold_changes, without its MERGE), Gold's MERGE (GoldWriter.merge), and the rest (parsing,
persisting and summing up the batch, the Python between the steps). Each step's ratio to the bare commit shows what
any change to the others could gain at most.

The target: a Silver + Gold batch of 100 trades costs at most 3x the bare commit (CPU). A transaction id makes Delta
rebuild the table's whole state from its log (a Spark job) to look the id up, on every write: the difference between
the two commits shows that cost. The JIT matters too: the first few dozen commits of a JVM cost several times the
later ones (why an earlier version of this benchmark, measuring 15 commits after 10, reported 1.85 CPU-s for what
costs about 0.7 on a warm JVM); hence the long warm-up and the interleaving.

From the medians, for each trigger interval T: the share of one core the Silver + Gold passes take at one pass per
trigger (silver_gold_cpu / max(T, wall)); Bronze, the producer and the JVM's idle cost come on top (bench/footprint.py
measures the whole pipeline).

Usage:
    python bench/batch_floor.py                 # 60 warm-up and 20 measured rounds; about 8 minutes
    python bench/batch_floor.py --quick         # 30 and 10
    python bench/batch_floor.py --trades 1000
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import bench_common as bc
from bench_stats import own_times, table, verdict
from footprint import children_of, tree_cpu_s
from merge_cost import batch_writers, bronze_batch, build_silver

NAME = "batch_floor"
TRIGGERS_S = (2, 5, 10, 20, 30, 60)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
TARGET_RATIO = 3.0  # a Silver + Gold batch of 100 trades: at most 3 bare commits (CPU)


def process_cpu_s() -> float:
    """CPU seconds so far of this process and its descendants (the JVM, Python workers)."""
    return tree_cpu_s(os.getpid(), children_of())


def delta_append(spark, path: Path, txn: bool) -> Callable[[int], None]:
    """15 rows appended to a Delta table, each call with its own transaction version (as a micro-batch's write) when
    txn, else without one."""
    def append(version: int) -> None:
        rows = spark.range(15).selectExpr("CAST(id % 3 AS STRING) AS symbol", f"{version} AS version", "id AS i")
        writer = rows.write.format("delta").mode("append")
        if txn:
            writer = writer.option("txnAppId", "bench-floor").option("txnVersion", version)
        writer.save(str(path))
    return append


NESTED = {"Gold MERGE": "Gold change read + fold"}  # which step runs inside which


def batch_steps() -> dict[str, tuple[Any, str]]:
    """The batch's steps: name -> (the module or class holding it, its function name), as the writers call them."""
    from lakehouse.gold.table import GoldWriter
    from lakehouse.silver import job as silver_job

    return {"Silver MERGEs": (silver_job, "insert_new"), "Gold change read + fold": (GoldWriter, "fold_changes"),
            "Gold MERGE": (GoldWriter, "merge")}


@contextlib.contextmanager
def step_cpu(spent: dict[str, float]) -> Iterator[None]:
    """While inside: each of batch_steps() adds the process CPU seconds of its calls to spent[step] (restored after)."""
    originals = []
    for step, (owner, attribute) in batch_steps().items():
        original = getattr(owner, attribute)
        originals.append((owner, attribute, original))

        def timed(*args, _original=original, _step=step, **kwargs):
            started = process_cpu_s()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_step] = spent.get(_step, 0.0) + process_cpu_s() - started
        setattr(owner, attribute, functools.wraps(original)(timed))
    try:
        yield
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)


def measure(actions: dict[str, Callable[[int], Any]], warmup: int, repeats: int) -> dict[str, dict[str, list]]:
    """Wall and CPU seconds of each action, called in turn each round: `warmup` uncounted rounds, then `repeats`."""
    times: dict[str, dict[str, list]] = {name: {"wall": [], "cpu": []} for name in actions}
    for i in range(warmup + repeats):
        for name, action in actions.items():
            started, cpu_started = time.monotonic(), process_cpu_s()
            action(i)
            if i >= warmup:
                times[name]["wall"].append(time.monotonic() - started)
                times[name]["cpu"].append(process_cpu_s() - cpu_started)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {"wall": round(statistics.median(times["wall"]), 3), "cpu": round(statistics.median(times["cpu"]), 3)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="30 warm-up and 10 measured rounds")
    p.add_argument("--trades", type=int, default=100, help="new trades per Silver + Gold batch (default %(default)s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    warmup, repeats = (30, 10) if args.quick else (60, 20)
    from lakehouse.lake.delta import WRITER_SESSION_CONF
    from lakehouse.spark.session import build_spark

    load_before = bc.load_average()
    spark = build_spark("bench_batch_floor", delta=True, conf={"spark.master": "local[2]", **WRITER_SESSION_CONF})
    with tempfile.TemporaryDirectory(prefix="batch-floor-") as tmp:
        silver, gold = Path(tmp) / "silver", Path(tmp) / "gold"
        next_id = build_silver(spark, silver, 1000, 1)
        writer = batch_writers(spark, silver, gold)
        steps: list[dict[str, float]] = []  # per Silver + Gold batch: CPU seconds inside each step
        # after Silver's newest trade (23:58:33): live trades, into each pair's open bar, and still on Silver's day, as
        # the copies' trade_date must be (a copy is the same trade, so the same day)
        last_ts = START + timedelta(hours=23, minutes=59)

        def silver_gold(i: int) -> None:
            first = next_id + i * args.trades
            batch = bronze_batch(spark, first, last_ts + timedelta(seconds=0.5 * (i + 1)), copies_of=first,
                                 trades=args.trades, copies=args.trades // 10)
            spent: dict[str, float] = {}
            started = process_cpu_s()
            with step_cpu(spent):
                writer(batch, i)
            assert writer.last["inserted"] == args.trades, writer.last
            steps.append(own_times(process_cpu_s() - started, spent, NESTED))

        times = measure({"spark job": lambda _i: spark.range(1).collect(),
                         "delta commit": delta_append(spark, Path(tmp) / "append", txn=True),
                         "delta commit no txn": delta_append(spark, Path(tmp) / "append_no_txn", txn=False),
                         "silver + gold batch": silver_gold}, warmup, repeats)
    spark.stop()
    measured = {name: medians(t) for name, t in times.items()}
    print(table([[name, m["wall"], m["cpu"]] for name, m in measured.items()],
                ["one of", "wall s (median)", "CPU s (median)"]))
    batch, commit = measured["silver + gold batch"], measured["delta commit"]
    ratio = round(batch["cpu"] / commit["cpu"], 2)
    step_medians = {step: round(statistics.median(s[step] for s in steps[warmup:]), 3) for step in steps[-1]}
    print("\nInside the Silver + Gold batch (own CPU of each step, median; the steps' medians need not add up):")
    print(table([[step, cpu, f"{cpu / commit['cpu']:.2f}"] for step, cpu in step_medians.items()],
                ["step", "CPU s (median)", "x bare commit"]))
    print(f"\nSilver + Gold batch of {args.trades} trades = {ratio}x a bare commit with a transaction id "
          f"(target <= {TARGET_RATIO:g}x: {verdict(ratio, TARGET_RATIO, higher_is_better=False)}); "
          f"{batch['cpu'] / measured['delta commit no txn']['cpu']:.2f}x one without")
    shares = {t: batch["cpu"] / max(t, batch["wall"]) for t in TRIGGERS_S}
    print(table([[f"{t} s", f"{share:.1%}"] for t, share in shares.items()],
                ["one pass per", "Silver + Gold share of one core"]))
    rows = [bc.summary_row(NAME, f"Silver + Gold batch CPU s ({args.trades} trades, median)", batch["cpu"],
                           "a Delta commit with txn id", commit["cpu"], ratio, f"<= {TARGET_RATIO:g}",
                           verdict(ratio, TARGET_RATIO, higher_is_better=False), "two commits and a change-feed read"),
            bc.summary_row(NAME, "bare Delta commit CPU s, with / without txn id", commit["cpu"], "without",
                           measured["delta commit no txn"]["cpu"],
                           round(commit["cpu"] / measured["delta commit no txn"]["cpu"], 2), "", "",
                           "the txn lookup rebuilds the table's state")]
    path = bc.write_results(NAME, {"machine": bc.machine_info(), "load_before": load_before,
                                   "load_after": bc.load_average(), "trades_per_batch": args.trades,
                                   "warmup": warmup, "repeats": repeats, "measured": measured, "raw": times,
                                   "steps": step_medians, "steps_raw": steps[warmup:],
                                   "shares": shares, "rows": rows})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
