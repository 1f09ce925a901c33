"""The status reader: the status files every process publishes (data/status/*.json), whether their writers still
run (/proc), and the lag the lake's local folders show, judged by health.evaluate(). What `make status`, the page's
/api/status and /metrics all read.

    from lakehouse.observe.snapshot import StatusReader
    report = StatusReader("data").read()       # {"verdict": "healthy", "exit_code": 0, "components": [...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakehouse.observe import status
from lakehouse.observe.health import Lag, evaluate
from lakehouse.observe.lag import LogReader, delta_version, newest_number, listdir
from lakehouse.pipeline.layers import layer_paths


class StatusReader:
    """Reads one pipeline's status: its data folder (the layers as layer_paths() lays them out) and status folder."""

    def __init__(self, data_dir: str | Path, status_dir: str | Path | None = None) -> None:
        self.paths = {k: Path(v) for k, v in layer_paths(str(data_dir)).items()}
        self.status_dir = Path(status_dir) if status_dir else Path(data_dir) / "status"
        self.logs = LogReader()

    def lag(self, records: dict[str, dict]) -> Lag:
        p = self.paths
        silver = self.logs.silver_lag(p["bronze"], p["silver_checkpoint"])
        silver_version, gold_version = delta_version(p["silver"]), delta_version(p["gold"])
        gold = records.get("gold") or {}
        through = gold.get("silver_version")
        if not isinstance(through, int):
            through = self.logs.gold_through_from_checkpoint(p["gold_checkpoint"])
        gold_behind = self.logs.data_versions_after(p["silver"], through, silver_version)
        return Lag(behind={"silver": silver.files_behind, "gold": gold_behind},
                   behind_rows={"silver": silver.rows_behind},
                   versions={"bronze": newest_number(listdir(p["bronze"] / "_spark_metadata")),
                             "silver": silver_version, "gold": gold_version})

    def read(self, now_us: int | None = None) -> dict[str, Any]:
        records = status.read_all(self.status_dir)
        alive = {name: status.writer_alive(record) for name, record in records.items()}
        report = evaluate(records, alive, self.lag(records), now_us or status.now_us())
        report["status_dir"] = str(self.status_dir)
        return report
