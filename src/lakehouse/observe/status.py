"""Publish a component's status: one small JSON file per component, data/status/<component>.json, replaced
atomically, that `make status`, the page and /metrics read.

One call hands a dict over, from any process and any thread:

    from lakehouse.observe import status
    status.publish("silver", **writer.last)           # {"batch": 12, "inserted": 100, ...} merged into silver.json
    status.publish("producer", state="running", trades=1200, gaps=0)

Each process keeps what it published per component and writes the whole record each time, with who wrote it (pid
and the process's start time, so a reader can tell a live writer from a dead one, even after the pid is reused) and
when (updated_us, microseconds since the epoch). Writing never raises: a status file that cannot be written is logged
once and the job goes on.

Who publishes what (the status reader, health.py, reads these fields):
  bronze/silver/gold  every streaming query, from run_queries() (queries.py): state, reason, batch_id,
                      batch_duration_ms, input_rows, rows_per_s, last_batch_us, offsets_behind (Kafka)
  silver              the Silver writer after each batch: its .last (batch, bronze_rows, inserted, duplicates,
                      quarantined, silver_version, duration_ms)
  gold                the Gold writer after each write: its .last (trades, bars, duration_ms, oldest_ingest_us,
                      newest_ingest_us, written_at_us) and silver_version, the Silver version it holds through (the
                      Gold lag; with no state of its own, Gold folded into Silver's batches takes Silver's state)
  producer            its counters every 2 s (producer/session.py)
  page                the page server every 5 s;  pipeline: the runner (what it expects, one app or separate jobs)

Where: $LAKEHOUSE_STATUS_DIR, else data/status under the working folder (where the jobs' default data/ paths are).
The runner (make run / make demo) sets LAKEHOUSE_STATUS_DIR=<data dir>/status for every process it starts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from lakehouse.common import processes
from lakehouse.defaults import DATA_DIR

ENV_DIR = "LAKEHOUSE_STATUS_DIR"

log = logging.getLogger(__name__)

_lock = threading.Lock()
_records: dict[str, dict[str, Any]] = {}
_dir_override: Path | None = None
_warned = False


def status_dir() -> Path:
    """The folder status files go to (set_dir(), else $LAKEHOUSE_STATUS_DIR, else data/status)."""
    if _dir_override is not None:
        return _dir_override
    return Path(os.environ.get(ENV_DIR) or Path(DATA_DIR) / "status")


def set_dir(path: str | os.PathLike | None) -> None:
    """Publish under `path` from now on (None: back to the default); e.g. a job whose --data-dir is not data/."""
    global _dir_override
    _dir_override = Path(path) if path is not None else None


def now_us() -> int:
    return time.time_ns() // 1000


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, it names one
    process for good (a pid can be reused, the pair cannot). None when the process is gone."""
    fields = processes.stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def writer_alive(record: dict[str, Any]) -> bool:
    """The process that wrote `record` still runs (same pid, same start time, not a zombie)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or not processes.is_running(pid):
        return False
    started = record.get("pid_start")
    return started is None or process_start(pid) == started


def publish(component: str, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into this process's record for `component` and write it to <status dir>/<component>.json
    atomically (a reader sees the old file or the new one, never half of one). Returns the record written."""
    with _lock:
        record = _records.setdefault(component, {"component": component, "pid": os.getpid(),
                                                 "pid_start": process_start(os.getpid()),
                                                 "host": socket.gethostname()})
        record.update(fields)
        record["updated_us"] = now_us()
        _write(status_dir() / f"{component}.json", record)
        return dict(record)


def forget(component: str | None = None) -> None:
    """Drop what this process published (all components when None): the next publish() starts a fresh record."""
    with _lock:
        if component is None:
            _records.clear()
        else:
            _records.pop(component, None)


def _write(path: Path, record: dict[str, Any]) -> None:
    global _warned
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, default=str, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("cannot write status file %s (%s); the job goes on without publishing its status", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass


def read_all(folder: Path) -> dict[str, dict[str, Any]]:
    """Every status file under `folder`: {component: record}. A file that is not a JSON object is skipped."""
    records = {}
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return {}
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records[path.stem] = record
    return records


def clear(folder: Path) -> None:
    """Remove the status files of an earlier run (the runner does this before it starts a new one)."""
    for path in folder.glob("*.json"):
        try:
            path.unlink()
        except OSError:
            pass
