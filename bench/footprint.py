"""Benchmark: what the whole pipeline costs at a live rate, and how fast a trade reaches its Gold bar.

The fake Kraken generates trades of three pairs at a steady rate; the pipeline runs exactly as `make run` starts it
(infra/run_pipeline.py, pointed at the fake with --ws-url): the producer and the three Spark layers, by default as one
Spark application, and again with --separate-jobs (three Spark processes, the seed's way). After a warm-up, over a
measured window, from /proc (each process with all its descendants: a Spark job's JVM and Python workers included):

  cpu        CPU seconds used / window seconds, as a share of one core, per process and in total
  rss        resident memory, summed over the process tree: the median of 1-second samples (steady) and the peak
  batches    micro-batches committed per minute per layer (the checkpoints' commits)
  latency    trade -> Gold bar: from the trade's ts_ingest (the producer received it) to the commit of the first Gold
             version whose bar for its minute includes it (Gold's Delta log: commit time and each bar's trade_count
             at every version); p50/p95/p99 over the trades received in the window
  stop       seconds from Ctrl-C (SIGINT to the runner) until it exited, every layer caught up

Also the idle cost: the same pipeline with the fake Kraken silent (a quiet market at night). The broker and the fake
Kraken are not counted. Targets, at 50 trades/s with `make run`'s defaults at steady state (after 5 minutes of
warm-up): everything the runner starts (producer, Spark, the page server) at most 40% of one core (moonshot 25%) and
1.5 GB RSS; trade -> Gold bar p99 at most 60 s (moonshot 30 s); idle at most 5% of one core. Results: a table, and
bench/results/footprint-<timestamp>.json.

Usage:
    python bench/footprint.py                 # 50 trades/s (both ways), 500 trades/s, idle; 5-minute warm-ups; ~50 min
    python bench/footprint.py --quick         # 50 trades/s one application, and idle, short windows; ~10 minutes
    python bench/footprint.py --rate 50 --window 300 --mode one-app
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_common as bc
from bench_stats import percentile, table, verdict
from lakehouse.common.polling import wait_until
from lakehouse.common.processes import children_of, command_line, descendants, stat_fields

NAME = "footprint"
TARGET_CPU_SHARE = 0.40
TARGET_RSS_MB = 1536.0
TARGET_P99_S = 60.0
TARGET_IDLE_SHARE = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")
CHECKPOINTS = {"bronze": "kafka_to_bronze_trades", "silver": "bronze_to_silver_trades",
               "gold": "silver_to_gold_ohlcv"}

log = logging.getLogger(NAME)


# ---------------------------------------------------------------------------------------------------------------------
# /proc


def tree_cpu_s(pid: int, tree: dict[int, list[int]]) -> float:
    """CPU seconds of a process and its live descendants, including children they reaped (cutime/cstime)."""
    total = 0.0
    for p in [pid, *descendants(pid, tree)]:
        fields = stat_fields(p)
        if fields is None:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / bc.CLK_TCK  # utime stime cutime cstime
    return total


def tree_rss_mb(pid: int, tree: dict[int, list[int]]) -> float:
    total = 0
    for p in [pid, *descendants(pid, tree)]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError):
            continue
    return total / 2 ** 20


def named_processes(runner_pid: int, tree: dict[int, list[int]]) -> dict[str, int]:
    """The runner's children by role: producer, spark (one app) or bronze/silver/gold (separate jobs), page."""
    roles = {"kraken_trades_ws.py": "producer", "infra/page.py": "page", "all_layers.py": "spark",
             "kafka_to_bronze_trades.py": "bronze", "bronze_to_silver_trades.py": "silver",
             "silver_to_gold_ohlcv.py": "gold"}
    found = {}
    for child in tree.get(runner_pid, []):
        cmdline = command_line(child)
        if cmdline is None:
            continue
        for script, role in roles.items():
            if script in cmdline:
                found[role] = child
    return found


@dataclass
class Sampler:
    """Samples the RSS of each named process tree every second while the window runs."""

    runner_pid: int
    rss: dict[str, list[float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            tree = children_of()
            roles = named_processes(self.runner_pid, tree)
            for role, pid in roles.items():
                self.rss.setdefault(role, []).append(tree_rss_mb(pid, tree))
            self.rss.setdefault("total", []).append(sum(tree_rss_mb(pid, tree) for pid in roles.values()))


# ---------------------------------------------------------------------------------------------------------------------
# Gold latency, from the Delta logs


def trade_to_bar_latencies(silver: Path, gold: Path, since: float, until: float) -> list[float]:
    """Seconds from each trade's ts_ingest (within [since, until)) to the commit of the first Gold version whose
    bar for the trade's minute counts it (trades of a pair and minute are counted in ts_ingest order)."""
    from deltalake import DeltaTable

    silver_table = DeltaTable(str(silver)).to_pyarrow_table(columns=["symbol", "ts_event", "ts_ingest"])
    per_bar: dict[tuple[str, int], list[float]] = {}
    for row in silver_table.to_pylist():
        minute = int(row["ts_event"].timestamp()) // 60
        per_bar.setdefault((row["symbol"], minute), []).append(row["ts_ingest"].timestamp())
    for ingests in per_bar.values():
        ingests.sort()
    gold_table = DeltaTable(str(gold))
    history = sorted((h for h in gold_table.history() if h.get("operation") == "MERGE"), key=lambda h: h["version"])
    counted: dict[tuple[str, int], int] = {}
    latencies = []
    for entry in history:
        committed = entry["timestamp"] / 1000
        if committed < since:
            continue
        bars = DeltaTable(str(gold), version=entry["version"]).to_pyarrow_table(
            columns=["symbol", "window_start", "trade_count"]).to_pylist()
        for bar in bars:
            key = (bar["symbol"], int(bar["window_start"].timestamp()) // 60)
            before, now = counted.get(key, 0), bar["trade_count"]
            for ingest in per_bar.get(key, [])[before:now]:
                if since <= ingest < until:
                    latencies.append(committed - ingest)
            counted[key] = max(before, now)
    return latencies


def batches_per_minute(checkpoints: Path, since: float, until: float) -> dict[str, float]:
    out = {}
    for layer, folder in CHECKPOINTS.items():
        commits = checkpoints / folder / "commits"
        stamps = [p.stat().st_mtime for p in commits.iterdir() if p.name.isdigit()] if commits.is_dir() else []
        out[layer] = round(sum(1 for t in stamps if since <= t < until) * 60 / (until - since), 1)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# One run


def run_once(mode: str, rate: float, warmup: float, window: float, workdir: Path,
             trigger: str | None = None) -> dict[str, Any]:
    """The pipeline at `rate` trades/s (0: idle) in `mode` ("one-app" or "separate"), every layer with `trigger`
    (None: the runner's default); the window's figures."""
    topic = bc.create_topic(f"footprint-{mode}-{int(rate)}")
    data = workdir / f"{mode}-{int(rate)}"
    kraken = bc.start_script("ingestion/fake_kraken.py", ["--port", "0", "--pairs", ",".join(bc.NATIVE_PAIRS),
                                                          "--rate", str(rate), "--history", "50", "--start", "now"],
                             workdir / f"kraken-{mode}-{int(rate)}.log")
    port = wait_for_port(workdir / f"kraken-{mode}-{int(rate)}.log")
    runner_args = ["--ws-url", f"ws://127.0.0.1:{port}/v2", "--topic", topic, "--data-dir", str(data),
                   "--log-dir", str(data / "logs")] + [a for p in bc.USER_PAIRS for a in ("--pair", p)]
    if mode == "separate":
        runner_args.append("--separate-jobs")
    if trigger:
        runner_args += ["--trigger", trigger]
    runner = bc.start_script("infra/run_pipeline.py", runner_args, workdir / f"runner-{mode}-{int(rate)}.log")
    try:
        gold = data / "gold" / "ohlcv_1m"
        # Every layer started and through its first work (idle too: the fake's 50-trade snapshot makes bars), so
        # the window holds neither start-up nor the first batches
        wait_until(lambda: (gold / "_delta_log").is_dir() and any((gold / "_delta_log").glob("*1.json")),
                   600, 1, "Gold's first bars")
        time.sleep(warmup)
        sampler = Sampler(runner.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        tree = children_of()
        roles = named_processes(runner.pid, tree)
        cpu_start = {role: tree_cpu_s(pid, tree) for role, pid in roles.items()}
        since = time.time()
        thread.start()
        time.sleep(window)
        tree = children_of()
        cpu_end = {role: tree_cpu_s(pid, tree) for role, pid in roles.items()}
        until = time.time()
        sampler.stop.set()
        thread.join()
        stop_started = time.monotonic()
        code = bc.stop_process(runner, signal.SIGINT, timeout=300)
        stop_s = time.monotonic() - stop_started
    finally:
        if runner.poll() is None:
            bc.stop_process(runner, signal.SIGKILL)
        bc.stop_process(kraken, signal.SIGTERM)
        bc.delete_topics([topic])
    seconds = until - since
    cpu = {role: (cpu_end[role] - cpu_start[role]) / seconds for role in roles}
    result = {"mode": mode if not trigger else f"{mode}, trigger {trigger}", "rate": rate,
              "window_s": round(seconds, 1), "runner_exit": code,
              "stop_s": round(stop_s, 1),
              "cpu_share": {role: round(v, 3) for role, v in cpu.items()} | {"total": round(sum(cpu.values()), 3)},
              "rss_mb_steady": {role: round(statistics.median(v), 0) for role, v in sampler.rss.items()},
              "rss_mb_peak": {role: round(max(v), 0) for role, v in sampler.rss.items()},
              "batches_per_min": batches_per_minute(data / "checkpoints", since, until)}
    if rate > 0:
        latencies = trade_to_bar_latencies(data / "silver" / "crypto_trades", data / "gold" / "ohlcv_1m", since,
                                           until)
        result["latency_s"] = {"trades": len(latencies),
                               **{f"p{q}": round(percentile(latencies, q), 2) for q in (50, 95, 99)}}
    return result


def wait_for_port(log_path: Path) -> int:
    """The fake Kraken prints 'listening on ws://127.0.0.1:<port>/v2 ...' once it listens."""
    def port() -> int | None:
        found = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", log_path.read_text() if log_path.exists() else "")
        return int(found.group(1)) if found else None
    return wait_until(port, 60, 0.2, "the fake Kraken")


def rows_of(result: dict[str, Any]) -> list[list[Any]]:
    latency = result.get("latency_s", {})
    cpu, rss = result["cpu_share"], result["rss_mb_steady"]
    return [[result["mode"], int(result["rate"]), f"{cpu['total'] * 100:.1f}%",
             " ".join(f"{k}={v * 100:.1f}%" for k, v in cpu.items() if k != "total"),
             f"{rss.get('total', 0):.0f}", f"{result['rss_mb_peak'].get('total', 0):.0f}",
             " ".join(f"{k}={v}" for k, v in result["batches_per_min"].items()),
             latency.get("p50", "-"), latency.get("p95", "-"), latency.get("p99", "-"), result["stop_s"]]]


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets' figures (50 trades/s) for run_all's summary table: value, ratio to the target, met/missed."""
    rows = []
    for r in results:
        if r["rate"] == 0.0:
            figures = [("idle CPU, share of one core", r["cpu_share"]["total"], TARGET_IDLE_SHARE, "<= 0.05")]
        elif r["rate"] == 50.0:
            figures = [("CPU, share of one core", r["cpu_share"]["total"], TARGET_CPU_SHARE, "<= 0.40"),
                       ("RSS MB (steady)", r["rss_mb_steady"].get("total", 0.0), TARGET_RSS_MB, "<= 1536"),
                       ("trade -> Gold bar p99 s", r.get("latency_s", {}).get("p99"), TARGET_P99_S, "<= 60")]
        else:
            continue
        for figure, value, target, text in figures:
            rows.append(bc.summary_row(f"footprint ({r['mode']}, {r['rate']:g}/s)", figure, value, "target", target,
                                       round(value / target, 2) if value is not None else None, text,
                                       verdict(value, target, higher_is_better=False), "see BENCHMARKS.md"))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50 trades/s one application, and idle, short windows")
    p.add_argument("--rate", type=float, action="append", help="trades/s (repeatable; 0 = idle)")
    p.add_argument("--mode", choices=["one-app", "separate"], action="append", help="repeatable")
    p.add_argument("--warmup", type=float, help="seconds after Gold's first bars before measuring")
    p.add_argument("--window", type=float, help="measured seconds")
    p.add_argument("--trigger", help='every layer\'s trigger, e.g. "10 seconds" (default: the runner\'s own per layer)')
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, float]]:
    if args.rate or args.mode:
        return [(m, r) for r in (args.rate or [50.0]) for m in (args.mode or ["one-app", "separate"])]
    if args.quick:
        return [("one-app", 50.0), ("one-app", 0.0)]
    return [("one-app", 50.0), ("separate", 50.0), ("one-app", 500.0), ("one-app", 0.0), ("separate", 0.0)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    warmup = args.warmup if args.warmup is not None else (60.0 if args.quick else 300.0)
    window = args.window if args.window is not None else (120.0 if args.quick else 300.0)
    load_before = bc.load_average()
    results = []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        for mode, rate in plan(args):
            log.info("%s at %s trades/s: warm-up %.0fs, window %.0fs", mode, rate, warmup, window)
            result = run_once(mode, rate, warmup, window, Path(tmp), args.trigger)
            log.info("%s", result)
            results.append(result)
    header = ["mode", "trades/s", "CPU (1 core)", "CPU per process", "RSS MB", "peak MB", "batches/min",
              "p50 s", "p95 s", "p99 s", "stop s"]
    print(table([row for r in results for row in rows_of(r)], header))
    rows = summary_rows(results)
    for row in rows:
        print(f"{row['figure']}: {row['value']} ({row['ratio']} of the target {row['target']}: {row['status']})")
    path = bc.write_results(NAME, {"machine": bc.machine_info(), "load_before": load_before, "rows": rows,
                                   "load_after": bc.load_average(), "results": results,
                                   "targets": {"cpu_share": TARGET_CPU_SHARE, "rss_mb": TARGET_RSS_MB,
                                               "p99_s": TARGET_P99_S, "idle_share": TARGET_IDLE_SHARE}})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
