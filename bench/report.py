"""Print a run_all results file (default: the newest in bench/results/) as Markdown tables, for BENCHMARKS.md.

Usage:
    python bench/report.py
    python bench/report.py bench/results/run_all-20261127T190000Z.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from bench_stats import fmt

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def markdown_table(rows: list[list[Any]], headers: list[str]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(run: dict[str, Any]) -> str:
    m = run["machine"]
    out = [f"Run: {'quick' if run['quick'] else 'full'}, {run['total_s']:.0f} s, load average (1/5/15 min) "
           f"{run['load_before']} before, {run['load_after']} after.",
           f"Machine: {m['cpus']} vCPU {m['cpu_model']}, {m['mem_gib']} GiB, kernel {m['kernel']}; Python "
           f"{m['python']}, confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}), websocket-client "
           f"{m['websocket_client']} (wsaccel installed: {m['wsaccel']}), pyspark {m['pyspark']}, {m['java']}, "
           f"Kafka broker {m['kafka_broker']} (KRaft, one node); commit {m['git_commit']}.", ""]
    out.append(markdown_table([[r["benchmark"], r["figure"], r["value"], r["ceiling_name"], r["ceiling"], r["ratio"],
                                r["target"], r["status"]] for r in run["rows"]],
                              ["benchmark", "figure", "value", "reference (same run)", "ref value", "ratio", "target",
                               "status"]))
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", nargs="?", type=Path, help="a run_all-*.json (default: the newest)")
    args = p.parse_args(argv)
    path = args.path or max(RESULTS_DIR.glob("run_all-*.json"))
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
