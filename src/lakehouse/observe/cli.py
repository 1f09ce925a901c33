"""`make status`: the pipeline's health on one screen, from the status files its processes publish and the lake's
folders. Works for the layers in one Spark application (make run, make demo) and as separate jobs alike.

Usage (the entry point is infra/status.py):
    python infra/status.py                      # the pipeline under data/
    python infra/status.py --json               # the same as JSON (what the page's /api/status serves)
    python infra/status.py --data-dir /tmp/demo/data

Exit codes: 0 healthy (or still starting: it says so); 1 a component is stale or failed; 2 nothing is running
(also for a folder with no status at all). A bad flag exits 2 too, with argparse's message.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lakehouse.defaults import DATA_DIR
from lakehouse.observe.snapshot import StatusReader


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def behind_text(comp: dict[str, Any]) -> str:
    if comp.get("behind_unit") is None:
        return "-"
    if comp.get("behind") is None:
        return "unknown"
    text = f"{comp['behind']} {comp['behind_unit']}"
    if comp["name"] == "silver" and comp.get("behind_rows") is not None:
        text += f" ({comp['behind_rows']} rows)"
    return text


def note_text(comp: dict[str, Any]) -> str:
    d = comp.get("details") or {}
    if comp["name"] == "producer":
        note = " ".join(f"{k}={d.get(k, 0)}" for k in ("trades", "gaps", "reconnects", "malformed", "undelivered"))
    elif comp["name"] == "gold" and "trade_to_bar_s" in d:
        note = f"trade->bar {d['trade_to_bar_s']['min']:.1f}-{d['trade_to_bar_s']['max']:.1f}s"
    elif comp["name"] == "page":
        note = d.get("url", "")
    else:
        note = ""
    if comp.get("reason") and not comp.get("healthy", True):
        note = f"{comp['reason']}" + (f"; {note}" if note else "")
    elif comp.get("reason") and comp["state"] in ("starting", "stopped", "stopping"):
        note = f"{comp['reason']}" + (f"; {note}" if note else "")
    return note


def render(report: dict[str, Any]) -> str:
    """The report as a table, one line per component, then the verdict."""
    lines = []
    pipeline = report.get("pipeline")
    if pipeline:
        started = pipeline.get("started_us")
        since = datetime.fromtimestamp(started / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if started else "?"
        lines.append(f"pipeline: {pipeline.get('mode') or '?'}, {pipeline.get('state') or '?'} (started {since})"
                     + (f", page {pipeline['page_url']}" if pipeline.get("page_url") else ""))
    header = f"{'COMPONENT':<10}{'STATE':<10}{'LAST BATCH':<16}{'ROWS/S':>8}  {'BEHIND':<20}{'VERSION':>8}  NOTE"
    lines.append(header)
    for comp in report["components"]:
        batch = "-" if comp.get("last_batch_age_s") is None else (
            (f"#{comp['batch']} " if comp.get("batch") is not None else "") + ago(comp["last_batch_age_s"]))
        rate = "-" if comp.get("rows_per_s") is None else f"{comp['rows_per_s']:.1f}"
        version = "-" if comp.get("table_version") is None else str(comp["table_version"])
        state = comp["state"].upper() if not comp.get("healthy", True) else comp["state"]
        lines.append(f"{comp['name']:<10}{state:<10}{batch:<16}{rate:>8}  {behind_text(comp):<20}{version:>8}  "
                     f"{note_text(comp)}".rstrip())
    if not report["components"]:
        lines.append(f"(no status under {report.get('status_dir')})")
    lines.append(f"verdict: {report['verdict']} (exit {report['exit_code']})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(DATA_DIR),
                        help="the pipeline's data folder (default %(default)s)")
    parser.add_argument("--status-dir", type=Path, help="its status files (default <data-dir>/status)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = StatusReader(args.data_dir, args.status_dir).read()
    print(json.dumps(report, indent=2) if args.json else render(report))
    sys.stdout.flush()
    return report["exit_code"]


if __name__ == "__main__":
    raise SystemExit(main())
