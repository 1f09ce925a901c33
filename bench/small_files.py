"""Benchmark 4, small files: Parquet files and bytes per hour that Bronze writes at a steady 100 trades/s, for each
trigger setting and for the job's options for fewer, larger files.

All settings run at once, as separate Bronze jobs (own output folder and checkpoint) reading the same topic fed by
one fake Kraken -> producer at 100 trades/s, so they see the same trades and the same machine load. Over a window
of W seconds (after every job is up and has run a first batch) the benchmark counts the batches each job committed
to its sink log, their files and bytes, and extrapolates linearly to one hour: files x 3600 / W, and bytes per row
x 100 x 3600 (the window holds whole batches only, so bytes per row is the steadier figure). Settings whose batches
are rarer than W/3 get few batches in the window: the JSON lists the batches behind each figure. The reference is
the seed's setting (2-second trigger), measured in the same run.

Usage:
    python bench/small_files.py                # 120 s window
    python bench/small_files.py --quick        # 45 s window
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any, Optional

import bench_common as bc
from bench_stats import per_hour, ratio, table
from stream_rig import Job, run_stream

NAME = "small_files"
RATE = 100.0
SETTINGS = [
    ("trigger 2 s (seed)", ["--trigger", "2 seconds"]),
    ("trigger 200 ms", ["--trigger", "200 milliseconds"]),
    ("trigger 30 s", ["--trigger", "30 seconds"]),
    ("trigger 2 s + minOffsetsPerTrigger 3000, maxTriggerDelay 60s",
     ["--trigger", "2 seconds", "--minOffsetsPerTrigger", "3000", "--maxTriggerDelay", "60s"]),
]

log = logging.getLogger(NAME)


def measure(job: Job, t_from: float, t_to: float) -> dict[str, Any]:
    import pyarrow.parquet as pq

    batches = [b for b in bc.sink_batches(job.out) if t_from <= b["committed_at"] <= t_to]
    files = [f for b in batches for f in b["files"]]
    rows = sum(pq.ParquetFile(bc.local_path(path)).metadata.num_rows for path, _ in files)
    nbytes = sum(size for _, size in files)
    window = t_to - t_from
    return {
        "setting": job.label, "args": job.args, "window_s": window, "batches": len(batches), "files": len(files),
        "rows": rows, "bytes": nbytes, "files_per_hour": per_hour(len(files), window),
        # bytes scale with the trades landed, so per row x rows per hour (a window holds whole batches only)
        "mb_per_hour": nbytes / rows * RATE * 3600 / 1e6 if rows else None,
        "avg_file_kb": nbytes / len(files) / 1e3 if files else None,
        "rows_per_file": rows / len(files) if files else None,
        "bytes_per_row": nbytes / rows if rows else None, "exit_code": job.exit_code,
    }


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seed = results[0]
    rows = []
    for r in results:
        rows.append(bc.summary_row(
            "4 small files @100/s", f"files/h; MB/h — {r['setting']}",
            f"{r['files_per_hour']:,.0f}; {r['mb_per_hour']:.1f}", "seed setting files/h", seed["files_per_hour"],
            ratio(r["files_per_hour"], seed["files_per_hour"]), "fewer, larger files",
            f"{r['avg_file_kb']:.1f} kB/file" if r["avg_file_kb"] else "-",
            f"{r['batches']} batches in {r['window_s']:.0f} s; files/batch = Kafka partitions with new data"))
    return rows


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="45 s window instead of 120 s")
    p.add_argument("--window", type=float, help="seconds of steady traffic measured (default 120; quick 45)")
    args = p.parse_args(argv)
    args.window = args.window or (45.0 if args.quick else 120.0)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    bc.configure_logging()
    load_before = bc.load_average()
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        jobs = [Job(label, list(job_args)) for label, job_args in SETTINGS]
        run = run_stream(RATE, args.window, jobs, Path(tmp), drain=False)
        results = [measure(job, run["t_start"], run["t_stop"]) for job in jobs]
    rows = summary_rows(results)
    payload = {"name": NAME, "quick": args.quick, "params": vars(args), "rate": RATE, "load_before": load_before,
               "load_after": bc.load_average(), "machine": bc.machine_info(), "results": results, "rows": rows,
               "records": run["records"]}
    path = bc.write_results(NAME, payload)
    print(table([[r["setting"], r["batches"], r["files"], r["files_per_hour"], r["mb_per_hour"], r["avg_file_kb"],
                  r["rows_per_file"], ratio(r["files_per_hour"], results[0]["files_per_hour"])] for r in results],
                ["setting", "batches", "files", "files/hour", "MB/hour", "kB/file", "rows/file", "vs seed"]))
    print(f"window {args.window:.0f} s at {RATE:.0f} trades/s, extrapolated x{3600 / args.window:.0f} to one hour")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
