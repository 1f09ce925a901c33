"""Run every benchmark (as a user would, one subprocess each), then print one summary table and write it as JSON.

Each benchmark writes its own bench/results/<name>-<timestamp>.json; this driver adds bench/results/run_all-<ts>.json
with the summary rows of all of them, the machine, and the load average before and after.

Usage:
    python bench/run_all.py            # make bench: the full sizes, about 75 minutes
    python bench/run_all.py --quick    # make bench-quick: each benchmark small, under 3 minutes each
    python bench/run_all.py --only producer_ingest --only e2e_latency
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import bench_common as bc
from bench_stats import table

BENCHMARKS = ["producer_ingest", "bronze_catchup", "e2e_latency", "small_files", "footprint", "batch_floor", "merge_cost",
              "page_latency", "long_run"]

log = logging.getLogger("run_all")


def run_benchmark(name: str, quick: bool) -> tuple[Optional[Path], float, int]:
    """Run bench/<name>.py; its output streams through; returns (results file, seconds, exit code)."""
    cmd = [bc.PYTHON, str(bc.REPO_ROOT / "bench" / f"{name}.py")] + (["--quick"] if quick else [])
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=bc.REPO_ROOT, env=bc.script_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    results = None
    for line in proc.stdout:
        if line.startswith("%"):  # librdkafka's own console lines (e.g. a closing client purging its queue)
            continue
        sys.stdout.write(f"[{name}] {line}")
        if line.startswith("results: "):
            results = Path(line.split("results: ", 1)[1].strip())
    return results, time.monotonic() - t0, proc.wait()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="each benchmark small (make bench-quick)")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these; repeatable")
    args = p.parse_args(argv)
    bc.configure_logging()
    load_before = bc.load_average()
    t0 = time.monotonic()
    rows, runs, failed = [], {}, []
    for name in args.only or BENCHMARKS:
        path, seconds, code = run_benchmark(name, args.quick)
        runs[name] = {"results": str(path) if path else None, "seconds": round(seconds, 1), "exit_code": code}
        if code != 0 or path is None:
            failed.append(name)
            continue
        rows += json.loads(path.read_text())["rows"]
    load_after = bc.load_average()
    payload = {"name": "run_all", "quick": args.quick, "load_before": load_before, "load_after": load_after,
               "total_s": round(time.monotonic() - t0, 1), "machine": bc.machine_info(), "runs": runs, "rows": rows}
    path = bc.write_results("run_all", payload)
    print()
    print(f"=== summary ({'quick' if args.quick else 'full'}; {payload['total_s']:.0f} s; load average "
          f"{load_before} before, {load_after} after) ===")
    print(table([[r["benchmark"], r["figure"], r["value"], r["ceiling_name"], r["ceiling"], r["ratio"], r["target"],
                  r["status"]] for r in rows],
                ["benchmark", "figure", "value", "reference", "ref value", "ratio", "target", "status"]))
    for name, run in runs.items():
        print(f"{name}: {run['seconds']:.0f} s, exit {run['exit_code']}, {run['results']}")
    print(f"results: {path}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
